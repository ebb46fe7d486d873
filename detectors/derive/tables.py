"""Derived tables the detections read: credential lifecycles, task sequences and features, and
argument provenance (where each critical argument of an action first appeared in its task)."""

from __future__ import annotations

import math

import duckdb
import sqlglot
from sqlglot import exp

from detectors.core.sqlfiles import load_sql, run_sql

DERIVED_TABLES = (
    "credential_lifecycles",
    "task_sequences",
    "argument_provenance",
    "task_features",
)
# Actions per pass of task_sequences: DuckDB holds an ordered list aggregate in memory (it does
# not spill), so a big history is built in passes over hash buckets of task ids.
SEQUENCE_PASS_ACTIONS = 500_000


def build_credential_lifecycles(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild `credential_lifecycles` from the canonical tables; its row count."""
    run_sql(con, "credential_lifecycles")
    return con.execute("SELECT count(*) FROM credential_lifecycles").fetchone()[0]


def build_task_sequences(
    con: duckdb.DuckDBPyConnection, pass_actions: int = SEQUENCE_PASS_ACTIONS
) -> int:
    """Rebuild `task_sequences` from `agent_actions`, in passes of about ``pass_actions`` actions
    (whole tasks, by hash of the task id); its row count."""
    actions = con.execute(
        "SELECT count(*) FROM agent_actions WHERE task_id IS NOT NULL"
    ).fetchone()[0]
    passes = max(1, math.ceil(actions / max(pass_actions, 1)))
    if passes == 1:
        run_sql(con, "task_sequences")
    else:
        query = _bucketed(load_sql("task_sequences")[0])
        con.begin()
        try:
            for bucket in range(passes):
                verb = (
                    "CREATE OR REPLACE TABLE task_sequences AS"
                    if bucket == 0
                    else "INSERT INTO task_sequences"
                )
                con.execute(f"{verb} {query}", {"passes": passes, "bucket": bucket})
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return con.execute("SELECT count(*) FROM task_sequences").fetchone()[0]


def _bucketed(create_statement: str) -> str:
    """The query of ``CREATE TABLE x AS <query GROUP BY key>`` restricted to one hash bucket of
    its group key (bound parameters $passes and $bucket)."""
    query = sqlglot.parse_one(create_statement, read="duckdb").expression
    key = query.args["group"].expressions[0]
    bucket = exp.EQ(
        this=exp.Mod(this=exp.func("hash", key.copy()), expression=exp.Placeholder(this="passes")),
        expression=exp.Placeholder(this="bucket"),
    )
    return query.where(bucket).sql(dialect="duckdb")


def build_argument_provenance(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild `argument_provenance` from content_entities and agent_actions; its row count."""
    run_sql(con, "argument_provenance")
    return con.execute("SELECT count(*) FROM argument_provenance").fetchone()[0]


def build_task_features(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild `task_features` (needs `credential_lifecycles`); its row count."""
    run_sql(con, "task_features")
    return con.execute("SELECT count(*) FROM task_features").fetchone()[0]


def build_derived_tables(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rebuild every derived table."""
    return {
        "credential_lifecycles": build_credential_lifecycles(con),
        "task_sequences": build_task_sequences(con),
        "argument_provenance": build_argument_provenance(con),
        "task_features": build_task_features(con),
    }
