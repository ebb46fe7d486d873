"""The Spark engine's assets: the lake's canonical tables, either parsed on Spark from landing
files or exported from the DuckDB warehouse, and the findings Spark computes from the lake
(derived tables, rules, anomaly scores; detectors/spark)."""

from dagster import AssetExecutionContext, MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from detectors.rules.engine import RULES_DIR, load_rules
from detectors.spark.lake import export_lake, export_models
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


@asset(group_name=GROUP, kinds={"spark", "duckdb", "parquet"})
def spark_canonical(
    context: AssetExecutionContext, spark: SparkResource, chainwatch: ChainwatchConfig
) -> MaterializeResult:
    """The landing files under ``raw_path`` parsed on Spark into the lake's canonical tables
    (Parquet, event tables by day), with rejected records and per-file conservation counts."""
    from detectors.spark.ingest import ingest_to_lake

    settings = chainwatch.settings(db_path="unused")
    report = ingest_to_lake(spark.session(), spark.raw_path, spark.lake_path, settings)
    for message in report.file_errors:
        context.log.error(message)
    return MaterializeResult(
        metadata={
            "raw": spark.raw_path,
            "lake": spark.lake_path,
            "files": report.files,
            "file_errors": len(report.file_errors),
            **{
                f"{fate}": report.total(fate)
                for fate in ("records", "loaded", "rejected", "duplicates")
            },
            **{f"rows_{k}": v for k, v in report.counts.items()},
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
        refit=spark.refit,
        refit_tasks_per_agent=spark.refit_tasks_per_agent,
    )
    context.log.info("spark run: %s", report.seconds)
    return MaterializeResult(
        metadata={
            "out": spark.out_path,
            "scored_tasks": report.scored_tasks,
            "refit_sampled_tasks": report.refit_sampled_tasks,
            "refit_trained_groups": len(report.refit_trained),
            "findings": sum(report.findings_by_rule.values()),
            **{f"rows_{k}": v for k, v in {**report.lake_counts, **report.derived_counts}.items()},
            **{f"seconds_{k}": v for k, v in report.seconds.items()},
        }
    )


SPARK_ASSETS = [spark_canonical, lake_export, spark_findings]
