"""The Spark engine's assets: the lake export from the DuckDB warehouse, and the findings Spark
computes from the lake (derived tables, rules, anomaly scores; detectors/spark)."""

from dagster import AssetExecutionContext, MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from detectors.lake import export_lake, export_models
from detectors.rules.engine import RULES_DIR, load_rules
from pipelines.detect.assets import findings
from pipelines.resources import ChainwatchConfig, SparkResource, warehouse

GROUP = "spark"


@asset(group_name=GROUP, deps=[findings], kinds={"duckdb", "parquet"})
def lake_export(duckdb: DuckDBResource, spark: SparkResource) -> MaterializeResult:
    """The warehouse's canonical tables (Parquet by day) and its latest anomaly models, written
    to the lake the Spark engine reads."""
    with warehouse(duckdb) as con:
        counts = export_lake(con, spark.lake_path)
        models = export_models(con, spark.lake_path)
    return MaterializeResult(
        metadata={
            "lake": spark.lake_path,
            **{f"rows_{k}": v for k, v in {**counts, **models}.items()},
        }
    )


@asset(group_name=GROUP, kinds={"spark", "parquet", "scikitlearn"})
def spark_findings(
    context: AssetExecutionContext, spark: SparkResource, chainwatch: ChainwatchConfig
) -> MaterializeResult:
    """Derived tables, anomaly scores and findings computed by Spark from the lake, written as
    Parquet under ``out_path`` (findings partitioned by day of first_seen)."""
    from detectors.spark.engine import run_on_spark

    settings = chainwatch.settings(db_path="unused")
    report = run_on_spark(
        spark.session(),
        spark.lake_path,
        spark.out_path,
        load_rules(RULES_DIR, settings.rule_parameters),
        anomaly=settings.anomaly,
    )
    context.log.info("spark run: %s", report.seconds)
    return MaterializeResult(
        metadata={
            "out": spark.out_path,
            "scored_tasks": report.scored_tasks,
            "findings": sum(report.findings_by_rule.values()),
            **{f"rows_{k}": v for k, v in {**report.lake_counts, **report.derived_counts}.items()},
            **{f"seconds_{k}": v for k, v in report.seconds.items()},
        }
    )


SPARK_ASSETS = [lake_export, spark_findings]
