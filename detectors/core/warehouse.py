"""Open the chainwatch DuckDB warehouse with the settings every stage relies on."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import duckdb

from detectors.core.sqlfiles import run_sql

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


MEMORY_LIMIT_ENV = "CHAINWATCH_MEMORY_LIMIT"
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|[KMGT]i?B)", re.IGNORECASE)


def apply_session_settings(con: duckdb.DuckDBPyConnection) -> None:
    """UTC, and DuckDB's memory limit from $CHAINWATCH_MEMORY_LIMIT (e.g. ``3GB``) when set.

    Without a limit DuckDB may cache up to 80 % of the machine's memory; with one it evicts and
    spills to ``<warehouse>.tmp`` instead, which bounds the process on a shared machine.
    """
    con.execute("SET TimeZone = 'UTC'")
    limit = memory_limit()
    if limit:
        con.execute(
            f"SET memory_limit = '{limit}'"
        )  # checked to be a plain size: SET binds nothing


def memory_limit() -> str | None:
    """The DuckDB memory limit asked for in $CHAINWATCH_MEMORY_LIMIT, checked to be a size."""
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if limit and not _MEMORY_SIZE.fullmatch(limit):
        raise WarehouseError(
            f"${MEMORY_LIMIT_ENV}={limit[:40]!r} is not a memory size such as 3GB or 512MiB"
        )
    return limit or None


def prepare(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Apply session settings and create any missing table."""
    apply_session_settings(con)
    run_sql(con, "schema")
    return con


def connect(db_path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Connect to the warehouse file, creating it (and its folder) when writing."""
    path = Path(db_path)
    memory_limit()  # a bad value fails before any file is made
    created = not read_only and not path.exists()
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
        if read_only:
            apply_session_settings(con)
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


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Base tables of the current database's main schema (not views, not temp tables)."""
    return {
        r[0]
        for r in con.execute(
            """SELECT table_name FROM information_schema.tables
               WHERE table_catalog = current_database() AND table_schema = 'main'
                 AND table_type = 'BASE TABLE'"""
        ).fetchall()
    }


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True if a table or view called `name` is visible to the connection (temp ones too)."""
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchone()[0]
    )


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: Any = None) -> Any:
    """The first column of the first row of `query` (an aggregate, say)."""
    row = con.execute(query, params).fetchone()
    if row is None:
        raise WarehouseError(f"query returned no row: {query.strip().splitlines()[0][:80]}")
    return row[0]
