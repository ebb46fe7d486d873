"""Anomaly scoring on Spark with the same fitted scikit-learn models as the DuckDB engine.

Models are trained by the DuckDB engine's code: on the warehouse (``chainwatch refit``, then
:func:`detectors.spark.lake.export_models`), or by :func:`refit_on_spark` on a sample of the lake's
training window that Spark selects and hands to an in-memory DuckDB on the driver.
Spark broadcasts them and scores every task in ``mapInArrow`` with
:func:`detectors.anomaly.score.score_group`, the function the DuckDB engine calls; the sequence signal
comes from ``sql/sequence_rarity.sql`` and the anomaly hits from ``sql/anomaly_hits.sql``, both
translated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from detectors.anomaly.common import ANOMALY_RULE_ID
from detectors.anomaly.score import MODEL_COLUMNS, score_group
from detectors.anomaly.train import RefitReport, refit, train_until_after
from detectors.core.settings import AnomalyParams
from detectors.spark.lake import MODEL_TABLES, LakeError, export_models
from detectors.spark.translate import translate_statements

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SCORE_SCHEMA = (
    "task_id STRING, peer_group STRING, model_id STRING, version INT, iforest_score DOUBLE, "
    "iforest_percentile DOUBLE, baseline_score DOUBLE, fused_score DOUBLE, "
    "fused_percentile DOUBLE, dominant_signal STRING, tail_score DOUBLE, "
    "top_features ARRAY<STRUCT<feature: STRING, value: DOUBLE, peer_median: DOUBLE, "
    "robust_z: DOUBLE, peer_share: DOUBLE>>"
)


def load_models(spark: SparkSession, lake: str | Path) -> list[tuple]:
    """Register the model tables of ``<lake>/models`` as views; the models as MODEL_COLUMNS rows."""
    base = f"{str(lake).rstrip('/')}/models"
    for table in MODEL_TABLES:
        path = f"{base}/{table}"
        if "://" not in path and not Path(path).exists():
            raise LakeError(
                f"{path} does not exist: export the warehouse's models (chainwatch lake-export) "
                "or refit on Spark (chainwatch run --engine spark --refit)"
            )
        spark.read.parquet(path).createOrReplaceTempView(table)
    columns = [c.strip() for c in MODEL_COLUMNS.split(",")]
    return [tuple(row) for row in spark.table("anomaly_models").select(*columns).collect()]


def models_exist(spark: SparkSession, lake: str | Path) -> bool:
    """Whether ``<lake>/models`` holds every model table (on any filesystem Spark reaches)."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    for table in MODEL_TABLES:
        path = jvm.org.apache.hadoop.fs.Path(f"{str(lake).rstrip('/')}/models/{table}")
        if not path.getFileSystem(conf).exists(path):
            return False
    return True


def score_on_spark(spark: SparkSession, lake: str | Path, top_g: int = 3) -> DataFrame:
    """``task_anomaly_scores`` for every task whose peer group has a model (cold-start groups and
    agents without a peer group are not scored). Needs the ``task_features`` view."""
    from pyspark.sql import functions as F

    models = load_models(spark, lake)
    if not models:
        raise LakeError(f"{lake}/models holds no anomaly model")
    by_group = spark.sparkContext.broadcast({m[2]: m for m in models})
    for statement in translate_statements(
        "sequence_rarity", {"score_from": None, "score_until": None, "top_g": top_g}
    ):
        if statement.kind == "create":
            spark.sql(statement.sql).persist().createOrReplaceTempView(statement.table)
        elif statement.kind == "drop":
            spark.catalog.dropTempView(statement.table)
    features = spark.table("task_features")
    data = (
        features.withColumn("hour_of_day", F.coalesce("hour_of_day", F.lit(-1)))
        .join(spark.table("agent_peer_groups").select("agent_id", "peer_group"), "agent_id")
        .where(F.col("peer_group").isin(list(by_group.value)))
        .join(
            spark.table("_sequence_scores").select(
                "task_id",
                F.col("rarity_score").alias("sequence_score"),
                "tool_rarity_score",
            ),
            "task_id",
            "left",
        )
    )

    def score_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np

        models_by_group = by_group.value
        for batch in batches:
            columns = {
                name: batch.column(i).to_numpy(zero_copy_only=False)
                for i, name in enumerate(batch.schema.names)
            }
            groups = np.asarray(columns["peer_group"], dtype=object)
            for group in sorted(set(groups.tolist())):
                mask = groups == group
                part = {k: v[mask] for k, v in columns.items()}
                yield from score_group(models_by_group[group], part).to_batches()

    scored = data.mapInArrow(score_batches, SCORE_SCHEMA)
    sequences = spark.table("_sequence_scores").select(
        "task_id",
        F.col("rarity_score").alias("sequence_score"),
        "tool_rarity_score",
        F.col("class_rarity_score").alias("class_sequence_score"),
        "rare_transitions",
    )
    return (
        scored.join(features.select("task_id", "agent_id", "started_at"), "task_id")
        .join(spark.table("tasks").select("task_id", "ended_at"), "task_id", "left")
        .join(sequences, "task_id", "left")
        .withColumn(
            "rare_transitions",
            F.coalesce(
                "rare_transitions", F.array().cast(sequences.schema["rare_transitions"].dataType)
            ),
        )
    )


