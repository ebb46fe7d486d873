"""Run the ingest job in-process over the days present in a landing folder, and the model refit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from dagster import DagsterInstance

from detectors.core.locking import warehouse_lock
from detectors.core.warehouse import connect, has_table
from detectors.ingest.pipeline import file_day, landing_files
from pipelines.definitions import build_definitions
from pipelines.jobs import (
    INGEST_JOB_NAME,
    LAKE_EXPORT_JOB_NAME,
    REFIT_JOB_NAME,
    SCORE_JOB_NAME,
    SPARK_INGEST_JOB_NAME,
    SPARK_JOB_NAME,
)

RefitMode = Literal["auto", "always", "never"]


@dataclass
class RunOutcome:
    """What an in-process run did."""

    success: bool
    days: list[date]
    failed_checks: list[str]
    run_id: str | None
    refit_run_id: str | None = None  # set when the models were refit after the ingest


def run_landing(
    landing_dir: str | Path,
    db_path: str | Path,
    *,
    catalog_path: str | None = None,
    config_file: str | None = None,
    days: list[date] | None = None,
    log_level: str = "WARNING",
    refit: RefitMode = "never",
    progress: bool = False,
    wait_s: float = 0.0,
) -> RunOutcome:
    """Execute the Dagster ingest job for every day with files in ``landing_dir`` (one run).

    ``refit``: ``never`` leaves the models to their schedule; ``always`` refits after the ingest
    and rescores the days (the score job); ``auto`` does so only when no model exists yet (a first
    run: otherwise nothing could be scored). ``progress`` draws a bar of each job's steps on
    stderr. One run per warehouse at a time: a second waits up to ``wait_s`` seconds for the
    first, then raises ``WarehouseBusy`` (detectors/core/locking.py).
    """
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
    partition_range = {
        "dagster/asset_partition_range_start": days[0].isoformat(),
        "dagster/asset_partition_range_end": days[-1].isoformat(),
    }
    with warehouse_lock(db_path, wait_s=wait_s), DagsterInstance.ephemeral() as instance:
        connect(db_path).close()  # a warehouse that cannot be written fails here, naming it
        result = _execute(defs, INGEST_JOB_NAME, instance, partition_range, log_level, progress)
        outcome = RunOutcome(result.success, days, _failed_checks(result), result.run_id)
        if result.success and (refit == "always" or (refit == "auto" and not _has_models(db_path))):
            refit_result = _execute(defs, REFIT_JOB_NAME, instance, {}, log_level, progress)
            outcome.refit_run_id = refit_result.run_id
            outcome.success = refit_result.success
            if refit_result.success:
                score = _execute(
                    defs, SCORE_JOB_NAME, instance, partition_range, log_level, progress
                )
                outcome.success = score.success
                outcome.failed_checks += _failed_checks(score)
        return outcome


def _execute(defs, job_name: str, instance, tags: dict, log_level: str, progress: bool = False):
    job = defs.resolve_job_def(job_name)
    loggers: dict = {"console": {"config": {"log_level": log_level}}}
    if progress:
        steps = len(job.asset_layer.selected_asset_keys)
        loggers["progress"] = {"config": {"total": steps, "label": job_name}}
    return job.execute_in_process(
        instance=instance, tags=tags, raise_on_error=False, run_config={"loggers": loggers}
    )


def _failed_checks(result) -> list[str]:
    return [
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        for evaluation in (
            event.event_specific_data
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        )
        if not evaluation.passed
    ]


def _has_models(db_path: str | Path) -> bool:
    con = connect(db_path, read_only=True)
    try:
        return bool(
            has_table(con, "anomaly_models")
            and con.execute("SELECT count(*) FROM anomaly_models").fetchone()[0]
        )
    finally:
        con.close()


@dataclass
class SparkOutcome:
    """What an in-process run of the Spark job did (metadata of its assets)."""

    success: bool
    exported: dict
    spark: dict
    ingested: dict = field(default_factory=dict)


def run_spark(
    lake: str | Path,
    out: str | Path,
    *,
    master: str | None = None,
    db_path: str | Path | None = None,
    config_file: str | None = None,
    log_level: str = "WARNING",
    raw: str | Path | None = None,
    refit: RefitMode = "auto",
    refit_tasks_per_agent: int = 1000,
) -> SparkOutcome:
    """Execute the Dagster job ``chainwatch_spark`` in-process on ``lake``, writing to ``out``.

    With ``raw``, the job ``chainwatch_spark_ingest`` first parses the landing files there on
    Spark into the lake's canonical tables. With ``db_path``, the job ``chainwatch_lake_export``
    first writes that warehouse's canonical tables and latest models to the lake (holding the
    warehouse lock while it reads). ``refit`` (auto: when the lake has no models) retrains the
    models on each agent's ``refit_tasks_per_agent`` most recent tasks before scoring.
    """
    defs = build_definitions(
        db_path=str(db_path) if db_path else None,
        config_file=config_file,
        lake_path=str(lake),
        spark_out=str(out),
        spark_master=master,
        raw_path=str(raw) if raw is not None else None,
        spark_refit=refit,
        spark_refit_tasks=refit_tasks_per_agent,
    )
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    exported: dict = {}
    ingested: dict = {}
    if raw is not None:
        ingest = defs.resolve_job_def(SPARK_INGEST_JOB_NAME).execute_in_process(
            run_config=run_config, instance=DagsterInstance.ephemeral(), raise_on_error=False
        )
        if not ingest.success:
            return SparkOutcome(False, {}, {})
        ingested = _metadata(ingest, "spark_canonical")
    if db_path is not None:
        with warehouse_lock(db_path):
            export = defs.resolve_job_def(LAKE_EXPORT_JOB_NAME).execute_in_process(
                run_config=run_config, instance=DagsterInstance.ephemeral(), raise_on_error=False
            )
        if not export.success:
            return SparkOutcome(False, {}, {})
        exported = _metadata(export, "lake_export")
    result = defs.resolve_job_def(SPARK_JOB_NAME).execute_in_process(
        run_config=run_config, instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    return SparkOutcome(
        result.success,
        exported,
        _metadata(result, "spark_findings") if result.success else {},
        ingested,
    )


def _metadata(result, asset_name: str) -> dict:
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == asset_name:
            return {k: v.value for k, v in materialization.metadata.items()}
    return {}
