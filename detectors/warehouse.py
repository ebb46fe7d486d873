"""Open the chainwatch DuckDB warehouse with the settings every stage relies on."""

from __future__ import annotations

import contextlib
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
    created = not read_only and not path.exists()
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
        if read_only:
            con.execute("SET TimeZone = 'UTC'")
            return con
        try:
            return prepare(con)
        except BaseException:
            con.close()
            raise
    except (duckdb.Error, OSError) as exc:
        if created:  # half written (a full disk): left there, it would stop every later open
            for leftover in (path, Path(f"{path}.wal")):
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
        raise WarehouseError(f"cannot open warehouse {path}: {exc}") from exc


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every canonical table."""
    return {
        table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
        for table in CANONICAL_TABLES
    }
