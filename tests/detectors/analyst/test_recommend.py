"""Least-privilege recommendations on hand-made native tasks, credentials and actions."""

from __future__ import annotations

import pytest

from detectors.analyst.recommend import build_recommendations
from tests.conftest import Ingester, native_task


def _issue(ref: str, ts: str, agent: str, task: str, scopes: list[str], ttl_s: int) -> dict:
    return {
        "record_type": "credential",
        "event_id": f"{ref}-issue",
        "ts": ts,
        "event": "issue",
        "credential_ref": ref,
        "agent_id": agent,
        "task_id": task,
        "scopes": scopes,
        "ttl_s": ttl_s,
    }


def _act(event_id: str, ts: str, task: str, tool: str, system: str, cls: str, cred=None, **kw):
    """An action of the task's agent (task ``ta1`` belongs to ``agent-a``)."""
    return {
        "record_type": "action",
        "event_id": event_id,
        "ts": ts,
        "agent_id": f"agent-{task[1]}",
        "task_id": task,
        "tool": tool,
        "system": system,
        "action_class": cls,
        **({"credential_ref": cred} if cred else {}),
        **kw,
    }


# The newest event is on 2026-11-10, so the default 30-day window is 2026-10-12 .. 2026-11-10.
RECORDS = [
    # agent-a: four tasks of 60, 120, 180 and 600 s in the window, one of 10 h in September.
    *native_task("ta0", "agent-a", "2026-09-20T09:00:00Z", "2026-09-20T19:00:00Z"),
    *native_task("ta1", "agent-a", "2026-11-09T09:00:00Z", "2026-11-09T09:01:00Z"),
    *native_task("ta2", "agent-a", "2026-11-09T10:00:00Z", "2026-11-09T10:02:00Z"),
    *native_task("ta3", "agent-a", "2026-11-09T11:00:00Z", "2026-11-09T11:03:00Z"),
    *native_task("ta4", "agent-a", "2026-11-10T09:00:00Z", "2026-11-10T09:10:00Z"),
    _issue("ca-old", "2026-09-20T09:00:01Z", "agent-a", "ta0", ["legacy:admin"], 86400),
    _issue("ca-read", "2026-11-09T09:00:01Z", "agent-a", "ta1", ["crm:read"], 3600),
    _issue("ca-write", "2026-11-09T10:00:01Z", "agent-a", "ta2", ["crm:write"], 900),
    _issue("ca-gh", "2026-11-10T09:00:01Z", "agent-a", "ta4", ["github:repo"], 600),
    _act("a0", "2026-09-20T09:05:00Z", "ta0", "read_old", "legacy", "read", "ca-old"),
    _act("a1", "2026-11-09T09:00:30Z", "ta1", "get_contact", "crm", "read", "ca-read"),
    _act("a2", "2026-11-10T09:01:00Z", "ta4", "list_issues", "github", "read", "ca-gh"),
    _act("a3", "2026-11-10T09:02:00Z", "ta4", "create_issue", "github", "write", "ca-gh"),
    _act("a4", "2026-11-10T09:03:00Z", "ta4", "delete_branch", "github", "delete", "ca-gh"),
    _act("a5", "2026-11-10T09:04:00Z", "ta4", "spawn_reviewer", "github", "delegate", "ca-gh"),
    _act("a6", "2026-11-10T09:05:00Z", "ta4", "add_collaborator", "github", "admin", "ca-gh"),
    _act("a7", "2026-11-10T09:06:00Z", "ta4", "create_deploy_key", "github", "credential", "ca-gh"),
    _act("a8", "2026-11-10T09:07:00Z", "ta4", "send_email", "mail", "egress"),
    # a write the platform denied
    _act(
        "a9",
        "2026-11-10T09:08:00Z",
        "ta4",
        "merge_pr",
        "github",
        "write",
        "ca-gh",
        outcome="denied",
    ),
    # agent-b: two 600-s tasks; its 10-minute credential is within the recommendation.
    *native_task("tb1", "agent-b", "2026-11-08T09:00:00Z", "2026-11-08T09:10:00Z"),
    *native_task("tb2", "agent-b", "2026-11-08T10:00:00Z", "2026-11-08T10:10:00Z"),
    _issue("cb", "2026-11-08T09:00:01Z", "agent-b", "tb1", ["tickets:write"], 600),
    _act("b1", "2026-11-08T09:01:00Z", "tb1", "update_ticket", "ticketing", "write", "cb"),
    # agent-c: one 60-s task (the floor applies); a database lease never used with its credential,
    # while the agent queries the database with no credential recorded.
    *native_task("tc1", "agent-c", "2026-11-07T09:00:00Z", "2026-11-07T09:01:00Z"),
    _issue("cc", "2026-11-07T09:00:01Z", "agent-c", "tc1", ["database/creds/app-readonly"], 3600),
    _act("c1", "2026-11-07T09:00:30Z", "tc1", "query", "database", "read"),
]


