"""Spark and DuckDB give the same answers on the committed sample, from the same landing files:
the fate of every record, canonical row counts and values, derived tables, and for every shipped
rule the same findings (ids, rules, entities).

The DuckDB side is the warehouse the real Dagster job builds (``published_sample``). The Spark
side is the real Dagster jobs ``chainwatch_spark_ingest`` (the landing files parsed on Spark) and
``chainwatch_spark``, with the DuckDB warehouse's fitted models in the lake (the same models, so
the anomaly findings can be compared too).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from detectors.anomaly.common import ANOMALY_RULE_ID
from detectors.derive.tables import DERIVED_TABLES
from detectors.rules.engine import RULES_DIR, load_rules
from detectors.spark.lake import LAKE_TABLES, export_models
from tests.conftest import sample_landing

pytestmark = pytest.mark.slow
RULE_IDS = [r.id for r in load_rules(RULES_DIR)]
DETECTOR_IDS = [*RULE_IDS, ANOMALY_RULE_ID]


@pytest.fixture(scope="module")
def both(spark, published_sample: Path, tmp_path_factory):
    """(DuckDB warehouse connection, Spark run metadata, Spark output folder, lake): the real
    Dagster jobs chainwatch_spark_ingest and chainwatch_spark, run in-process on the landing files
    the DuckDB warehouse was built from."""
    from pipelines.run import run_spark

    work = tmp_path_factory.mktemp("spark_equality")
    warehouse = work / "wh.duckdb"
    shutil.copy(published_sample.parent / "wh.duckdb", warehouse)
    con = duckdb.connect(str(warehouse), read_only=True)
    assert export_models(con, work / "lake")["anomaly_models"] > 0
    landing = sample_landing(work / "landing")
    outcome = run_spark(work / "lake", work / "out", master="local[2]", raw=landing)
    assert outcome.success
    assert outcome.ingested["files"] == len(list(landing.rglob("*.*")))
    yield con, {**outcome.ingested, **outcome.spark}, work / "out", work / "lake"
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
    con, meta, _, _ = both
    for table in LAKE_TABLES:
        assert meta[f"rows_{table}"] == con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    assert meta["rows_agent_actions"] > 1000


def test_every_record_has_the_same_fate(both):
    """loaded / rejected / duplicate per format, as the DuckDB ingest counted them; nothing lost."""
    con, meta, _, lake = both
    duck = con.execute(
        "SELECT source_format, sum(records), sum(loaded), sum(rejected), sum(duplicates) "
        "FROM ingest_files GROUP BY ALL ORDER BY 1"
    ).fetchall()
    files = str(lake / "ingest_files" / "*.parquet")
    spark = duckdb.execute(
        "SELECT source_format, sum(records), sum(loaded), sum(rejected), sum(duplicates) "
        "FROM read_parquet(?) GROUP BY ALL ORDER BY 1",
        [files],
    ).fetchall()
    assert spark == duck
    assert meta["records"] == meta["loaded"] + meta["rejected"] + meta["duplicates"]
    assert meta["duplicates"] > 0 and meta["file_errors"] == 0


# Columns that name where or when a row was loaded, not what it says.
LOAD_COLUMNS = {"source_file", "ingested_at", "updated_at"}


@pytest.mark.parametrize("table", LAKE_TABLES)
def test_canonical_values_are_equal(both, table):
    """Every column but the load bookkeeping, row by row, as the Spark ingest and linking wrote
    them (Spark writes instants; read back in UTC they are DuckDB's timestamps)."""
    con, _, _, lake = both
    types = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    columns = [(c, t) for c, t in types if c not in LOAD_COLUMNS]
    duck = con.execute(
        f"SELECT {', '.join(c for c, _ in columns)} FROM {table} ORDER BY ALL"
    ).fetchall()
    reader = duckdb.connect()
    reader.execute("SET TimeZone = 'UTC'")
    spark = reader.execute(
        f"SELECT {', '.join(f'CAST({c} AS {t})' for c, t in columns)} "
        "FROM read_parquet(?, hive_partitioning = true, union_by_name = true) ORDER BY ALL",
        [str(lake / table / "**" / "*.parquet")],
    ).fetchall()
    assert len(spark) == len(duck) > 0
    assert spark == duck


def test_canonical_tables_are_partitioned_by_day(both):
    _, _, _, lake = both
    for table in ("agent_actions", "credential_events", "task_events", "agent_spans"):
        days = sorted(p.name for p in (lake / table).iterdir() if p.is_dir())
        assert days and all(d.startswith("day=") for d in days), table
        mismatched = duckdb.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) "
            "WHERE CAST(ts AS DATE) <> day",
            [str(lake / table / "*" / "*.parquet")],
        ).fetchone()[0]
        assert mismatched == 0, table


def test_derived_row_counts_are_equal(both):
    con, meta, out, _ = both
    for table in DERIVED_TABLES:
        expected = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert meta[f"rows_{table}"] == expected > 0
        written = duckdb.execute(
            "SELECT count(*) FROM read_parquet(?)", [str(out / table / "*.parquet")]
        ).fetchone()[0]
        assert written == expected


def test_derived_values_are_equal(both):
    """Beyond counts: the numbers the rules and models read, row by row."""
    con, _, out, _ = both
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
    con, _, out, _ = both
    expected = _findings(con, rule_id)
    assert _spark_findings(out, rule_id) == expected


def test_the_sample_exercises_most_rules(both):
    """The equality above means something only if the sample fires rules: most of them do."""
    con, _, _, _ = both
    fired = {r for (r,) in con.execute("SELECT DISTINCT rule_id FROM findings").fetchall()}
    assert len(fired & set(RULE_IDS)) >= 12
    assert ANOMALY_RULE_ID in fired


def test_findings_are_partitioned_by_day_of_first_seen(both):
    _, _, out, _ = both
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
    con, meta, out, _ = both
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


def test_models_refit_on_spark_train_on_what_the_warehouse_trained_on(spark, both, tmp_path):
    """Spark picks the training window's tasks and DuckDB's own refit trains on them: with a cap
    above every agent's task count, the same peer groups get models on as many tasks as the
    warehouse's refit used; a small cap bounds the sample."""
    from detectors.core.settings import Settings
    from detectors.spark.engine import build_derived, load_lake
    from detectors.spark.models import refit_on_spark

    con, _, _, lake = both
    load_lake(spark, lake)
    build_derived(spark)
    params = Settings().anomaly
    report, sampled = refit_on_spark(spark, tmp_path / "all", params, max_tasks_per_agent=10**6)
    warehouse = dict(
        con.execute(
            "SELECT peer_group, n_train FROM anomaly_models "
            "QUALIFY row_number() OVER (PARTITION BY peer_group ORDER BY version DESC) = 1"
        ).fetchall()
    )
    assert {m.peer_group: m.n_train for m in report.models if not m.skipped} == warehouse
    assert sampled >= sum(warehouse.values()) > 0
    written = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?)",
        [str(tmp_path / "all" / "models" / "anomaly_models" / "*.parquet")],
    ).fetchone()[0]
    assert written == len(warehouse)
    agents = con.execute("SELECT count(DISTINCT agent_id) FROM tasks").fetchone()[0]
    _, capped = refit_on_spark(spark, tmp_path / "capped", params, max_tasks_per_agent=2)
    assert 0 < capped <= 2 * agents < sampled
