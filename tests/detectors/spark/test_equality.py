"""Spark and DuckDB give the same answers on the committed sample: canonical row counts, derived
table row counts, and for every shipped rule the same findings (ids, rules, entities).

The DuckDB side is the warehouse the real Dagster job builds (``published_sample``); its
canonical tables go to a lake with ``export_lake``, and the Spark engine runs from there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from detectors.anomaly import ANOMALY_RULE_ID
from detectors.derive import DERIVED_TABLES
from detectors.lake import LAKE_TABLES
from detectors.rules.engine import RULES_DIR, load_rules

pytestmark = pytest.mark.slow
RULE_IDS = [r.id for r in load_rules(RULES_DIR)]
DETECTOR_IDS = [*RULE_IDS, ANOMALY_RULE_ID]


@pytest.fixture(scope="module")
def both(spark, published_sample: Path, tmp_path_factory):
    """(DuckDB warehouse connection, Spark run metadata, Spark output folder): the real Dagster
    jobs chainwatch_lake_export and chainwatch_spark, run in-process on a copy of the warehouse."""
    from pipelines.run import run_spark

    work = tmp_path_factory.mktemp("spark_equality")
    warehouse = work / "wh.duckdb"
    shutil.copy(published_sample.parent / "wh.duckdb", warehouse)
    outcome = run_spark(work / "lake", work / "out", master="local[2]", db_path=warehouse)
    assert outcome.success
    assert outcome.exported["rows_anomaly_models"] > 0
    con = duckdb.connect(str(warehouse), read_only=True)
    yield con, outcome.spark, work / "out"
    con.close()


def _findings(con, rule_id: str) -> set[tuple]:
    return set(
        con.execute(
            "SELECT finding_id, rule_id, entity_id FROM findings WHERE rule_id = ?", [rule_id]
        ).fetchall()
    )


def _spark_findings(out: Path, rule_id: str) -> set[tuple]:
    return set(
        duckdb.execute(
            "SELECT finding_id, rule_id, entity_id FROM read_parquet(?, hive_partitioning = true) "
            "WHERE rule_id = ?",
            [str(out / "findings" / "*" / "*.parquet"), rule_id],
        ).fetchall()
    )


def test_canonical_row_counts_are_equal(both):
    con, meta, _ = both
    for table in LAKE_TABLES:
        assert meta[f"rows_{table}"] == con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    assert meta["rows_agent_actions"] > 1000


def test_derived_row_counts_are_equal(both):
    con, meta, out = both
    for table in DERIVED_TABLES:
        expected = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert meta[f"rows_{table}"] == expected > 0
        written = duckdb.execute(
            "SELECT count(*) FROM read_parquet(?)", [str(out / table / "*.parquet")]
        ).fetchone()[0]
        assert written == expected


def test_derived_values_are_equal(both):
    """Beyond counts: the numbers the rules and models read, row by row."""
    con, _, out = both
    lifecycle = "credential_id, uses, uses_after_task_end, distinct_tasks, ended_by, round(validity_after_task_s, 3), round(idle_validity_share, 6)"
    features = "task_id, actions, reads, egress_bytes, distinct_tools, duration_s, hour_of_day, weekday, new_tools, new_destinations, repeat_external_sends, max_validity_after_task_s"
    for table, columns in (("credential_lifecycles", lifecycle), ("task_features", features)):
        duck = con.execute(f"SELECT {columns} FROM {table} ORDER BY 1").fetchall()
        spark = duckdb.execute(
            f"SELECT {columns} FROM read_parquet(?) ORDER BY 1", [str(out / table / "*.parquet")]
        ).fetchall()
        assert spark == duck
    duck_paths = con.execute("SELECT task_id, class_path FROM task_sequences ORDER BY 1").fetchall()
    spark_paths = duckdb.execute(
        "SELECT task_id, class_path FROM read_parquet(?) ORDER BY 1",
        [str(out / "task_sequences" / "*.parquet")],
    ).fetchall()
    assert spark_paths == duck_paths


@pytest.mark.parametrize("rule_id", DETECTOR_IDS)
def test_same_findings_for_every_rule(both, rule_id):
    con, _, out = both
    expected = _findings(con, rule_id)
    assert _spark_findings(out, rule_id) == expected


def test_the_sample_exercises_most_rules(both):
    """The equality above means something only if the sample fires rules: most of them do."""
    con, _, _ = both
    fired = {r for (r,) in con.execute("SELECT DISTINCT rule_id FROM findings").fetchall()}
    assert len(fired & set(RULE_IDS)) >= 12
    assert ANOMALY_RULE_ID in fired


def test_findings_are_partitioned_by_day_of_first_seen(both):
    _, _, out = both
    days = sorted(p.name for p in (out / "findings").iterdir() if p.is_dir())
    assert days and all(d.startswith("day=") for d in days)
    mismatched = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) "
        "WHERE CAST(first_seen AS DATE) <> day",
        [str(out / "findings" / "*" / "*.parquet")],
    ).fetchone()[0]
    assert mismatched == 0


def test_same_anomaly_scores_from_the_same_models(both):
    """Spark scores every task DuckDB scored, with the same fitted models: equal scores."""
    con, meta, out = both
    duck = con.execute(
        "SELECT task_id, peer_group, version, fused_score, fused_percentile, dominant_signal, "
        "sequence_score FROM task_anomaly_scores ORDER BY task_id"
    ).fetchall()
    spark = duckdb.execute(
        "SELECT task_id, peer_group, version, fused_score, fused_percentile, dominant_signal, "
        "sequence_score FROM read_parquet(?) ORDER BY task_id",
        [str(out / "task_anomaly_scores" / "*.parquet")],
    ).fetchall()
    assert meta["scored_tasks"] == len(duck) > 100
    assert meta["findings"] == con.execute("SELECT count(*) FROM findings").fetchone()[0]
    assert [r[:3] + r[5:6] for r in spark] == [r[:3] + r[5:6] for r in duck]
    for got, want in zip(spark, duck, strict=True):
        assert got[3] == pytest.approx(want[3], rel=1e-9, abs=1e-12)
        assert got[4] == pytest.approx(want[4], abs=1e-9)
        assert (got[6] is None) == (want[6] is None)
        if want[6] is not None:
            assert got[6] == pytest.approx(want[6], rel=1e-9)
