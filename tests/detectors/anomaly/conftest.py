"""Shared by the anomaly tests: a task generator and ``task_features`` made in SQL."""

from __future__ import annotations

from datetime import datetime

import pytest

from detectors.anomaly.signals import FEATURES
from detectors.derive.tables import build_derived_tables
from tests.conftest import native_task

TRAIN_UNTIL = datetime(2026, 11, 15)
SCORE_SINCE = datetime(2026, 11, 15)


def run_task(task: str, agent: str, day: int, tools: list[str]) -> list[dict]:
    """A task on 2026-11-<day> doing ``tools`` one minute apart."""
    records = native_task(
        task, agent, f"2026-11-{day:02d}T09:00:00Z", f"2026-11-{day:02d}T10:00:00Z"
    )
    for n, tool in enumerate(tools):
        records.append(
            {
                "record_type": "action",
                "event_id": f"{task}-a{n:02d}",
                "ts": f"2026-11-{day:02d}T09:{n + 1:02d}:00Z",
                "agent_id": agent,
                "task_id": task,
                "tool": tool,
            }
        )
    return records


# One normal task per i: independent pseudo-random values (a hash of i and the column name);
# reads are skewed like real counts (median 3, a few tasks up to 10).
READS = """CASE WHEN hash(i, 'reads') % 100 < 40 THEN 2 WHEN hash(i, 'reads') % 100 < 70 THEN 3
    WHEN hash(i, 'reads') % 100 < 85 THEN 4 WHEN hash(i, 'reads') % 100 < 93 THEN 5
    WHEN hash(i, 'reads') % 100 < 98 THEN 7 ELSE 10 END"""
NORMAL = f"""{READS} AS reads, hash(i, 'writes') % 2 AS writes,
    {READS} + hash(i, 'writes') % 2 + hash(i, 'other') % 7 AS actions,
    2 + hash(i, 'tools') % 2 AS distinct_tools, 1 AS distinct_systems,
    hash(i, 'destinations') % 3 AS distinct_destinations, 300 + hash(i, 'duration') % 300 AS duration_s,
    1 AS credentials_used, 900 AS max_ttl_s, hash(i, 'errors') % 4 AS errors"""


@pytest.fixture
def features(con):
    """``task_features`` made in SQL: group ``big`` (5 agents, 200 training tasks before
    TRAIN_UNTIL, 20 normal tasks after it and ``odd``: 40 reads where peers do 2-4) and group
    ``small`` (one agent, 10 tasks: a cold start)."""
    build_derived_tables(con)  # empty warehouse: creates task_features with its real columns
    con.execute(
        f"""INSERT INTO task_features BY NAME
           SELECT 'n-' || lpad(i::VARCHAR, 3, '0') AS task_id, 'agent-' || (i % 5) AS agent_id,
               TIMESTAMP '2026-11-01' + to_hours(i) AS started_at, {NORMAL}
           FROM range(200) t(i)"""
    )
    con.execute(
        f"""INSERT INTO task_features BY NAME
           SELECT 's-' || lpad((i - 1000)::VARCHAR, 2, '0') AS task_id, 'agent-' || (i % 5) AS agent_id,
               TIMESTAMP '2026-11-16' + to_hours(i - 1000) AS started_at, {NORMAL}
           FROM range(1000, 1020) t(i)
           UNION ALL BY NAME
           SELECT 'odd' AS task_id, 'agent-1' AS agent_id, TIMESTAMP '2026-11-16 12:00' AS started_at,
               40 AS reads, 1 AS writes, 44 AS actions, 3 AS distinct_tools, 1 AS distinct_systems,
               1 AS distinct_destinations, 400 AS duration_s, 1 AS credentials_used,
               900 AS max_ttl_s, 1 AS errors
           UNION ALL BY NAME
           SELECT 'small-' || i AS task_id, 'lonely-agent' AS agent_id,
               TIMESTAMP '2026-11-03' + to_days(i) AS started_at, 3 AS reads, 3 AS actions
           FROM range(10) t(i)"""
    )
    for column in FEATURES:
        con.execute(f"UPDATE task_features SET {column} = coalesce({column}, 0)")
    con.execute("UPDATE task_features SET hour_of_day = 9 + hash(task_id) % 8")
    con.execute(
        """CREATE TABLE agent_peer_groups AS
           SELECT DISTINCT agent_id,
               CASE WHEN agent_id = 'lonely-agent' THEN 'small' ELSE 'big' END AS peer_group,
               'test' AS method
           FROM task_features"""
    )
    return con


def scores_of(con) -> dict[str, tuple]:
    rows = con.execute(
        """SELECT task_id, iforest_score, iforest_percentile, baseline_score, version
           FROM task_anomaly_scores ORDER BY task_id"""
    ).fetchall()
    return {r[0]: r[1:] for r in rows}
