"""Everything Dagster loads: `dagster dev -m pipelines.definitions`."""

from dagster import Definitions, colored_console_logger, in_process_executor

from pipelines.anomaly.assets import ANOMALY_ASSETS
from pipelines.canonical.assets import CANONICAL_ASSETS
from pipelines.detect.assets import DETECT_ASSETS, PUBLISH_ASSETS
from pipelines.ingest.assets import RAW_ASSETS
from pipelines.jobs import (
    ingest_job,
    lake_export_job,
    refit_job,
    score_job,
    spark_ingest_job,
    spark_job,
)
from pipelines.progress import progress_logger
from pipelines.resources import default_resources
from pipelines.schedules import daily_ingest_schedule, weekly_refit_schedule
from pipelines.sensors import landing_folder_sensor
from pipelines.spark.assets import SPARK_ASSETS


def build_definitions(**resource_overrides) -> Definitions:
    """Definitions with local resources; overrides (db_path, landing_dir, ...) for runs and tests."""
    return Definitions(
        assets=[
            *RAW_ASSETS,
            *CANONICAL_ASSETS,
            *DETECT_ASSETS,
            *ANOMALY_ASSETS,
            *PUBLISH_ASSETS,
            *SPARK_ASSETS,
        ],
        jobs=[ingest_job, refit_job, score_job, spark_job, spark_ingest_job, lake_export_job],
        schedules=[daily_ingest_schedule, weekly_refit_schedule],
        sensors=[landing_folder_sensor],
        resources=default_resources(**resource_overrides),
        loggers={"console": colored_console_logger, "progress": progress_logger},
        # DuckDB allows one writing process: steps run one after another in the run's process.
        executor=in_process_executor,
    )


defs = build_definitions()
