"""The Spark engine's contract: every shipped rule translates and Spark accepts it, a rule that
does not translate fails naming its file, the lake may hold JSON lines instead of Parquet, and a
table without rows, as either writer leaves it, loads as an empty table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from detectors.rules.engine import HIT_COLUMNS, RULES_DIR, load_rule, load_rules
from detectors.spark.engine import build_derived, load_lake, rule_sql, run_rules, table_schema
from detectors.spark.lake import EMPTY_FILE, LAKE_TABLES, LakeError, export_lake
from detectors.spark.translate import TranslationError

pytestmark = pytest.mark.slow
RULES = load_rules(RULES_DIR)


@pytest.fixture(scope="module")
def empty_lake(spark, tmp_path_factory) -> Path:
    """A lake whose tables exist with the canonical schemas and no rows."""
    lake = tmp_path_factory.mktemp("empty_lake")
    for table in LAKE_TABLES:
        spark.createDataFrame([], table_schema(table)).write.parquet(str(lake / table))
    load_lake(spark, lake)
    # Derived views from another module's lake may still be in the shared session: rebuild them.
    build_derived(spark)
    return lake


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_every_shipped_rule_translates_and_spark_accepts_it(spark, empty_lake, rule):
    frame = spark.sql(rule_sql(rule))
    assert tuple(frame.columns) == (*HIT_COLUMNS, *rule.meta["hit_overrides"])
    assert frame.count() == 0


def _rule_copy(tmp_path: Path, rule_id: str, sql: str) -> Path:
    source = RULES_DIR / f"{rule_id}.yaml"
    target = tmp_path / f"{rule_id}.yaml"
    shutil.copy(source, target)
    (tmp_path / f"{rule_id}.sql").write_text(sql)
    return target


def test_a_rule_spark_cannot_run_fails_naming_its_file(spark, empty_lake, tmp_path):
    path = _rule_copy(
        tmp_path,
        "credential_outlived_task",
        "SELECT c.credential_id AS entity_id, NULL AS agent_id, NULL AS task_id, "
        "c.credential_id, c.issued_at AS first_seen, c.issued_at AS last_seen, "
        "[] AS evidence_event_ids, 'x' AS detail "
        "FROM credential_lifecycles c ASOF JOIN tasks t ON t.task_id = c.task_id AND c.issued_at >= t.started_at",
    )
    with pytest.raises(TranslationError, match=str(path)):
        run_rules(spark, [load_rule(path)])


def test_a_rule_with_a_duckdb_only_function_fails_naming_its_file(spark, empty_lake, tmp_path):
    path = _rule_copy(
        tmp_path,
        "credential_ttl_above_policy",
        "SELECT credential_id AS entity_id, agent_id, task_id, credential_id, issued_at AS first_seen, "
        "issued_at AS last_seen, [] AS evidence_event_ids, jaro_winkler_similarity(principal, 'x')::VARCHAR AS detail "
        "FROM credential_lifecycles",
    )
    with pytest.raises(TranslationError, match="credential_ttl_above_policy.yaml"):
        run_rules(spark, [load_rule(path)])


def test_json_lines_lake_gives_the_same_tables(spark, published_sample: Path, tmp_path):
    """A lake of JSON lines (one folder per table) loads with the canonical schemas."""
    con = duckdb.connect(str(published_sample.parent / "wh.duckdb"), read_only=True)
    try:
        expected = {}
        for table in LAKE_TABLES:
            (tmp_path / table).mkdir()
            con.execute(
                f"COPY (SELECT * FROM {table}) TO $out (FORMAT JSON)",
                {"out": str(tmp_path / table / "part-0.jsonl")},
            )
            expected[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        first = con.execute(
            "SELECT event_id, ts, credential_id FROM agent_actions ORDER BY event_id LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    assert load_lake(spark, tmp_path) == expected
    row = spark.sql(
        "SELECT event_id, ts, credential_id FROM agent_actions ORDER BY event_id LIMIT 1"
    ).collect()[0]
    assert (row[0], row[1].replace(tzinfo=None), row[2]) == first


def test_missing_or_empty_lake_table_is_named(spark, tmp_path):
    with pytest.raises(LakeError, match=r"agent_actions does not exist"):
        load_lake(spark, tmp_path)
    (tmp_path / "agent_actions").mkdir()
    (tmp_path / "agent_actions" / "notes.txt").write_text(json.dumps({"x": 1}))
    with pytest.raises(LakeError, match=r"agent_actions holds no .parquet or .json\(l\) files"):
        load_lake(spark, tmp_path)


def test_tables_without_rows_load_from_either_writer(spark, tmp_path):
    """A warehouse or landing without captured content has no content_entities rows: lake-export
    writes a file of the schema, Spark's ingest too, and a folder Spark left with only _SUCCESS
    (a partitioned write of no rows) is an empty table as well."""
    from detectors.core.warehouse import connect
    from detectors.spark.ingest import CANONICAL_OUTPUT, write_canonical

    con = connect(tmp_path / "wh.duckdb")
    try:
        assert export_lake(con, tmp_path / "exported") == dict.fromkeys(LAKE_TABLES, 0)
    finally:
        con.close()
    content = tmp_path / "exported" / "content_entities"
    assert [p.name for p in content.iterdir()] == [EMPTY_FILE]
    columns = duckdb.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(content / "*")])
    assert [c[0] for c in columns.fetchall()][:3] == ["event_id", "ts", "day"]
    assert load_lake(spark, tmp_path / "exported") == dict.fromkeys(LAKE_TABLES, 0)

    for table in CANONICAL_OUTPUT:
        spark.createDataFrame([], table_schema(table)).createOrReplaceTempView(table)
    write_canonical(spark, str(tmp_path / "ingested"))
    assert load_lake(spark, tmp_path / "ingested") == dict.fromkeys(LAKE_TABLES, 0)
    content = tmp_path / "ingested" / "content_entities"
    shutil.rmtree(content)
    content.mkdir()
    (content / "_SUCCESS").write_text("")
    assert load_lake(spark, tmp_path / "ingested") == dict.fromkeys(LAKE_TABLES, 0)
    assert "entity_hash" in spark.table("content_entities").columns
    assert build_derived(spark)["argument_provenance"] == 0
