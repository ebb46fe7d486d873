"""Link credentials, actions and tasks after records are loaded (set-based SQL)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

import duckdb

from detectors.core.sqlfiles import run_sql


def link_credential_events(con: duckdb.DuckDBPyConnection) -> int:
    """Give credential events without a task the task of their credential's issue; rows linked."""
    run_sql(con, "credential_owner")
    before = _unlinked(con, "credential_events")
    run_sql(con, "link_credential_events")
    return before - _unlinked(con, "credential_events")


def link_agent_actions(con: duckdb.DuckDBPyConnection) -> int:
    """Give actions without a task the task of the credential they were made with; rows linked."""
    run_sql(con, "credential_owner")
    before = _unlinked(con, "agent_actions")
    run_sql(con, "link_agent_actions")
    return before - _unlinked(con, "agent_actions")


def refresh_tasks(con: duckdb.DuckDBPyConnection, days: Iterable[date]) -> int:
    """Rebuild every task with activity on ``days`` (and any the linking changed); rows rebuilt."""
    con.execute("CREATE OR REPLACE TEMP TABLE target_days (day DATE)")
    con.executemany("INSERT INTO target_days VALUES (?)", [(d,) for d in days])
    if not _exists(con, "linked_tasks"):
        con.execute("CREATE TEMP TABLE linked_tasks (task_id VARCHAR)")
    run_sql(con, "affected_tasks_days")
    run_sql(con, "build_tasks", {"now": datetime.now(UTC).replace(tzinfo=None)})
    return con.execute("SELECT count(*) FROM affected_tasks").fetchone()[0]


def _unlinked(con: duckdb.DuckDBPyConnection, table: str) -> int:
    sql = {
        "agent_actions": "SELECT count(*) FROM agent_actions WHERE task_id IS NULL",
        "credential_events": "SELECT count(*) FROM credential_events WHERE task_id IS NULL",
    }[table]
    return con.execute(sql).fetchone()[0]


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [table]
        ).fetchone()[0]
    )
