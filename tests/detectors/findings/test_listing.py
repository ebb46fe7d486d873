"""Findings listings: filters (each alone, boundaries, injections), order, summaries, triage."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from detectors.findings.listing import (
    finding_ids,
    finding_status,
    findings_by_rule_severity,
    list_findings,
    top_open_findings,
)
from detectors.findings.merge import set_triage

T0 = datetime(2026, 11, 1, 9, 0)


def add_finding(con: duckdb.DuckDBPyConnection, finding_id: str, **values) -> None:
    """Insert one finding with plausible defaults for the columns not given."""
    row = {
        "finding_id": finding_id,
        "rule_id": "rule_a",
        "title": "A rule",
        "severity": "high",
        "risk_score": 50,
        "confidence": "high",
        "analytic_type": "rule",
        "entity_type": "task",
        "entity_id": "task-1",
        "agent_id": "agent-1",
        "task_id": "task-1",
        "first_seen": T0,
        "last_seen": T0,
        "evidence_event_ids": ["e1"],
        "detail": "what happened",
        "status": "new",
        "first_detected_at": T0,
        "last_detected_at": T0,
        "priority": 50,
        **values,
    }
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    con.execute(f"INSERT INTO findings ({columns}) VALUES ({marks})", list(row.values()))


@pytest.fixture
def findings(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Five findings that differ in one filtered column each from f_base."""
    add_finding(con, "f_base")
    add_finding(con, "f_sev", severity="medium")
    add_finding(con, "f_rule", rule_id="rule_b")
    add_finding(con, "f_agent", agent_id="agent-2")
    add_finding(con, "f_status", status="resolved")
    return con


def ids(rows) -> list[str]:
    return [r["finding_id"] for r in rows.records()]


def test_no_filter_lists_every_finding(findings):
    assert sorted(ids(list_findings(findings))) == [
        "f_agent",
        "f_base",
        "f_rule",
        "f_sev",
        "f_status",
    ]


@pytest.mark.parametrize(
    ("option", "value", "excluded"),
    [
        ("severity", "high", "f_sev"),
        ("rule_id", "rule_a", "f_rule"),
        ("agent_id", "agent-1", "f_agent"),
        ("status", "new", "f_status"),
    ],
)
def test_each_filter_alone_excludes_only_its_mismatch(findings, option, value, excluded):
    every = {"f_agent", "f_base", "f_rule", "f_sev", "f_status"}
    assert set(ids(list_findings(findings, **{option: value}))) == every - {excluded}
    assert ids(list_findings(findings, **{option: "nothing-matches"})) == []
    assert set(ids(list_findings(findings, **{option: ""}))) == every  # "" is no filter


def test_filters_combine(findings):
    assert ids(list_findings(findings, severity="medium", agent_id="agent-1")) == ["f_sev"]
    assert ids(list_findings(findings, severity="medium", agent_id="agent-2")) == []


def test_since_includes_its_boundary_and_excludes_a_microsecond_earlier(con):
    add_finding(con, "f_at", last_seen=T0)
    add_finding(con, "f_before", last_seen=T0 - timedelta(microseconds=1))
    add_finding(con, "f_after", last_seen=T0 + timedelta(microseconds=1))
    assert sorted(ids(list_findings(con, since="2026-11-01T09:00:00"))) == ["f_after", "f_at"]
    assert sorted(ids(list_findings(con, since="2026-11-01T09:00:00.000001"))) == ["f_after"]


def test_order_is_priority_then_risk_then_recency_then_id(con):
    add_finding(con, "f_null", priority=None, risk_score=99)
    add_finding(con, "f_low", priority=10)
    add_finding(con, "f_risk", priority=60, risk_score=40)
    add_finding(con, "f_risk_hi", priority=60, risk_score=41)
    add_finding(con, "f_old", priority=60, risk_score=40, last_seen=T0 - timedelta(hours=1))
    add_finding(con, "f_a_first", priority=60, risk_score=40)
    assert ids(list_findings(con)) == [
        "f_risk_hi",
        "f_a_first",
        "f_risk",
        "f_old",
        "f_low",
        "f_null",
    ]


def test_columns_are_known_without_rows(con):
    found = list_findings(con)
    assert found.rows == []
    assert found.columns[:3] == ["finding_id", "rule_id", "severity"]
    assert {"analytic_type", "explanation", "detail", "evidence_event_ids"} <= set(found.columns)


@pytest.mark.parametrize(
    "text", ["agent-1' OR '1'='1", "x'; DROP TABLE findings; --", "agent-1\x00"]
)
def test_injections_are_values(findings, text):
    for option in ("agent_id", "rule_id", "severity", "status"):
        assert ids(list_findings(findings, **{option: text})) == []
    assert findings.execute("SELECT count(*) FROM findings").fetchone()[0] == 5


def test_finding_ids_are_those_listed_for_the_same_filters(findings):
    assert finding_ids(findings, severity="high", status="new") == {
        "f_base",
        "f_rule",
        "f_agent",
    }
    assert finding_ids(findings, rule_id="none") == set()


def test_findings_by_rule_severity_counts_open_and_suppressed(con):
    add_finding(con, "f1")
    add_finding(con, "f2", status="in_progress")
    add_finding(con, "f3", status="suppressed")
    add_finding(con, "f4", status="resolved")
    add_finding(con, "f5", severity="low")
    add_finding(con, "f6", rule_id="rule_b")
    assert findings_by_rule_severity(con) == [
        ("rule_a", "high", 4, 2, 1),
        ("rule_a", "low", 1, 1, 0),
        ("rule_b", "high", 1, 1, 0),
    ]


def test_top_open_findings_skip_closed_ones_and_cut_detail_and_evidence(con):
    add_finding(
        con,
        "f_top",
        priority=90,
        task_id=None,
        agent_id=None,
        detail="d" * 80,
        evidence_event_ids=["e1", "e2", "e3", "e4", "e5"],
    )
    add_finding(con, "f_progress", priority=70, status="in_progress")
    add_finding(con, "f_suppressed", priority=99, status="suppressed")
    add_finding(con, "f_resolved", priority=99, status="resolved")
    add_finding(con, "f_third", priority=10)
    assert top_open_findings(con, 2) == [
        ("f_top", "high", 90, "rule_a", "-", "-", "d" * 70, "e1 e2 e3 e4"),
        ("f_progress", "high", 70, "rule_a", "task-1", "agent-1", "what happened", "e1"),
    ]
    assert [r[0] for r in top_open_findings(con, 5)] == ["f_top", "f_progress", "f_third"]


def test_finding_status_after_triage(con):
    add_finding(con, "f1")
    assert finding_status(con, "f1") == ("new", None)
    assert set_triage(con, "f1", "in_progress", "paged owner")
    assert finding_status(con, "f1") == ("in_progress", "paged owner")
    assert finding_status(con, "f_nope") is None
