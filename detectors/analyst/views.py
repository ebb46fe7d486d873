"""What the `chainwatch` commands show about a run, a task or the recommendations.

Each function runs one query of ``sql/`` with bound ``$name`` parameters and returns its rows.
The task views (:func:`task_header`, :func:`task_timeline`, :func:`task_findings`) and
:func:`most_urgent_open_finding` read the analyst database; the others read the warehouse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from detectors.core.warehouse import has_table
from detectors.findings.listing import Rows, query


def records_by_format(con: duckdb.DuckDBPyConnection, since: datetime) -> list[tuple]:
    """Per source format of the files ingested since ``since``: (format, files, records, loaded,
    rejected, duplicates)."""
    return query(con, "records_by_format_since", since=since).rows


def busiest_tasks(con: duckdb.DuckDBPyConnection, limit: int) -> list[tuple]:
    """The ``limit`` tasks with most actions: (task_id, agent_id, actions, started_at, ended_at,
    end_source, status)."""
    return query(con, "busiest_tasks", limit=limit).rows


def anomaly_summary(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Per peer group: (peer_group, tasks, model, tasks at p99+, max percentile); [] before any
    scoring."""
    if not has_table(con, "task_anomaly_scores"):
        return []
    return query(con, "anomaly_scores_by_peer_group").rows


def task_header(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, Any] | None:
    """The task with its risk_score, anomaly_percentile and rule_findings; None if unknown."""
    records = query(con, "task_header", task_id=task_id).records()
    return records[0] if records else None


def task_timeline(con: duckdb.DuckDBPyConnection, task_id: str) -> list[dict[str, Any]]:
    """The task's events in time order; ``is_evidence`` marks evidence of its findings."""
    evidence = {
        event_id
        for (ids,) in query(con, "task_evidence_events", task_id=task_id).rows
        for event_id in ids
    }
    events = query(con, "task_timeline_events", task_id=task_id).records()
    return [{**e, "is_evidence": e["event_id"] in evidence} for e in events]


def task_findings(con: duckdb.DuckDBPyConnection, task_id: str) -> list[tuple]:
    """The task's findings: (finding_id, priority, severity, rule_id, detail cut to 90)."""
    return query(con, "task_findings", task_id=task_id).rows


def recommendations(
    con: duckdb.DuckDBPyConnection, *, agent_id: str | None = None, category: str | None = None
) -> Rows:
    """Every column of the recommendations of ``agent_id`` and ``category`` (None: all)."""
    return query(con, "recommendations_filtered", agent_id=agent_id, category=category)


def most_urgent_open_finding(con: duckdb.DuckDBPyConnection) -> str | None:
    """The id of the first finding of ``findings_open``, or None if none is open."""
    rows = query(con, "most_urgent_open_finding").rows
    return rows[0][0] if rows else None
