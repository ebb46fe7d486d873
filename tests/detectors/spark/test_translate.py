"""DuckDB SQL to Spark SQL: each rewrite, and the same values from both engines."""

from __future__ import annotations

import duckdb
import pytest

from detectors.rules.engine import RULE_META_COLUMNS, merge_hits, start_hits
from detectors.spark.translate import TranslationError, spark_schema, to_spark, translate_statements


def test_parameters_become_typed_literals_never_pasted_text():
    sql = to_spark(
        "SELECT * FROM t WHERE a = $name AND list_contains($kinds, b) AND c > $n AND d = $flag",
        {"name": "x' OR '1'='1", "kinds": ["k1", "k'2"], "n": 5, "flag": True},
    )
    assert "'x\\' OR \\'1\\'=\\'1'" in sql
    assert "ARRAY_CONTAINS(ARRAY('k1', 'k\\'2'), b)" in sql
    assert "c > 5" in sql and "d = TRUE" in sql


def test_rule_meta_has_one_declaration_for_both_engines(con):
    assert spark_schema(RULE_META_COLUMNS) == (
        "rule_id STRING, title STRING, severity STRING, risk_score INT, confidence STRING, "
        "analytic_type STRING, entity_type STRING, frameworks STRING"
    )
    start_hits(con)
    merge_hits(con, [])
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'rule_meta'"
    ).fetchall()
    assert columns == list(RULE_META_COLUMNS)
    with pytest.raises(TranslationError, match="TIMESTAMP"):
        spark_schema([("seen", "TIMESTAMP")])


def test_missing_parameter_names_the_source():
    with pytest.raises(TranslationError, match=r"rules/x.yaml: parameter \$limit has no value"):
        to_spark("SELECT * FROM t WHERE a > $limit", {}, source="rules/x.yaml")


def test_unparseable_sql_names_the_source():
    with pytest.raises(TranslationError, match="rules/bad.sql: cannot parse"):
        to_spark("SELECT FROM WHERE (", source="rules/bad.sql")


@pytest.fixture
def sql_dir(tmp_path, monkeypatch):
    """A folder standing in for ``sql/`` (write <name>.sql files into it)."""
    from detectors.core import sqlfiles

    monkeypatch.setattr(sqlfiles, "SQL_DIR", tmp_path)
    sqlfiles.load_sql.cache_clear()
    yield tmp_path
    sqlfiles.load_sql.cache_clear()


def test_only_table_building_statements_translate(sql_dir):
    (sql_dir / "mixed.sql").write_text(
        "CREATE OR REPLACE TEMP TABLE a AS SELECT 1 AS x;\nDROP TABLE a;\n"
        "ALTER TABLE b ADD COLUMN y INTEGER;\n"
    )
    first_two = translate_statements("mixed", first=2)
    assert [(s.kind, s.table) for s in first_two] == [("create", "a"), ("drop", "a")]
    with pytest.raises(TranslationError, match=r"sql/mixed.sql statement 3: .* not ALTER"):
        translate_statements("mixed")


def test_update_needs_from_and_where_and_known_columns(sql_dir):
    (sql_dir / "plain.sql").write_text("UPDATE b SET x = 1;\n")
    (sql_dir / "unknown.sql").write_text("UPDATE b SET nope = s.x FROM s WHERE b.id = s.id;\n")
    with pytest.raises(TranslationError, match="needs the columns"):
        translate_statements("plain")
    with pytest.raises(TranslationError, match=r"statement 1: only UPDATE \.\.\. FROM"):
        translate_statements("plain", columns=lambda t: ["x"])
    with pytest.raises(TranslationError, match="b has no column nope"):
        translate_statements("unknown", columns=lambda t: ["id", "x"])


# DELETE and UPDATE ... FROM (a NULL condition keeps a row; unmatched rows keep their values),
# INSERT by position and BY NAME (missing columns NULL): the ingest commit and linking use them.
CHANGES_SQL = """
CREATE OR REPLACE TEMP TABLE t AS SELECT * FROM (VALUES
    (1, 'a', NULL), (2, 'b', 5), (3, NULL, 7), (4, 'd', 8), (5, 'e', NULL), (8, 'h', 9)
) v(id, name, n);
CREATE OR REPLACE TEMP TABLE s AS SELECT * FROM (VALUES (1, 10), (3, 30), (9, 90)) v(id, n);
UPDATE t SET n = s.n + coalesce(t.n, 0), name = coalesce(t.name, 'filled') FROM s WHERE t.id = s.id;
UPDATE t SET name = upper(t.name) FROM (SELECT 4 AS id) u WHERE t.id = u.id AND t.n IS NOT NULL;
DELETE FROM t WHERE n < 6;
DELETE FROM t WHERE id IN (SELECT id + 5 FROM s);
INSERT INTO t BY NAME SELECT 'g' AS name, 7 AS id;
INSERT INTO t SELECT 6, 'f', 60;
"""