# What training reads, for the sampled tasks (and the window's actions linked to no task); the
# derived tables as Spark built them on all history, so that features such as new_tools mean
# what they mean when scoring.
TRAINING_TABLES = ("tasks", "agent_actions", "task_features", "task_sequences")


def refit_on_spark(
    spark: SparkSession, lake: str | Path, params: AnomalyParams, *, max_tasks_per_agent: int
) -> tuple[RefitReport, int]:
    """Train new models on the training window's tasks (each agent's most recent
    ``max_tasks_per_agent``, a bounded sample for the driver) and write them to ``<lake>/models``;
    the refit report and the number of tasks sampled. Needs the canonical and derived views."""
    import duckdb
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from detectors.core.warehouse import prepare

    if max_tasks_per_agent < 1:
        raise ValueError("max_tasks_per_agent must be at least 1")
    # As wall-clock UTC (the session's zone): Python would otherwise convert to its local zone.
    newest = spark.table("tasks").agg(F.max("started_at").cast("timestamp_ntz")).first()[0]
    until = train_until_after(newest)
    since = until - timedelta(days=params.window_days)

    def utc(moment):
        return F.lit(moment.isoformat(sep=" ")).cast("timestamp")

    recent = Window.partitionBy("agent_id").orderBy(F.col("started_at").desc(), "task_id")
    sample = (
        spark.table("tasks")
        .where((F.col("started_at") >= utc(since)) & (F.col("started_at") < utc(until)))
        .withColumn("_n", F.row_number().over(recent))
        .where(F.col("_n") <= max_tasks_per_agent)
        .select("task_id")
        .localCheckpoint()
    )
    con = duckdb.connect()
    try:
        prepare(con)
        sampled = 0
        for table in TRAINING_TABLES:
            frame = spark.table(table).join(sample, "task_id", "left_semi")
            if table == "agent_actions":
                # Actions linked to no task still shape their agent's tool profile (peer groups).
                unlinked = spark.table(table).where(
                    F.col("task_id").isNull()
                    & (F.col("ts") >= utc(since))
                    & (F.col("ts") < utc(until))
                )
                frame = frame.unionByName(unlinked)
            rows = frame.toArrow()  # noqa: F841 - scanned by DuckDB
            if table in ("task_features", "task_sequences"):
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM rows")  # noqa: S608 - fixed names
            else:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows")  # noqa: S608
            if table == "tasks":
                sampled = con.execute("SELECT count(*) FROM tasks").fetchone()[0]
        report = refit(con, params, train_until=until)
        export_models(con, lake)
    finally:
        con.close()
    log.info("refit on %d sampled tasks before %s: %s", sampled, until, report.trained)
    return report, sampled


def anomaly_hits(spark: SparkSession, params: AnomalyParams) -> DataFrame:
    """Anomaly hits (``task_behaviour_anomaly``) from the ``task_anomaly_scores`` view, by the
    translated ``sql/anomaly_hits.sql``."""
    (statement,) = translate_statements(
        "anomaly_hits",
        {
            "alert_percentile": params.alert_percentile,
            "since": None,
            "until": None,
            "rule_id": ANOMALY_RULE_ID,
        },
    )
    return spark.sql(statement.sql)
