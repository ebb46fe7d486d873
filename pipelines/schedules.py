"""Daily run over yesterday's partition (UTC), after late files have had time to land."""

from dagster import build_schedule_from_partitioned_job

from pipelines.jobs import ingest_job

daily_ingest_schedule = build_schedule_from_partitioned_job(
    ingest_job, hour_of_day=1, minute_of_hour=30
)
