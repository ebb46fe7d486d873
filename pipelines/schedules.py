"""Daily ingest over yesterday's partition (UTC), after late files have had time to land; a weekly
model refit, separate from scoring."""

from datetime import UTC, timedelta

from dagster import RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule

from pipelines.jobs import ingest_job, refit_job


# Not build_schedule_from_partitioned_job: it requests the last partition, and DAILY ends at
# today's (end_offset=1, so files landing today can be ingested), so at 01:30 it would ingest the
# day that has just begun and never yesterday's.
@schedule(
    name="chainwatch_ingest_schedule",
    job=ingest_job,
    cron_schedule="30 1 * * *",
    execution_timezone="UTC",
)
def daily_ingest_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    """Ingest yesterday's partition (UTC)."""
    tick = context.scheduled_execution_time.astimezone(UTC)
    day = (tick - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=day, partition_key=day)


# Sunday 00:30 UTC: before the day's ingest, so Monday's scoring uses the fresh models.
weekly_refit_schedule = ScheduleDefinition(
    name="weekly_model_refit", job=refit_job, cron_schedule="30 0 * * 0", execution_timezone="UTC"
)