def _rows(ingest: Ingester, **kwargs) -> list[dict]:
    build_recommendations(ingest.con, **kwargs)
    return ingest.rows("SELECT * FROM recommendations")


def _pick(rows: list[dict], agent: str, category: str) -> dict:
    return {
        (r["item"], r["access"]) if category == "access" else r["item"]: r
        for r in rows
        if r["agent_id"] == agent and r["category"] == category
    }


@pytest.fixture
def loaded(ingest: Ingester) -> Ingester:
    ingest.lines("rec.jsonl", RECORDS, fmt="native")
    return ingest


def test_a_granted_scope_never_used_is_recommended_for_removal(loaded: Ingester):
    scopes = _pick(_rows(loaded), "agent-a", "scope")
    assert set(scopes) == {"crm:read", "crm:write", "github:repo"}  # legacy:admin is older
    kept, unused = scopes["crm:read"], scopes["crm:write"]
    assert (kept["granted"], kept["used"], kept["uses"], kept["access"]) == (1, True, 1, "read")
    assert kept["recommendation"] == "keep: used 1 time(s) for read"
    assert str(kept["last_used_at"]) == "2026-11-09 09:00:30"
    assert kept["systems"] == ["crm (read)"] and kept["credential_kind"] == "native_jit"
    assert (unused["granted"], unused["used"], unused["uses"], unused["last_used_at"]) == (
        1,
        False,
        0,
        None,
    )
    assert unused["recommendation"] == "remove: granted 1 time(s), never used in the window"
    github = scopes["github:repo"]
    assert (github["uses"], github["denied"], github["access"]) == (6, 1, "delegate, read, write")


def test_read_write_and_delegation_are_kept_apart(loaded: Ingester):
    access = _pick(_rows(loaded), "agent-a", "access")
    assert set(access) == {
        ("crm", "read"),
        ("github", "read"),
        ("github", "write"),
        ("github", "delegate"),
        ("mail", "egress"),
    }
    uses = {k: (r["uses"], r["denied"]) for k, r in access.items()}
    # write = write + delete (merge_pr was denied); delegate = delegate + admin + credential
    assert uses[("github", "read")] == (1, 0)
    assert uses[("github", "write")] == (2, 1)
    assert uses[("github", "delegate")] == (3, 0)
    assert access[("github", "write")]["recommendation"] == (
        "keep write on github: used 2 time(s), 1 denied"
    )
    assert access[("github", "delegate")]["scopes"] == ["github:repo"]
    assert access[("mail", "egress")]["scopes"] == [] and access[("mail", "egress")]["used"]
    assert all(r["granted"] is None for r in access.values())


def test_ttl_is_sized_from_the_p95_task_duration(loaded: Ingester):
    rows = _rows(loaded)
    a = _pick(rows, "agent-a", "ttl")["native_jit"]
    # durations 60, 120, 180, 600: p95 = 180 + 0.85 * (600 - 180) = 537 s; x 1.25 = 671.25 -> 12 min
    assert a["p95_task_s"] == pytest.approx(537.0) and a["tasks"] == 4
    assert (a["granted"], a["issued_ttl_s"], a["issued_ttl_max_s"], a["recommended_ttl_s"]) == (
        3,
        900,
        3600,
        720,
    )
    assert a["recommendation"] == "lower TTL from 1h to 12m (p95 task 8m57s × 1.25)"
    b = _pick(rows, "agent-b", "ttl")["native_jit"]  # 600 x 1.25 = 750 -> 13 min, issued 10 min
    assert (b["issued_ttl_max_s"], b["recommended_ttl_s"]) == (600, 780)
    assert (
        b["recommendation"]
        == "keep: issued TTL 10m within the recommended 13m (p95 task 10m × 1.25)"
    )
    c = _pick(rows, "agent-c", "ttl")["native_jit"]  # 60 x 1.25 = 75 s, below the 5-minute floor
    assert c["recommended_ttl_s"] == 300
    assert c["recommendation"] == "lower TTL from 1h to 5m (p95 task 1m × 1.25, floor 5m)"


