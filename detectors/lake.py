"""The lake: canonical tables as Parquet folders that Spark, DuckDB and Trino all read.

``<lake>/<table>/day=YYYY-MM-DD/*.parquet`` for the event tables (partitioned by event day) and
``<lake>/tasks/tasks.parquet``. The Spark engine (``detectors/spark``) reads this layout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

DAY_TABLES = ("agent_actions", "credential_events", "task_events", "agent_spans")
LAKE_TABLES = (*DAY_TABLES, "tasks")


class LakeError(RuntimeError):
    """A lake path or table that cannot be read or written; the message names it."""


def export_lake(con: duckdb.DuckDBPyConnection, lake: str | Path) -> dict[str, int]:
    """Write the warehouse's canonical tables to ``lake`` (each table folder replaced whole, so a
    rerun never duplicates); the rows written per table."""
    root = Path(lake)
    counts = {}
    for table in LAKE_TABLES:
        folder = root / table
        if folder.exists():
            if not folder.is_dir():
                raise LakeError(f"{folder} exists and is not a folder")
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if table in DAY_TABLES:
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
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
    return counts
