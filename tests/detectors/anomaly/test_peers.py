"""Peer groups: tool-profile clusters, roles, one group, and agents placed after the refit."""

from __future__ import annotations

import pytest

from detectors.anomaly.peers import assign_peer_groups, place_new_agents
from tests.conftest import Ingester
from tests.detectors.anomaly.conftest import run_task


def test_peer_groups_separate_tool_profiles_and_are_deterministic(ingest: Ingester):
    records = []
    for n in range(3):
        records += run_task(f"r{n}", f"reader-{n}", 2, ["read_file", "read_file", "list_dir"])
        records += run_task(f"e{n}", f"mailer-{n}", 2, ["send_email", "http_post", "send_email"])
    ingest.lines("f.jsonl", records, fmt="native")

    first = assign_peer_groups(ingest.con, n_groups=2)
    table = ingest.rows("SELECT agent_id, peer_group FROM agent_peer_groups ORDER BY agent_id")
    assert assign_peer_groups(ingest.con, n_groups=2) == first
    assert {r["agent_id"]: r["peer_group"] for r in table} == first
    readers = {first[f"reader-{n}"] for n in range(3)}
    mailers = {first[f"mailer-{n}"] for n in range(3)}
    assert len(readers) == 1 and len(mailers) == 1 and readers != mailers
    assert first["mailer-0"] == "tools-0"  # named in order of the first agent by id

    assert set(assign_peer_groups(ingest.con, method="single").values()) == {"all"}
    with pytest.raises(ValueError, match="unknown peer group method"):
        assign_peer_groups(ingest.con, method="nope")  # type: ignore[arg-type]


def test_new_agent_joins_the_nearest_profile_without_refit(ingest: Ingester, monkeypatch):
    records = []
    for n in range(3):
        records += run_task(f"r{n}", f"reader-{n}", 2, ["read_file", "read_file", "list_dir"])
        records += run_task(f"e{n}", f"mailer-{n}", 2, ["send_email", "http_post", "send_email"])
    ingest.lines("a.jsonl", records, fmt="native")
    groups = assign_peer_groups(ingest.con, n_groups=2)
    profiles = ingest.one("SELECT count(DISTINCT peer_group) FROM peer_group_profiles")
    assert profiles == 2
    ingest.lines(
        "b.jsonl", run_task("x", "new-mailer", 3, ["send_email", "send_email"]), fmt="native"
    )

    def no_fit(*args, **kwargs):
        raise AssertionError("placing an agent must not refit the clusters")

    monkeypatch.setattr("sklearn.cluster.KMeans.fit", no_fit)
    assert place_new_agents(ingest.con) == 1
    placed = ingest.one("SELECT peer_group FROM agent_peer_groups WHERE agent_id = 'new-mailer'")
    assert placed == groups["mailer-0"] != groups["reader-0"]
    assert place_new_agents(ingest.con) == 0  # already placed


def test_roles_come_from_the_agent_id(ingest: Ingester):
    records = run_task("a", "support-triage-07", 2, ["read_file"]) + run_task(
        "b", "support-triage-11", 2, ["read_file"]
    )
    records += run_task("c", "finance-ops-01", 2, ["query_db"]) + run_task("d", "0042", 2, ["x"])
    ingest.lines("f.jsonl", records, fmt="native")
    groups = assign_peer_groups(
        ingest.con, method="roles", role_pattern=r"^(?P<role>[a-z]+(?:-[a-z]+)*)-\d+$"
    )
    assert groups == {
        "0042": "other",
        "finance-ops-01": "finance-ops",
        "support-triage-07": "support-triage",
        "support-triage-11": "support-triage",
    }
    ingest.lines("g.jsonl", run_task("e", "finance-ops-02", 3, ["query_db"]), fmt="native")
    place_new_agents(ingest.con, r"^(?P<role>[a-z]+(?:-[a-z]+)*)-\d+$")
    assert (
        ingest.one("SELECT peer_group FROM agent_peer_groups WHERE agent_id = 'finance-ops-02'")
        == "finance-ops"
    )
