"""Least-privilege recommendations: what each agent was granted against what it used.

:func:`build_recommendations` rebuilds the ``recommendations`` table (``sql/recommendations.sql``,
columns in ``docs/schema.md``) from the canonical tables and ``tasks``: per agent, the scopes it
was granted and whether it used them, the systems and access (read, write, delegate, egress) it
used, and its issued TTLs against the TTL its task durations call for.
"""

from __future__ import annotations

import duckdb

from detectors.core.sqlfiles import run_sql

# The SQL reads peer groups through this temporary view, so it binds whether or not the anomaly
# layer has built agent_peer_groups yet (without it, peer_group is NULL).
_PEER_GROUPS_VIEW = """CREATE OR REPLACE TEMP VIEW recommendation_peer_groups AS
    SELECT agent_id, peer_group FROM main.agent_peer_groups"""
_NO_PEER_GROUPS_VIEW = """CREATE OR REPLACE TEMP VIEW recommendation_peer_groups AS
    SELECT CAST(NULL AS VARCHAR) AS agent_id, CAST(NULL AS VARCHAR) AS peer_group WHERE false"""


def _has_peer_groups(con: duckdb.DuckDBPyConnection) -> bool:
    return (
        con.execute(
            """SELECT count(*) FROM duckdb_tables()
               WHERE database_name = current_database() AND schema_name = 'main'
                 AND table_name = 'agent_peer_groups'"""
        ).fetchone()[0]
        > 0
    )


def build_recommendations(
    con: duckdb.DuckDBPyConnection,
    *,
    window_days: int = 30,
    ttl_margin: float = 1.25,
    ttl_floor_s: int = 300,
) -> int:
    """Rebuild ``recommendations``; its row count.

    ``window_days``: the last UTC days of data considered, ending with the day of the newest action
    or credential event. The recommended TTL is ``max(ttl_floor_s, p95 task duration *
    ttl_margin)`` rounded up to the minute.
    """
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    if ttl_margin <= 0:
        raise ValueError(f"ttl_margin must be positive, got {ttl_margin}")
    if ttl_floor_s < 0:
        raise ValueError(f"ttl_floor_s must be at least 0, got {ttl_floor_s}")
    con.execute(_PEER_GROUPS_VIEW if _has_peer_groups(con) else _NO_PEER_GROUPS_VIEW)
    try:
        run_sql(
            con,
            "recommendations",
            {
                "window_days": int(window_days),
                "ttl_margin": float(ttl_margin),
                "ttl_floor_s": int(ttl_floor_s),
            },
        )
    finally:
        con.execute("DROP VIEW IF EXISTS recommendation_peer_groups")
    return con.execute("SELECT count(*) FROM recommendations").fetchone()[0]