def test_delete_update_and_insert_change_rows_as_in_duckdb(spark, sql_dir):
    from detectors.spark.engine import run_statements

    (sql_dir / "changes.sql").write_text(CHANGES_SQL)
    con = duckdb.connect()
    con.execute(CHANGES_SQL)
    expected = con.execute("SELECT id, name, n FROM t ORDER BY id").fetchall()
    assert expected == [
        (1, "a", 10),
        (3, "filled", 37),
        (4, "D", 8),
        (5, "e", None),
        (6, "f", 60),
        (7, "g", None),
    ]
    run_statements(spark, "changes")
    rows = [tuple(r) for r in spark.sql("SELECT id, name, n FROM t ORDER BY id").collect()]
    assert rows == expected


def test_ordered_list_keeps_its_order():
    sql = to_spark("SELECT list(x ORDER BY k1, k2) AS l FROM t")
    assert "ARRAY_SORT(COLLECT_LIST(STRUCT(k1 AS k0, k2 AS k1, x AS v)))" in sql
    # A DESC key needs a comparator; DISTINCT collects a set.
    sql = to_spark("SELECT list(DISTINCT x ORDER BY x DESC) AS l FROM t")
    assert "ARRAY_SORT(COLLECT_SET(STRUCT(x AS k0, x AS v)), (l, r) -> CASE" in sql


def test_rewrites_keep_operator_precedence():
    sql = to_spark("SELECT date_diff('second', a, b) / 86400.0, isodow(t) * 2, epoch(t) * 2 FROM x")
    assert (
        "(UNIX_SECONDS(CAST(b AS TIMESTAMP)) - UNIX_SECONDS(CAST(a AS TIMESTAMP))) / 86400.0" in sql
    )
    assert "(WEEKDAY(t) + 1) * 2" in sql
    assert "(UNIX_MICROS(CAST(t AS TIMESTAMP)) / CAST(1000000 AS DOUBLE)) * 2" in sql


def test_non_literal_regexp_full_match_is_refused():
    with pytest.raises(TranslationError, match="regexp_full_match needs a literal pattern"):
        to_spark("SELECT regexp_full_match(a, b) FROM t")


