"""Data-quality measurements behind the asset checks: conservation, schema, future timestamps, lag."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import duckdb

from detectors.core.sqlfiles import load_sql
from detectors.core.warehouse import prepare

TIMED_TABLES = ("agent_actions", "credential_events", "task_events", "agent_spans")


def conservation_violations(
    con: duckdb.DuckDBPyConnection, source_files: Iterable[str] = ()
) -> list[dict]:
    """Files whose records are not all accounted for (empty list when conservation holds)."""
    con.execute("CREATE OR REPLACE TEMP TABLE check_files (source_file VARCHAR)")
    files = [(f,) for f in source_files]
    if files:
        con.executemany("INSERT INTO check_files VALUES (?)", files)
    (statement,) = load_sql("check_conservation")
    cursor = con.execute(statement)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def schema_drift(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Differences between the warehouse's canonical tables and ``sql/schema.sql``."""
    reference = prepare(duckdb.connect())
    query = """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"""
    expected = reference.execute(query).fetchall()
    actual = con.execute(query).fetchall()
    missing = sorted(set(expected) - set(actual))
    extra = sorted({row for row in actual if row[0] in {e[0] for e in expected}} - set(expected))
    return [f"missing {t}.{c} {ty}" for t, c, ty in missing] + [
        f"unexpected {t}.{c} {ty}" for t, c, ty in extra
    ]


def future_rows(
    con: duckdb.DuckDBPyConnection,
    days: Iterable[date] | None,
    tolerance_s: int,
    now: datetime | None = None,
) -> dict[str, int]:
    """Rows per table whose event time lies more than ``tolerance_s`` after ``now``."""
    limit = (now or datetime.now(UTC).replace(tzinfo=None)) + timedelta(seconds=tolerance_s)
    day_list = list(days) if days is not None else None
    out = {}
    for table in TIMED_TABLES:
        sql = f"SELECT count(*) FROM {table} WHERE ts > ? AND (? IS NULL OR list_contains(?, day))"  # noqa: S608 - fixed names
        out[table] = con.execute(sql, [limit, day_list, day_list]).fetchone()[0]
    return out


def ingestion_lag(
    con: duckdb.DuckDBPyConnection, days: Iterable[date] | None
) -> dict[str, float | None]:
    """Seconds from event time to ingestion for agent actions (p50, p95, max)."""
    day_list = list(days) if days is not None else None
    row = con.execute(
        """SELECT quantile_cont(lag, 0.5), quantile_cont(lag, 0.95), max(lag) FROM (
               SELECT epoch(ingested_at) - epoch(ts) AS lag FROM agent_actions
               WHERE ? IS NULL OR list_contains(?, day))""",
        [day_list, day_list],
    ).fetchone()
    return {"p50_s": row[0], "p95_s": row[1], "max_s": row[2]}
