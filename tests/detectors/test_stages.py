"""Detection runs: stable finding ids, triage kept across reruns, suppressions kept and marked."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from detectors.findings.merge import set_triage
from detectors.stages import run_detection
from tests.conftest import Ingester

RECORDS = [
    {
        "record_type": "task",
        "event_id": "s",
        "ts": "2026-11-01T10:00:00Z",
        "event": "start",
        "task_id": "task-1",
        "agent_id": "agent-1",
    },
    {
        "record_type": "credential",
        "event_id": "c",
        "ts": "2026-11-01T10:00:01Z",
        "event": "issue",
        "credential_ref": "jit-1",
        "task_id": "task-1",
        "agent_id": "agent-1",
        "ttl_s": 3600,
    },
    {
        "record_type": "action",
        "event_id": "a1",
        "ts": "2026-11-01T10:01:00Z",
        "agent_id": "agent-1",
        "task_id": "task-1",
        "tool": "get_secret",
        "action_class": "read",
        "sensitivity": "high",
    },
    {
        "record_type": "action",
        "event_id": "a2",
        "ts": "2026-11-01T10:02:00Z",
        "agent_id": "agent-1",
        "task_id": "task-1",
        "tool": "send_email",
        "arguments": {"to": "x@evil.example.net"},
    },
    {
        "record_type": "task",
        "event_id": "e",
        "ts": "2026-11-01T10:05:00Z",
        "event": "end",
        "task_id": "task-1",
        "status": "completed",
    },
]
T1 = datetime(2026, 11, 2, 8, 0)
T2 = datetime(2026, 11, 3, 8, 0)


def _snapshot(ingest: Ingester) -> list[dict]:
    return ingest.rows(
        "SELECT * EXCLUDE (first_detected_at, last_detected_at) FROM findings ORDER BY finding_id"
    )


def test_rerun_leaves_findings_unchanged_but_timestamps(ingest: Ingester):
    ingest.lines("day.jsonl", RECORDS)
    first = run_detection(ingest.con, ingest.settings, now=T1)
    assert (
        first.hits["sensitive_read_then_egress"] == 1
        and first.hits["credential_outlived_task"] == 1
    )
    before = _snapshot(ingest)
    second = run_detection(ingest.con, ingest.settings, now=T2)
    assert second.findings == first.findings
    assert _snapshot(ingest) == before
    times = ingest.rows("SELECT first_detected_at, last_detected_at FROM findings")
    assert all(t["first_detected_at"] == T1 and t["last_detected_at"] == T2 for t in times)


def test_triage_status_survives_a_rerun(ingest: Ingester):
    ingest.lines("day.jsonl", RECORDS)
    run_detection(ingest.con, ingest.settings, now=T1)
    finding = ingest.one(
        "SELECT finding_id FROM findings WHERE rule_id = 'sensitive_read_then_egress'"
    )
    assert set_triage(ingest.con, finding, "in_progress", "looking at the mailbox")
    run_detection(ingest.con, ingest.settings, now=T2)
    row = ingest.rows(
        "SELECT status, triage_status, triage_note FROM findings WHERE finding_id = ?", [finding]
    )[0]
    assert row == {
        "status": "in_progress",
        "triage_status": "in_progress",
        "triage_note": "looking at the mailbox",
    }
    assert not set_triage(ingest.con, "f_missing", "resolved")
    with pytest.raises(ValueError):
        set_triage(ingest.con, finding, "ignored")


def test_finding_ids_are_stable_and_distinct_per_rule_and_entity(ingest: Ingester, tmp_path: Path):
    ingest.lines("day.jsonl", RECORDS)
    run_detection(ingest.con, ingest.settings, now=T1)
    ids = ingest.rows("SELECT rule_id, entity_id, finding_id FROM findings ORDER BY rule_id")
    assert len({r["finding_id"] for r in ids}) == len(ids)
    # A second warehouse with the same data (another machine) gives the same ids.
    from detectors.core.warehouse import connect

    other = Ingester(
        connect(tmp_path / "other.duckdb"),
        ingest.settings.with_overrides(db_path=tmp_path / "other.duckdb"),
        tmp_path / "o",
    )
    other.lines("renamed.jsonl", RECORDS)
    run_detection(other.con, other.settings, now=T2)
    assert other.rows("SELECT rule_id, entity_id, finding_id FROM findings ORDER BY rule_id") == ids


def test_suppressed_findings_are_kept_and_marked_until_the_entry_expires(
    ingest: Ingester, tmp_path: Path
):
    allowlist = tmp_path / "suppressions.yaml"
    allowlist.write_text(
        "suppressions:\n"
        "  - {rule: 'sensitive_read_*', entity: 'agent-1', reason: 'mail drop approved by SOC-42', expires: 2026-12-01}\n"
    )
    settings = ingest.settings.with_overrides(suppressions_path=allowlist)
    ingest.lines("day.jsonl", RECORDS)
    run_detection(ingest.con, settings, now=datetime(2026, 11, 2))
    rows = ingest.rows("SELECT rule_id, status, suppression FROM findings ORDER BY rule_id")
    assert {r["rule_id"]: (r["status"], r["suppression"]) for r in rows}[
        "sensitive_read_then_egress"
    ] == ("suppressed", "mail drop approved by SOC-42")
    assert {r["rule_id"]: r["status"] for r in rows}["credential_outlived_task"] == "new"
    run_detection(ingest.con, settings, now=datetime(2026, 12, 2))  # the entry has expired
    assert (
        ingest.one("SELECT status FROM findings WHERE rule_id = 'sensitive_read_then_egress'")
        == "new"
    )


def test_a_malformed_suppression_names_the_entry(ingest: Ingester, tmp_path: Path):
    from detectors.rules.engine import RuleError, load_suppressions

    bad = tmp_path / "s.yaml"
    bad.write_text("- {rule: x, entity: y, reason: z, expires: someday}\n")
    with pytest.raises(RuleError, match=r"suppressions\[0\].*expires"):
        load_suppressions(bad)
    assert load_suppressions(None) == []


def test_run_stages_runs_the_named_stages_in_list_order_whatever_order_they_are_given(
    monkeypatch, tmp_path: Path
):
    from detectors import stages
    from detectors.core.settings import Settings

    ran: list[str] = []
    for name in stages.STAGE_NAMES:
        monkeypatch.setitem(stages.STAGES, name, lambda con, ctx, report, n=name: ran.append(n))
    ctx = stages.StageContext(Settings(db_path=tmp_path / "wh.duckdb"))
    stages.run_stages(None, ctx, ("publish", "rules", "derive"))
    assert ran == ["derive", "rules", "publish"]
    ran.clear()
    stages.run_stages(None, ctx, stages.DETECTION_STAGES)
    assert ran == ["derive", "rules", "score", "flag", "rank", "recommend"]
    assert stages.PUBLICATION_STAGES == ("export", "publish")


def test_run_stages_refuses_an_unknown_stage(tmp_path: Path):
    from detectors import stages
    from detectors.core.settings import Settings

    ctx = stages.StageContext(Settings(db_path=tmp_path / "wh.duckdb"))
    with pytest.raises(ValueError, match="unknown stage"):
        stages.run_stages(None, ctx, ("derive", "dedupe"))


def test_late_data_moving_the_first_event_earlier_in_the_day_keeps_the_finding_id(
    ingest: Ingester,
):
    # The window of a finding id is the day of first_seen, not first_seen itself: a late file
    # with an earlier use of the credential after its task, on the same day, updates the
    # finding, never duplicates it.
    def use(event_id: str, ts: str) -> dict:
        return {
            "record_type": "action",
            "event_id": event_id,
            "ts": ts,
            "agent_id": "agent-1",
            "tool": "read_file",
            "credential_ref": "jit-1",
        }

    ingest.lines("day.jsonl", [*RECORDS, use("u2", "2026-11-01T10:30:00Z")])
    run_detection(ingest.con, ingest.settings, now=T1)
    query = """SELECT finding_id, first_seen FROM findings
               WHERE rule_id = 'credential_used_after_task'"""
    [before] = ingest.rows(query)
    ingest.lines("late.jsonl", [use("u1", "2026-11-01T10:20:00Z")])
    run_detection(ingest.con, ingest.settings, now=T2)
    [after] = ingest.rows(query)
    assert after["finding_id"] == before["finding_id"]
    assert (before["first_seen"], after["first_seen"]) == (
        datetime(2026, 11, 1, 10, 30),
        datetime(2026, 11, 1, 10, 20),
    )


def test_triage_status_wins_over_a_suppression_added_later(ingest: Ingester, tmp_path: Path):
    ingest.lines("day.jsonl", RECORDS)
    run_detection(ingest.con, ingest.settings, now=T1)
    finding = ingest.one(
        "SELECT finding_id FROM findings WHERE rule_id = 'sensitive_read_then_egress'"
    )
    assert set_triage(ingest.con, finding, "in_progress", "checking the recipient")
    allowlist = tmp_path / "suppressions.yaml"
    allowlist.write_text(
        "suppressions:\n"
        "  - {rule: 'sensitive_read_*', entity: 'agent-1', reason: 'approved', expires: 2026-12-01}\n"
    )
    run_detection(ingest.con, ingest.settings.with_overrides(suppressions_path=allowlist), now=T2)
    row = ingest.rows("SELECT status, suppression FROM findings WHERE finding_id = ?", [finding])[0]
    assert row == {"status": "in_progress", "suppression": "approved"}
