"""The lake: canonical tables as Parquet folders that Spark, DuckDB and Trino all read.

``<lake>/<table>/day=YYYY-MM-DD/*.parquet`` for the event tables (partitioned by event day) and
``<lake>/tasks/tasks.parquet``. A table without rows (content_entities when nothing captured
content, e.g. CloudTrail alone) is one Parquet file of its schema and no rows, not partitioned
(``empty.parquet`` here), so that every reader finds the table and its columns; the Spark engine
(``detectors/spark``), which reads this layout, also takes a folder with no files as an empty
table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

DAY_TABLES = (
    "agent_actions",
    "credential_events",
    "task_events",
    "agent_spans",
    "content_entities",
)
LAKE_TABLES = (*DAY_TABLES, "tasks")
# The file an empty table is written as: its schema and no rows.
EMPTY_FILE = "empty.parquet"
# The fitted anomaly models and what scoring needs beside them, under <lake>/models/.
MODEL_TABLES = {
    "anomaly_models": "SELECT * FROM anomaly_models "
    "QUALIFY row_number() OVER (PARTITION BY peer_group ORDER BY version DESC) = 1",
    "agent_peer_groups": "SELECT * FROM agent_peer_groups",
    "sequence_transitions": "SELECT * FROM sequence_transitions",
}


class LakeError(RuntimeError):
    """A lake path or table that cannot be read or written; the message names it."""


def _fresh_folder(folder: Path) -> None:
    if folder.exists():
        if not folder.is_dir():
            raise LakeError(f"{folder} exists and is not a folder")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def export_lake(con: duckdb.DuckDBPyConnection, lake: str | Path) -> dict[str, int]:
    """Write the warehouse's canonical tables to ``lake`` (each table folder replaced whole, so a
    rerun never duplicates); the rows written per table."""
    root = Path(lake)
    counts = {}
    for table in LAKE_TABLES:
        folder = root / table
        _fresh_folder(folder)
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        if not counts[table]:
            # Partitioned, no rows would leave the folder empty: no reader could tell the columns.
            con.execute(
                f"COPY (SELECT * FROM {table}) TO $out (FORMAT PARQUET)",  # noqa: S608
                {"out": str(folder / EMPTY_FILE)},
            )
        elif table in DAY_TABLES:
            con.execute(
                f"COPY (SELECT * FROM {table} ORDER BY day, event_id) TO $out "  # noqa: S608 - fixed names
                "(FORMAT PARQUET, PARTITION_BY (day), FILENAME_PATTERN 'part_{i}')",
                {"out": str(folder)},
            )
        else:
            con.execute(
                f"COPY (SELECT * FROM {table} ORDER BY task_id) TO $out (FORMAT PARQUET)",  # noqa: S608
                {"out": str(folder / f"{table}.parquet")},
            )
    return counts


def export_models(con: duckdb.DuckDBPyConnection, lake: str | Path) -> dict[str, int]:
    """Write the latest anomaly model of each peer group, the agents' peer groups and the sequence
    model to ``<lake>/models/`` (the Spark engine scores with them); rows written per table."""
    counts = {}
    for table, query in MODEL_TABLES.items():
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [table]
        ).fetchone()[0]
        if not exists:
            raise LakeError(
                f"the warehouse has no {table}: refit the models first (chainwatch refit)"
            )
        folder = Path(lake) / "models" / table
        _fresh_folder(folder)
        con.execute(
            f"COPY ({query}) TO $out (FORMAT PARQUET)", {"out": str(folder / f"{table}.parquet")}
        )
        counts[table] = con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]  # noqa: S608
    return counts
