"""Anomaly scoring on Spark with the same fitted scikit-learn models as the DuckDB engine.

Models are trained where they are trained today (``chainwatch refit``, on the warehouse or on a
sample of the lake loaded into DuckDB) and exported with :func:`detectors.lake.export_models`.
Spark broadcasts them and scores every task in ``mapInArrow`` with
:func:`detectors.anomaly.score_group`, the function the DuckDB engine calls; the sequence signal
comes from ``sql/sequence_rarity.sql`` and the anomaly hits from ``sql/anomaly_hits.sql``, both
translated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from detectors.anomaly import ANOMALY_RULE_ID, MODEL_COLUMNS, score_group
from detectors.lake import MODEL_TABLES, LakeError
from detectors.settings import AnomalyParams
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
                f"{path} does not exist: export the models first (chainwatch lake-export)"
            )
        spark.read.parquet(path).createOrReplaceTempView(table)
    columns = [c.strip() for c in MODEL_COLUMNS.split(",")]
    return [tuple(row) for row in spark.table("anomaly_models").select(*columns).collect()]


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
