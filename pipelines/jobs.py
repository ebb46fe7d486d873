"""The ingest job: every raw source, then the canonical tables, for one day or a range of days."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from pipelines.canonical.assets import GROUP as CANONICAL_GROUP
from pipelines.detect.assets import GROUP as DETECT_GROUP
from pipelines.ingest.assets import GROUP as RAW_GROUP

INGEST_JOB_NAME = "chainwatch_ingest"

ingest_job = define_asset_job(
    INGEST_JOB_NAME,
    selection=AssetSelection.groups(RAW_GROUP, CANONICAL_GROUP, DETECT_GROUP),
    description="Land the day's files from every source, rebuild the canonical and derived tables, detect.",
    executor_def=in_process_executor,
)