# The same query in both engines: DuckDB runs the original, Spark the translation.
SAME_VALUES = {
    "glob_literal": (
        "SELECT s, s GLOB 'crm:*' AS a, s GLOB 'x?z' AS b, s GLOB '[!c]*' AS c, s GLOB 'a.b(+)*' AS d "
        "FROM (VALUES ('crm:read'), ('xyz'), ('crmx'), ('a.b(+)c'), ('axb(+)'), ('x.z')) t(s) ORDER BY s"
    ),
    "glob_column": (
        "SELECT s, p, s GLOB p AS m FROM (VALUES ('vault:secret/a:read', 'vault:secret*:read'), "
        "('crm.x', 'crm.*'), ('crmx', 'crm.*'), ('a+b', 'a+?'), ('ab', 'a+?'), ('q', '[!a]'), "
        "('a|b', 'a|*'), ('a$', 'a$')) t(s, p) ORDER BY s, p"
    ),
    "isodow_and_hour": (
        "SELECT d, isodow(d) AS dow, hour(d) AS h FROM (VALUES (TIMESTAMP '2026-11-23 01:00:00'), "
        "(TIMESTAMP '2026-11-24 13:00:00'), (TIMESTAMP '2026-11-28 23:59:59'), "
        "(TIMESTAMP '2026-11-29 00:00:00')) t(d) ORDER BY d"
    ),
    "epoch_keeps_fractions": (
        "SELECT epoch(d) AS e FROM (VALUES (TIMESTAMP '2026-11-29 00:00:00.250')) t(d)"
    ),
    "date_diff_counts_second_boundaries": (
        "SELECT date_diff('second', a, b) AS s FROM (VALUES "
        "(TIMESTAMP '2026-11-29 00:00:00.900', TIMESTAMP '2026-11-29 00:00:01.100'), "
        "(TIMESTAMP '2026-11-29 00:00:00.100', TIMESTAMP '2026-11-29 00:00:00.900'), "
        "(TIMESTAMP '2026-11-29 00:00:10', TIMESTAMP '2026-11-29 00:00:00')) t(a, b) ORDER BY s"
    ),
    "ordered_list_and_string_agg": (
        "SELECT g, list(x ORDER BY k, x) AS l, string_agg(x, '>' ORDER BY k, x) AS p "
        "FROM (VALUES (1, 3, 'c'), (1, 1, 'b'), (1, 1, 'a'), (2, 5, 'z')) t(g, k, x) GROUP BY g ORDER BY g"
    ),
    "first_occurrences_with_lambda_index": (
        "SELECT list_filter(l, (x, i) -> list_position(l, x) = i) AS firsts "
        "FROM (VALUES (['a', 'b', 'a', 'c', 'b'])) t(l)"
    ),
    "list_slice": "SELECT string_split('10.1.2.3', '.')[1:$n] AS net",
    "to_seconds_interval": (
        "SELECT a + to_seconds(CAST($g AS BIGINT)) AS later FROM (VALUES (TIMESTAMP '2026-11-29 00:00:00')) t(a)"
    ),
    "regexp_full_match_and_bool_or": (
        r"SELECT s, regexp_full_match(s, '\d{1,3}\.\d{1,3}') AS ip, "
        "list_bool_or(list_transform(['x', s], v -> v = 'y')) AS any_y "
        "FROM (VALUES ('1.22'), ('1.22.3'), ('y')) t(s) ORDER BY s"
    ),
    "array_length_and_least": (
        "SELECT array_length(l) AS n, least(a, b) AS lo, greatest(a, b) AS hi "
        "FROM (VALUES ([1, 2, 3], 4, NULL), ([], NULL, 2)) t(l, a, b) ORDER BY n"
    ),
    "filtered_lists_are_null_when_nothing_passes": (
        "SELECT g, list(x ORDER BY x) FILTER (WHERE x > 1) AS o, list_sort(list(DISTINCT x) FILTER (WHERE x > 1)) AS d, "
        "string_agg(CAST(x AS VARCHAR), ',' ORDER BY x) FILTER (WHERE x > 1) AS s "
        "FROM (VALUES (1, 1), (1, 0), (2, 3), (2, 2), (2, 3)) t(g, x) GROUP BY g ORDER BY g"
    ),
    "ordered_list_desc_keys_struct_values_nulls_last": (
        "SELECT g, list({'x': x, 'k': k} ORDER BY k DESC, x) AS l, list(x ORDER BY k, x DESC) AS a, "
        "list(DISTINCT x ORDER BY x DESC) AS d "
        "FROM (VALUES (1, 3, 'c'), (1, NULL, 'n'), (1, 1, 'b'), (1, 1, 'a'), (1, 3, 'c'), "
        "(1, 1, NULL), (2, 5, 'z')) t(g, k, x) GROUP BY g ORDER BY g"
    ),
    "string_agg_distinct_ordered_null_when_nothing_to_join": (
        "SELECT g, string_agg(DISTINCT x, ', ' ORDER BY x) AS s, "
        "string_agg(DISTINCT x, ', ' ORDER BY x) FILTER (WHERE k > 1) AS f, bool_or(k > 2) AS b "
        "FROM (VALUES (1, 3, 'c'), (1, 1, 'a'), (1, 2, 'c'), (1, 1, NULL), (2, 1, NULL), (3, 5, NULL)) "
        "t(g, k, x) GROUP BY g ORDER BY g"
    ),
    "to_json_keeps_null_fields": (
        "SELECT to_json({'chain': list({'a': x, 'n': k} ORDER BY k DESC), 'none': NULL, 'b': true}) AS j "
        "FROM (VALUES (1, 'x\"/é'), (2, NULL)) t(k, x)"
    ),
    "count_filter_share_and_regexp_matches": (
        "SELECT count(*) FILTER (WHERE regexp_matches(lower(a), '(^|_)(url|id)$')) AS n, "
        "count(*) FILTER (WHERE regexp_matches(lower(a), '(^|_)(url|id)$')) / count(*) AS share "
        "FROM (VALUES ('file_id'), ('URL'), ('body'), ('identity')) t(a)"
    ),
    "list_comprehension": (
        "SELECT [x * 10 FOR x IN l IF x > 1] AS big, [x + 1 FOR x IN l] AS plus FROM (VALUES ([1, 2, 3])) t(l)"
    ),
}
PARAMS = {"n": 2, "g": 90}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SAME_VALUES))
def test_same_values_in_duckdb_and_spark(spark, case):
    sql = SAME_VALUES[case]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    used = {k: v for k, v in PARAMS.items() if f"${k}" in sql}
    expected = [tuple(_plain(v) for v in row) for row in con.execute(sql, used or None).fetchall()]
    got = [tuple(_plain(v) for v in row) for row in spark.sql(to_spark(sql, used)).collect()]
    assert got == expected


def _plain(value):
    if isinstance(value, dict):  # a DuckDB struct; Spark's is a Row
        return tuple(_plain(v) for v in value.values())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "asDict"):
        return tuple(_plain(v) for v in value)
    if isinstance(value, float):
        return round(value, 6)
    if hasattr(value, "tzinfo") and value.tzinfo is not None:  # Spark returns local-zone datetimes
        return value.replace(tzinfo=None)
    return value
