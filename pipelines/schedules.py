"""Daily ingest over yesterday's partition (UTC), after late files have had time to land; a weekly
model refit, separate from scoring."""

from dagster import ScheduleDefinition, build_schedule_from_partitioned_job

from pipelines.jobs import ingest_job, refit_job

daily_ingest_schedule = build_schedule_from_partitioned_job(
    ingest_job, hour_of_day=1, minute_of_hour=30
)

# Sunday 00:30 UTC: before the day's ingest, so Monday's scoring uses the fresh models.
weekly_refit_schedule = ScheduleDefinition(
    name="weekly_model_refit", job=refit_job, cron_schedule="30 0 * * 0", execution_timezone="UTC"
)
