"""Run the ingest job in-process over the days present in a landing folder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dagster import DagsterInstance

from detectors.ingest.pipeline import file_day, landing_files
from pipelines.definitions import build_definitions
from pipelines.jobs import INGEST_JOB_NAME


@dataclass
class RunOutcome:
    """What an in-process run did."""

    success: bool
    days: list[date]
    failed_checks: list[str]
    run_id: str | None


def run_landing(
    landing_dir: str | Path,
    db_path: str | Path,
    *,
    catalog_path: str | None = None,
    config_file: str | None = None,
    days: list[date] | None = None,
    log_level: str = "WARNING",
) -> RunOutcome:
    """Execute the Dagster ingest job for every day with files in ``landing_dir`` (one run)."""
    landing = Path(landing_dir)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist or is not a folder")
    days = sorted(days or {file_day(p) for p in landing_files(landing)})
    if not days:
        return RunOutcome(True, [], [], None)
    defs = build_definitions(
        db_path=str(db_path),
        landing_dir=str(landing),
        catalog_path=catalog_path,
        config_file=config_file,
    )
    job = defs.resolve_job_def(INGEST_JOB_NAME)
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[-1].isoformat(),
            },
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        failed = [
            f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            for evaluation in (
                event.event_specific_data
                for event in result.all_events
                if event.event_type_value == "ASSET_CHECK_EVALUATION"
            )
            if not evaluation.passed
        ]
        return RunOutcome(result.success, days, failed, result.run_id)
