"""Derived tables the detections read: credential lifecycles and task sequences."""

from __future__ import annotations

import duckdb

from detectors.sqlfiles import run_sql

DERIVED_TABLES = ("credential_lifecycles", "task_sequences", "task_features")


def build_credential_lifecycles(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild `credential_lifecycles` from the canonical tables; its row count."""
    run_sql(con, "credential_lifecycles")
    return con.execute("SELECT count(*) FROM credential_lifecycles").fetchone()[0]


def build_task_sequences(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild `task_sequences` from `agent_actions`; its row count."""
    run_sql(con, "task_sequences")
    return con.execute("SELECT count(*) FROM task_sequences").fetchone()[0]


def build_task_features(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild `task_features` (needs `credential_lifecycles`); its row count."""
    run_sql(con, "task_features")
    return con.execute("SELECT count(*) FROM task_features").fetchone()[0]


def build_derived_tables(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild every derived table."""
    return {
        "credential_lifecycles": build_credential_lifecycles(con),
        "task_sequences": build_task_sequences(con),
        "task_features": build_task_features(con),
    }