def test_ttl_parameters_change_the_recommendation(loaded: Ingester):
    b = _pick(_rows(loaded, ttl_margin=2.0, ttl_floor_s=1500), "agent-b", "ttl")["native_jit"]
    assert b["recommended_ttl_s"] == 1500  # 600 x 2 = 1200 < the 25-minute floor
    assert b["recommendation"] == (
        "keep: issued TTL 10m within the recommended 25m (p95 task 10m × 2.0, floor 25m)"
    )


def test_an_unused_scope_naming_a_system_used_without_credential_is_reviewed(loaded: Ingester):
    rows = _rows(loaded)
    scope = _pick(rows, "agent-c", "scope")["database/creds/app-readonly"]
    assert scope["used"] is False
    assert scope["recommendation"] == (
        "review: granted 1 time(s), no action recorded with it in the window, "
        "but the agent used database 1 time(s) with no credential recorded"
    )


def test_the_window_excludes_older_data(loaded: Ingester):
    rows = _rows(loaded)
    assert {(str(r["window_from"]), str(r["window_until"])) for r in rows} == {
        ("2026-10-12", "2026-11-10")
    }
    assert not any(r["item"] in ("legacy:admin", "legacy") for r in rows)
    wide = _rows(loaded, window_days=90)
    old = _pick(wide, "agent-a", "scope")["legacy:admin"]
    assert (old["granted"], old["used"]) == (1, True)
    assert ("legacy", "read") in _pick(wide, "agent-a", "access")
    # with the 10-h task: p95 of 60, 120, 180, 600, 36000 = 600 + 0.8 * 35400 = 28920 s
    ttl = _pick(wide, "agent-a", "ttl")["native_jit"]
    assert (ttl["tasks"], ttl["recommended_ttl_s"]) == (5, 36180)  # 36150 up to the minute
    assert ttl["issued_ttl_max_s"] == 86400


def test_peer_group_when_known_and_deterministic_order(loaded: Ingester):
    rows = _rows(loaded)
    assert {r["peer_group"] for r in rows} == {None}
    loaded.con.execute(
        """CREATE TABLE agent_peer_groups AS
           SELECT * FROM (VALUES ('agent-a', 'g1', 'roles'), ('agent-b', 'g2', 'roles'))
               t(agent_id, peer_group, method)"""
    )
    again = _rows(loaded)
    assert {r["agent_id"]: r["peer_group"] for r in again} == {
        "agent-a": "g1",
        "agent-b": "g2",
        "agent-c": None,
    }
    order = {"scope": 0, "access": 1, "ttl": 2}
    keys = [(r["agent_id"], order[r["category"]], r["item"], r["access"] or "") for r in again]
    assert keys == sorted(keys)
    assert [{**r, "peer_group": None} for r in again] == rows


def test_an_empty_warehouse_gives_an_empty_table(ingest: Ingester):
    assert build_recommendations(ingest.con) == 0
    columns = [r[0] for r in ingest.con.execute("DESCRIBE recommendations").fetchall()]
    assert columns[:4] == ["agent_id", "peer_group", "category", "item"]
    assert columns[-3:] == ["recommendation", "window_from", "window_until"]


def test_no_agent_gives_no_rows(ingest: Ingester):
    ingest.lines(
        "anon.jsonl",
        [
            {
                "record_type": "credential",
                "event_id": "x-issue",
                "ts": "2026-11-01T09:00:00Z",
                "event": "issue",
                "credential_ref": "x",
                "scopes": ["crm:read"],
                "ttl_s": 900,
            },
            {
                "record_type": "credential",
                "event_id": "x-use",
                "ts": "2026-11-01T09:01:00Z",
                "event": "use",
                "credential_ref": "x",
            },
        ],
        fmt="native",
    )
    assert build_recommendations(ingest.con) == 0


@pytest.mark.parametrize("kwargs", [{"window_days": 0}, {"ttl_margin": 0.0}, {"ttl_floor_s": -1}])
def test_invalid_parameters_are_refused(ingest: Ingester, kwargs):
    with pytest.raises(ValueError):
        build_recommendations(ingest.con, **kwargs)
