"""Jobs: the daily ingest-to-findings job, and the model refit on its own schedule."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from pipelines.anomaly.assets import GROUP as ANOMALY_GROUP
from pipelines.anomaly.assets import REFIT_GROUP
from pipelines.canonical.assets import GROUP as CANONICAL_GROUP
from pipelines.detect.assets import GROUP as DETECT_GROUP
from pipelines.detect.assets import PUBLISH_GROUP
from pipelines.ingest.assets import GROUP as RAW_GROUP

INGEST_JOB_NAME = "chainwatch_ingest"
REFIT_JOB_NAME = "chainwatch_refit"
SCORE_JOB_NAME = "chainwatch_score"
SPARK_JOB_NAME = "chainwatch_spark"
LAKE_EXPORT_JOB_NAME = "chainwatch_lake_export"
SPARK_INGEST_JOB_NAME = "chainwatch_spark_ingest"

ingest_job = define_asset_job(
    INGEST_JOB_NAME,
    selection=AssetSelection.groups(
        RAW_GROUP, CANONICAL_GROUP, DETECT_GROUP, ANOMALY_GROUP, PUBLISH_GROUP
    ),
    description="Land the day's files from every source, rebuild the canonical and derived tables, "
    "run the rules, score tasks with the stored anomaly models (no refit), publish findings.",
    executor_def=in_process_executor,
)

refit_job = define_asset_job(
    REFIT_JOB_NAME,
    selection=AssetSelection.groups(REFIT_GROUP),
    description="Reassign peer groups and train a new version of every peer group's anomaly models.",
    executor_def=in_process_executor,
)

score_job = define_asset_job(
    SCORE_JOB_NAME,
    selection=AssetSelection.groups(ANOMALY_GROUP, PUBLISH_GROUP),
    description="Score the partitions' tasks with the latest anomaly models and republish findings "
    "(after a refit, without ingesting again).",
    executor_def=in_process_executor,
)

spark_job = define_asset_job(
    SPARK_JOB_NAME,
    selection=AssetSelection.assets("spark_findings"),
    description="The Spark engine: derived tables, rules, anomaly scores and findings from the lake "
    "(the same SQL, translated; the same fitted models).",
    executor_def=in_process_executor,
)

spark_ingest_job = define_asset_job(
    SPARK_INGEST_JOB_NAME,
    selection=AssetSelection.assets("spark_canonical"),
    description="The Spark engine's ingest: landing files parsed on Spark (the same parse SQL, in "
    "DuckDB inside each task) into the lake's canonical tables.",
    executor_def=in_process_executor,
)

lake_export_job = define_asset_job(
    LAKE_EXPORT_JOB_NAME,
    selection=AssetSelection.assets("lake_export"),
    description="Write the warehouse's canonical tables and latest models to the lake.",
    executor_def=in_process_executor,
)
