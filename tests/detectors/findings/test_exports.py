"""Publishing findings: Parquet by day (round trip, reruns) and OCSF Detection Findings validated
against the JSON schema that `ocsf-json-schema` builds offline from the OCSF schema it ships."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from detectors.findings.exports import (
    OCSF_VERSION,
    PublishError,
    export_findings_ocsf,
    export_findings_parquet,
    findings_to_ocsf,
)

RUN_1 = datetime(2026, 11, 1, 6, 0)
RUN_2 = datetime(2026, 11, 3, 6, 0)
CRED = "cred_" + "a" * 32
FRAMEWORKS = {
    "owasp_agentic": ["ASI03 Identity and Privilege Abuse"],
    "owasp_nhi": ["NHI7:2025 Long-Lived Secrets"],
    "maestro": {"layer": "L4 Deployment and Infrastructure", "threat": "Standing credentials"},
    "nist_ai_rmf": ["MANAGE"],
}
# finding_id -> what the row looks like; the columns not named get the defaults of _finding().
FINDINGS = {
    # First detected in the latest run, still new.
    "f_new": dict(
        rule_id="credential_outlived_task",
        severity="high",
        confidence="high",
        analytic_type="rule",
        entity_type="credential",
        entity_id=CRED,
        credential_id=CRED,
        first_seen=datetime(2026, 11, 1, 10, 0, 0, 123000),
        last_seen=datetime(2026, 11, 1, 10, 5),
        evidence_event_ids=["act_1", "cev_1", "act_2", "gone_1"],
        first_detected_at=RUN_2,
        last_detected_at=RUN_2,
    ),
    # Detected again in a later run, being triaged.
    "f_upd": dict(
        rule_id="sensitive_read_then_egress",
        severity="critical",
        confidence="medium",
        analytic_type="behavioral",
        status="in_progress",
        triage_status="in_progress",
        triage_note="looking",
        first_seen=datetime(2026, 11, 1, 23, 59, 59),
        last_seen=datetime(2026, 11, 2, 0, 1),
        evidence_event_ids=["act_2"],
    ),
    # Resolved by a person.
    "f_res": dict(
        rule_id="agent_rate_anomaly",
        severity="informational",
        confidence="low",
        analytic_type="statistical",
        entity_type="agent",
        entity_id="agent-1",
        task_id=None,
        status="resolved",
        triage_status="resolved",
        first_seen=datetime(2026, 11, 2, 8, 0),
        last_seen=datetime(2026, 11, 2, 9, 0),
        evidence_event_ids=[],
        frameworks=None,
        first_detected_at=RUN_2,
        last_detected_at=RUN_2,
    ),
    # Suppressed, found by a learned model.
    "f_sup": dict(
        rule_id="agent_outlier",
        severity="low",
        analytic_type="learning",
        status="suppressed",
        suppression="known batch agent",
        first_seen=datetime(2026, 11, 3, 1, 0),
        last_seen=datetime(2026, 11, 3, 1, 0),
        evidence_event_ids=["act_1"],
    ),
}


def _finding(finding_id: str, **overrides) -> dict:
    row = dict(
        finding_id=finding_id,
        rule_id="rule",
        title=f"Title of {finding_id}",
        severity="medium",
        risk_score=60,
        confidence="high",
        analytic_type="rule",
        entity_type="task",
        entity_id="task-1",
        agent_id="agent-1",
        task_id="task-1",
        credential_id=None,
        first_seen=datetime(2026, 11, 1, 10, 0),
        last_seen=datetime(2026, 11, 1, 10, 5),
        evidence_event_ids=[],
        detail=f"Detail of {finding_id}",
        frameworks=json.dumps(FRAMEWORKS),
        status="new",
        triage_status=None,
        triage_note=None,
        suppression=None,
        first_detected_at=RUN_1,
        last_detected_at=RUN_2,
    )
    row.update(overrides)
    return row


def _action(event_id: str, ts: datetime, tool: str, action_class: str, destination: str | None):
    return dict(
        event_id=event_id,
        ts=ts,
        day=ts.date(),
        agent_id="agent-1",
        task_id="task-1",
        tool=tool,
        system="crm",
        action_class=action_class,
        classified_by="catalog",
        destination=destination,
        sensitivity="high",
        external=destination is not None,
        outcome="success",
        credential_id=CRED,
        # A raw key that slipped into stored arguments must never reach an export.
        args='{"aws_key": "AKIAIOSFODNN7EXAMPLE"}',
        source_format="native",
        source_file="agent.jsonl",
        source_offset=0,
        source_line=1,
        source_record=0,
        ingested_at=RUN_1,
    )


ACTIONS = [
    _action("act_1", datetime(2026, 11, 1, 10, 0, 0, 123000), "query_db", "read", None),
    _action("act_2", datetime(2026, 11, 1, 10, 5), "send_email", "egress", "x@evil.test"),
    _action("act_unrelated", datetime(2026, 11, 1, 11, 0), "read_file", "read", None),
]
CREDENTIAL_EVENT = dict(
    event_id="cev_1",
    ts=datetime(2026, 11, 1, 10, 1),
    day=datetime(2026, 11, 1).date(),
    event_type="issued",
    credential_id=CRED,
    credential_kind="vault_token",
    outcome="success",
    source_format="vault",
    source_file="vault.jsonl",
    source_offset=0,
    source_line=1,
    source_record=0,
    ingested_at=RUN_1,
)


def _insert(con, table: str, row: dict) -> None:
    names = ", ".join(row)
    slots = ", ".join(f"${k}" for k in row)
    con.execute(f"INSERT INTO {table} ({names}) VALUES ({slots})", row)


@pytest.fixture
def wh(con):
    for finding_id, overrides in FINDINGS.items():
        _insert(con, "findings", _finding(finding_id, **overrides))
    for action in ACTIONS:
        _insert(con, "agent_actions", action)
    _insert(con, "credential_events", CREDENTIAL_EVENT)
    return con


@pytest.fixture
def events(wh) -> dict[str, dict]:
    return {e["finding_info"]["uid"]: e for e in findings_to_ocsf(wh, product_version="9.9.9-test")}


def _ms(ts: datetime) -> int:
    return int(ts.replace(tzinfo=UTC).timestamp() * 1000)


# ---------------------------------------------------------------- Parquet


def _read_back(con, out_dir: Path) -> pl.DataFrame:
    return con.execute(
        "SELECT * FROM read_parquet($glob, hive_partitioning = true) ORDER BY finding_id",
        {"glob": str(out_dir / "**" / "*.parquet")},
    ).pl()


def test_parquet_export_round_trips_every_row_and_value(wh, tmp_path: Path):
    out = tmp_path / "export" / "findings"
    files = export_findings_parquet(wh, out)
    back = _read_back(wh, out)
    table = wh.execute("SELECT * FROM findings ORDER BY finding_id").pl()
    assert_frame_equal(back.drop("day"), table)
    assert back["day"].to_list() == [d.date() for d in table["first_seen"]]
    assert all(f.is_file() and f.suffix == ".parquet" for f in files)


def test_parquet_partition_folders_are_per_day_of_first_seen(wh, tmp_path: Path):
    out = tmp_path / "findings"
    files = export_findings_parquet(wh, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "day=2026-11-01",
        "day=2026-11-02",
        "day=2026-11-03",
    ]
    assert sorted({f.parent.name for f in files}) == sorted(p.name for p in out.iterdir())
    per_day = wh.execute(
        """SELECT day::VARCHAR, count(*) FROM read_parquet($glob, hive_partitioning = true)
           GROUP BY ALL ORDER BY 1""",
        {"glob": str(out / "**" / "*.parquet")},
    ).fetchall()
    # 23:59:59 on the 1st stays on the 1st (UTC).
    assert per_day == [("2026-11-01", 2), ("2026-11-02", 1), ("2026-11-03", 1)]


def test_parquet_rerun_replaces_instead_of_duplicating(wh, tmp_path: Path):
    out = tmp_path / "findings"
    export_findings_parquet(wh, out)
    export_findings_parquet(wh, out)
    assert len(_read_back(wh, out)) == 4
    # A day whose findings are gone disappears; the others are rewritten.
    wh.execute("DELETE FROM findings WHERE finding_id = 'f_sup'")
    files = export_findings_parquet(wh, out)
    assert len(_read_back(wh, out)) == 3
    assert sorted(p.name for p in out.iterdir()) == ["day=2026-11-01", "day=2026-11-02"]
    assert sorted(out.rglob("*.parquet")) == files


def test_parquet_export_of_no_findings_leaves_an_empty_folder(con, tmp_path: Path):
    out = tmp_path / "findings"
    assert export_findings_parquet(con, out) == []
    assert out.is_dir() and not any(out.iterdir())


def test_parquet_export_refuses_a_folder_with_other_files(wh, tmp_path: Path):
    (tmp_path / "keep.txt").write_text("not ours")
    with pytest.raises(PublishError, match="holds other files"):
        export_findings_parquet(wh, tmp_path)
    assert (tmp_path / "keep.txt").exists()


# ---------------------------------------------------------------- OCSF


def test_every_event_validates_against_the_ocsf_schema(events, validator):
    assert len(events) == 4
    for event in events.values():
        errors = sorted(validator.iter_errors(event), key=str)
        assert not errors, [e.message for e in errors]


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda e: e.update(severity_id=7), id="severity_id-7"),
        pytest.param(lambda e: e.pop("class_uid"), id="no-class_uid"),
        pytest.param(lambda e: e.update(class_uid=2005), id="other-class"),
        pytest.param(lambda e: e["finding_info"].pop("uid"), id="no-finding-uid"),
        pytest.param(lambda e: e.update(time="2026-11-01"), id="time-as-text"),
        pytest.param(lambda e: e.update(made_up=1), id="unknown-attribute"),
        pytest.param(lambda e: e["evidences"][0].clear(), id="empty-evidence"),
    ],
)
def test_invalid_events_fail_validation(events, validator, breakage):
    event = json.loads(json.dumps(events["f_new"]))
    assert validator.is_valid(event)
    breakage(event)
    assert not validator.is_valid(event)


@pytest.mark.parametrize(
    ("finding_id", "activity_id", "severity_id", "status_id", "confidence_id", "type_id"),
    [
        ("f_new", 1, 4, 1, 3, 1),
        ("f_upd", 2, 5, 2, 2, 2),
        ("f_res", 3, 1, 4, 1, 3),
        ("f_sup", 2, 2, 3, 3, 4),
    ],
)
def test_ocsf_mapping_values(
    events, finding_id, activity_id, severity_id, status_id, confidence_id, type_id
):
    event = events[finding_id]
    assert (event["class_uid"], event["category_uid"]) == (2004, 2)
    assert event["activity_id"] == activity_id
    assert event["type_uid"] == 2004 * 100 + activity_id
    assert event["severity_id"] == severity_id
    assert event["status_id"] == status_id
    assert event["confidence_id"] == confidence_id
    analytic = event["finding_info"]["analytic"]
    assert analytic["type_id"] == type_id
    assert analytic["name"] == analytic["uid"] == FINDINGS[finding_id]["rule_id"]
    assert event["metadata"] == {
        "version": OCSF_VERSION,
        "product": {"name": "chainwatch", "vendor_name": "chainwatch", "version": "9.9.9-test"},
    }


def test_ocsf_captions_times_and_finding_info(events):
    event = events["f_new"]
    assert (event["activity_name"], event["type_name"]) == ("Create", "Detection Finding: Create")
    assert (event["severity"], event["status"], event["confidence"]) == ("High", "New", "High")
    assert event["time"] == _ms(RUN_2)
    assert event["start_time"] == _ms(FINDINGS["f_new"]["first_seen"]) == 1793527200123
    assert event["end_time"] == _ms(FINDINGS["f_new"]["last_seen"])
    info = event["finding_info"]
    assert info["title"] == "Title of f_new" and info["desc"] == "Detail of f_new"
    assert (info["first_seen_time"], info["last_seen_time"]) == (
        event["start_time"],
        event["end_time"],
    )
    assert info["types"] == ["ASI03 Identity and Privilege Abuse", "NHI7:2025 Long-Lived Secrets"]
    assert event["risk_score"] == 60
    assert event["message"] == f"Title of f_new (credential {CRED})"
    assert event["unmapped"]["chainwatch"]["frameworks"] == FRAMEWORKS
    assert events["f_upd"]["finding_info"]["created_time"] == _ms(RUN_1)
    assert events["f_upd"]["comment"] == "looking"
    assert events["f_sup"]["status_detail"] == "known batch agent"
    assert events["f_res"]["finding_info"]["analytic"]["type"] == "Statistical"
    assert events["f_sup"]["finding_info"]["analytic"]["type"] == "Learning (ML/DL)"


def test_ocsf_evidence_carries_entities_and_action_details(events):
    (evidence,) = events["f_new"]["evidences"]
    assert evidence["actor"] == {
        "app_name": "agent-1",
        "app_uid": "agent-1",
        "session": {"credential_uid": CRED},
    }
    data = evidence["data"]
    assert (data["agent_id"], data["task_id"], data["credential_id"]) == ("agent-1", "task-1", CRED)
    assert data["event_ids"] == ["act_1", "cev_1", "act_2", "gone_1"]
    # In evidence order; the credential event and the unknown id are not actions.
    assert data["actions"] == [
        {
            "event_id": "act_1",
            "ts": _ms(ACTIONS[0]["ts"]),
            "tool": "query_db",
            "system": "crm",
            "action_class": "read",
        },
        {
            "event_id": "act_2",
            "ts": _ms(ACTIONS[1]["ts"]),
            "tool": "send_email",
            "system": "crm",
            "action_class": "egress",
            "destination": "x@evil.test",
        },
    ]
    assert data["credential_events"] == [
        {
            "event_id": "cev_1",
            "ts": _ms(CREDENTIAL_EVENT["ts"]),
            "event_type": "issued",
            "credential_kind": "vault_token",
        }
    ]


def test_ocsf_evidence_and_resources_without_events_or_credential(events):
    (evidence,) = events["f_res"]["evidences"]
    assert evidence["data"] == {
        "agent_id": "agent-1",
        "event_ids": [],
        "actions": [],
        "credential_events": [],
    }
    assert "session" not in evidence["actor"]
    assert events["f_res"]["resources"] == [
        {"uid": "agent-1", "name": "agent-1", "type": "AI Agent", "role_id": 1, "role": "Target"}
    ]
    assert "types" not in events["f_res"]["finding_info"]
    assert events["f_new"]["resources"] == [
        {"uid": "agent-1", "name": "agent-1", "type": "AI Agent", "role_id": 2, "role": "Actor"},
        {"uid": "task-1", "name": "task-1", "type": "Agent Task", "role_id": 4, "role": "Related"},
        {"uid": CRED, "name": CRED, "type": "Credential", "role_id": 1, "role": "Target"},
    ]


def test_ocsf_events_have_no_nulls(events):
    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                assert v is not None
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(list(events.values()))


def test_ocsf_export_writes_json_lines_without_raw_secrets(wh, tmp_path: Path, validator):
    assert (
        "AKIAIOSFODNN7EXAMPLE"
        in wh.execute("SELECT string_agg(args) FROM agent_actions").fetchone()[0]
    )
    path = tmp_path / "out" / "findings.ocsf.jsonl"
    assert export_findings_ocsf(wh, path, product_version="1.0") == 4
    # A rerun replaces the file.
    assert export_findings_ocsf(wh, path, product_version="1.0") == 4
    text = path.read_text()
    lines = text.splitlines()
    assert len(lines) == 4
    for line in lines:
        validator.validate(json.loads(line))
    assert not re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", text)
    assert CRED in text
    assert [p.name for p in path.parent.iterdir()] == ["findings.ocsf.jsonl"]
