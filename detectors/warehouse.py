"""Open the chainwatch DuckDB warehouse with the settings every stage relies on."""

from __future__ import annotations

from pathlib import Path

import duckdb

from detectors.sqlfiles import run_sql

CANONICAL_TABLES = (
    "agent_actions",
    "credential_events",
    "task_events",
    "agent_spans",
    "tasks",
    "rejected_events",
)


class WarehouseError(RuntimeError):
    """The warehouse file cannot be opened or written; the message names it."""


def prepare(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Apply session settings (UTC) and create any missing table."""
    con.execute("SET TimeZone = 'UTC'")
    run_sql(con, "schema")
    return con


def connect(db_path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Connect to the warehouse file, creating it (and its folder) when writing."""
    path = Path(db_path)
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
    except (duckdb.Error, OSError) as exc:
        raise WarehouseError(f"cannot open warehouse {path}: {exc}") from exc
    if read_only:
        con.execute("SET TimeZone = 'UTC'")
        return con
    return prepare(con)


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every canonical table."""
    return {
        table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
        for table in CANONICAL_TABLES
    }
