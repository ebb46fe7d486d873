"""Peer groups, per-group Isolation Forests (training, cold start, scoring) and sequence rarity."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
import sklearn
from sklearn.ensemble import IsolationForest

from detectors.anomaly.models import (
    FEATURES,
    HOUR_FEATURE,
    SIGNALS,
    assign_peer_groups,
    fuse,
    place_new_agents,
    score_tasks,
    tail_score,
    train_models,
    upper_tail_share,
)
from detectors.core.settings import AnomalyParams
from detectors.derive.tables import build_derived_tables
from detectors.findings.exports import findings_to_ocsf
from detectors.findings.merge import flag_anomalies, rank_findings, set_triage
from tests.conftest import Ingester, native_task

TRAIN_UNTIL = datetime(2026, 11, 15)
SCORE_SINCE = datetime(2026, 11, 15)


def _run(task: str, agent: str, day: int, tools: list[str]) -> list[dict]:
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


# --- peer groups -----------------------------------------------------------------------------


def test_peer_groups_separate_tool_profiles_and_are_deterministic(ingest: Ingester):
    records = []
    for n in range(3):
        records += _run(f"r{n}", f"reader-{n}", 2, ["read_file", "read_file", "list_dir"])
        records += _run(f"e{n}", f"mailer-{n}", 2, ["send_email", "http_post", "send_email"])
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


# --- isolation forests -----------------------------------------------------------------------


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


def _scores(con) -> dict[str, tuple]:
    rows = con.execute(
        """SELECT task_id, iforest_score, iforest_percentile, baseline_score, version
           FROM task_anomaly_scores ORDER BY task_id"""
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_model_row_carries_features_params_version_and_window(features):
    infos = train_models(features, train_until=TRAIN_UNTIL, seed=7)
    big = next(i for i in infos if i.peer_group == "big")
    assert (big.model_id, big.version, big.n_train, big.skipped) == ("iforest:big", 1, 200, False)
    row = features.execute(
        """SELECT model_id, version, peer_group, features, params, sklearn_version, n_train,
               train_from, train_until, len(feature_median), len(train_score_quantiles),
               octet_length(model) FROM anomaly_models"""
    ).fetchall()
    assert len(row) == 1
    (mid, version, group, feats, params, skv, n_train, t_from, t_until, n_med, n_q, size) = row[0]
    assert (mid, version, group, n_train) == ("iforest:big", 1, "big", 200)
    assert feats == [*FEATURES, HOUR_FEATURE] and n_med == len(feats) and n_q == 101 and size > 1000
    assert "hour_of_day" not in feats
    params = json.loads(params)
    assert params["random_state"] == 7 and params["window_days"] == 14
    assert params["transform"].startswith("log1p") and params["estimator"] == "IsolationForest"
    assert skv == sklearn.__version__
    assert (t_from, t_until) == (datetime(2026, 11, 1), TRAIN_UNTIL)


def test_cold_start_group_gets_no_model_and_no_scores(features):
    infos = {i.peer_group: i for i in train_models(features, train_until=TRAIN_UNTIL)}
    small = infos["small"]
    assert small.skipped and small.n_train == 10 and small.model_id is None
    assert "cold start" in small.reason
    assert features.execute("SELECT list(peer_group) FROM anomaly_models").fetchone()[0] == ["big"]
    assert score_tasks(features) == 221  # every big task, none of the small group
    scored = features.execute("SELECT count(*) FROM task_anomaly_scores WHERE peer_group = 'small'")
    assert scored.fetchone()[0] == 0


def test_training_window_excludes_later_tasks(features):
    # window [Nov 8, Nov 15): big tasks from hour 168 on, small tasks of Nov 8-12
    infos = train_models(features, train_until=TRAIN_UNTIL, window_days=7, min_tasks=10)
    assert {i.peer_group: i.n_train for i in infos} == {"big": 32, "small": 5}
    assert infos[1].skipped


def test_training_is_deterministic_for_a_seed(features):
    train_models(features, train_until=TRAIN_UNTIL, seed=7)
    score_tasks(features, since=SCORE_SINCE)
    first = _scores(features)
    train_models(features, train_until=TRAIN_UNTIL, seed=7)
    score_tasks(features, since=SCORE_SINCE)
    second = _scores(features)
    assert {v[-1] for v in second.values()} == {2}  # scored by the new version
    assert {k: v[:-1] for k, v in first.items()} == {k: v[:-1] for k, v in second.items()}


def test_scoring_never_refits(features, monkeypatch):
    train_models(features, train_until=TRAIN_UNTIL)
    models_before = features.execute("SELECT count(*), max(version) FROM anomaly_models").fetchone()

    def no_fit(*args, **kwargs):
        raise AssertionError("scoring must not fit")

    monkeypatch.setattr(IsolationForest, "fit", no_fit)
    assert score_tasks(features, since=SCORE_SINCE) == 21
    first = _scores(features)
    assert score_tasks(features, since=SCORE_SINCE) == 21
    assert _scores(features) == first
    assert features.execute("SELECT count(*) FROM task_anomaly_scores").fetchone()[0] == 21
    after = features.execute("SELECT count(*), max(version) FROM anomaly_models").fetchone()
    assert after == models_before == (1, 1)


def test_anomalous_task_scores_highest_and_is_explained_by_reads(features):
    train_models(features, train_until=TRAIN_UNTIL)
    score_tasks(features, since=SCORE_SINCE)
    rows = features.execute(
        """SELECT task_id, iforest_percentile, baseline_score, tail_score, top_features
           FROM task_anomaly_scores ORDER BY tail_score DESC"""
    ).fetchall()
    task_id, forest_pct, baseline, tail, top = rows[0]
    assert task_id == "odd"
    # A value beyond the training range on one feature is isolated like the training tasks at that
    # feature's edge: the forest places it high, not necessarily first. The tail signal and the
    # robust-z baseline separate it clearly.
    assert forest_pct > 90
    assert tail > 2 * max(r[3] for r in rows[1:])
    assert baseline == max(r[2] for r in rows)
    assert baseline > 1.5 * max(r[2] for r in rows if r[0] != "odd")
    # both at the top of the peers' range; ties on that go to the larger robust z
    assert len(top) == 3 and [t["feature"] for t in top[:2]] == ["reads", "actions"]
    reads = top[0]
    assert (reads["value"], reads["peer_median"]) == (40.0, 3.0)
    assert reads["peer_share"] == pytest.approx(1 / 201)  # no training task reads that much
    assert reads["robust_z"] > 4 and baseline == pytest.approx(reads["robust_z"])


# --- fusion ------------------------------------------------------------------------------------


def test_fused_score_adds_the_surprise_of_each_signal():
    # shares: the fraction of training tasks at or above the task's value, per signal
    shares = {
        "iforest": np.array([1.0, 0.01, 0.01, 0.01, 0.5]),
        "tail": np.array([1.0, 1.0, 0.01, 1.0, 0.5]),
        "sequence": np.array([1.0, 1.0, 1.0, 0.01, 0.5]),
    }
    fused = fuse(shares)
    assert fused[0] == 0.0  # typical everywhere
    assert fused[1] == pytest.approx(np.log(100))  # one signal alone keeps its surprise
    assert fused[2] == pytest.approx(2 * np.log(100)) == fused[3]  # two signals add up
    assert fused[4] == pytest.approx(3 * np.log(2))  # middling everywhere: low
    assert fused[4] < fused[1]
    assert SIGNALS == ("iforest", "tail", "sequence")


def test_upper_tail_share_and_tail_score():
    train = np.sort(np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [1.0, 4.0]]), axis=0)
    shares = upper_tail_share(train, np.array([[0.0, 4.0], [1.0, 9.0], [np.nan, 0.0]]))
    # (training values at or above + 1) / (n + 1)
    assert shares.tolist() == [[1.0, 0.4], [0.4, 0.2], [1.0, 1.0]]
    assert tail_score(np.array([[1.0, 0.4], [0.01, 0.001]])).tolist() == pytest.approx(
        [0.0, np.log(5) + np.log(50)]
    )


def test_fused_percentile_puts_the_odd_task_first_with_its_dominant_signal(features):
    train_models(features, train_until=TRAIN_UNTIL)
    score_tasks(features, since=SCORE_SINCE)
    rows = features.execute(
        """SELECT task_id, fused_score, fused_percentile, iforest_percentile, dominant_signal,
               sequence_score, rare_transitions, started_at
           FROM task_anomaly_scores ORDER BY fused_score DESC"""
    ).fetchall()
    assert rows[0][0] == "odd" and rows[0][1] > 1.5 * rows[1][1]
    assert rows[0][2] == 100.0 and rows[0][4] == "tail"
    assert all(0 <= r[2] <= 100 and 0 <= r[3] <= 100 for r in rows)
    # no actions in this fixture: no sequence signal, nothing rare
    assert all(r[5] is None and r[6] == [] for r in rows)
    assert rows[0][7] == datetime(2026, 11, 16, 12, 0)


# --- sequence rarity ---------------------------------------------------------------------------

COMMON = ["read_file", "summarize", "write_file", "send_email"]


def _train_on(con, until: datetime, **kwargs) -> None:
    build_derived_tables(con)
    train_models(con, train_until=until, window_days=30, min_tasks=2, **kwargs)


def test_unseen_transition_is_rarer_and_listed(ingest: Ingester):
    records = []
    for n in range(5):
        records += _run(f"c{n}", f"agent-{n % 2}", 2 + n, COMMON)
    # after the training window: one task like the others, one with read_file -> http_post
    records += _run("same", "agent-0", 10, COMMON)
    records += _run("odd", "agent-1", 10, ["read_file", "http_post", "write_file", "send_email"])
    ingest.lines("f.jsonl", records, fmt="native")
    assign_peer_groups(ingest.con, method="single")
    _train_on(ingest.con, datetime(2026, 11, 9))

    # the model holds the 5 training tasks' transitions only
    assert (
        ingest.one(
            "SELECT sum(n) FROM sequence_transitions WHERE kind = 'tool' AND peer_group = 'all'"
        )
        == 15
    )
    assert score_tasks(ingest.con, since=datetime(2026, 11, 9)) == 2
    rows = {r["task_id"]: r for r in ingest.rows("SELECT * FROM task_anomaly_scores")}
    same, odd = rows["same"], rows["odd"]
    assert odd["sequence_score"] > same["sequence_score"]
    assert odd["class_sequence_score"] >= same["class_sequence_score"]
    assert same["rare_transitions"] == []
    rare = [(t["from_tool"], t["to_tool"]) for t in odd["rare_transitions"]]
    assert rare == [("read_file", "http_post"), ("http_post", "write_file")]
    assert rare_ids(odd) == [
        "native:odd-a01",
        "native:odd-a02",
    ]  # the events where the rare step lands
    # add-one smoothing: the unseen transition keeps a non-zero probability, below the common one
    assert 0 < odd["rare_transitions"][0]["probability"] < 1 / 5
    assert odd["rare_transitions"][0]["successor_rank"] is None
    assert odd["fused_score"] > same["fused_score"]


def rare_ids(row: dict) -> list[str]:
    return [t["event_id"] for t in row["rare_transitions"]]


def test_top_g_successors_are_not_rare(ingest: Ingester):
    # read_file is followed by summarize (3x), write_file (2x) and list_dir (1x): with g = 2 the
    # list_dir transition is rare, with g = 3 it is not.
    records = []
    for n, nxt in enumerate(["summarize"] * 3 + ["write_file"] * 2 + ["list_dir"]):
        records += _run(f"t{n}", "agent-0", 2 + n, ["read_file", nxt])
    ingest.lines("f.jsonl", records, fmt="native")
    assign_peer_groups(ingest.con, method="single")
    _train_on(ingest.con, datetime(2026, 12, 1))

    score_tasks(ingest.con, top_g=2)
    rare = ingest.rows("SELECT task_id FROM task_anomaly_scores WHERE len(rare_transitions) > 0")
    assert [r["task_id"] for r in rare] == ["t5"]
    score_tasks(ingest.con, top_g=3)
    assert ingest.one("SELECT sum(len(rare_transitions)) FROM task_anomaly_scores") == 0
    scores = dict(
        ingest.con.execute("SELECT task_id, sequence_score FROM task_anomaly_scores").fetchall()
    )
    assert scores["t5"] > scores["t3"] > scores["t0"]


# --- peer groups for agents first seen after the refit -------------------------------------------


def test_new_agent_joins_the_nearest_profile_without_refit(ingest: Ingester, monkeypatch):
    records = []
    for n in range(3):
        records += _run(f"r{n}", f"reader-{n}", 2, ["read_file", "read_file", "list_dir"])
        records += _run(f"e{n}", f"mailer-{n}", 2, ["send_email", "http_post", "send_email"])
    ingest.lines("a.jsonl", records, fmt="native")
    groups = assign_peer_groups(ingest.con, n_groups=2)
    profiles = ingest.one("SELECT count(DISTINCT peer_group) FROM peer_group_profiles")
    assert profiles == 2
    ingest.lines("b.jsonl", _run("x", "new-mailer", 3, ["send_email", "send_email"]), fmt="native")

    def no_fit(*args, **kwargs):
        raise AssertionError("placing an agent must not refit the clusters")

    monkeypatch.setattr("sklearn.cluster.KMeans.fit", no_fit)
    assert place_new_agents(ingest.con) == 1
    placed = ingest.one("SELECT peer_group FROM agent_peer_groups WHERE agent_id = 'new-mailer'")
    assert placed == groups["mailer-0"] != groups["reader-0"]
    assert place_new_agents(ingest.con) == 0  # already placed


def test_roles_come_from_the_agent_id(ingest: Ingester):
    records = _run("a", "support-triage-07", 2, ["read_file"]) + _run(
        "b", "support-triage-11", 2, ["read_file"]
    )
    records += _run("c", "finance-ops-01", 2, ["query_db"]) + _run("d", "0042", 2, ["x"])
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
    ingest.lines("g.jsonl", _run("e", "finance-ops-02", 3, ["query_db"]), fmt="native")
    place_new_agents(ingest.con, r"^(?P<role>[a-z]+(?:-[a-z]+)*)-\d+$")
    assert (
        ingest.one("SELECT peer_group FROM agent_peer_groups WHERE agent_id = 'finance-ops-02'")
        == "finance-ops"
    )


# --- anomaly findings, explanations and fusion with the rules -------------------------------------


def _flag(con, percentile: float = 99.0) -> int:
    return flag_anomalies(
        con, AnomalyParams(alert_percentile=percentile), now=datetime(2026, 11, 20)
    )


def test_anomaly_finding_is_explained_in_findings_and_ocsf(features, validator):
    train_models(features, train_until=TRAIN_UNTIL)
    score_tasks(features, since=SCORE_SINCE)
    assert _flag(features) >= 1
    row = features.execute(
        """SELECT finding_id, analytic_type, severity, entity_type, detail, explanation
           FROM findings WHERE task_id = 'odd'"""
    ).fetchone()
    finding_id, analytic_type, severity, entity_type, detail, explanation = row
    assert (analytic_type, severity, entity_type) == ("statistical", "high", "task")
    ex = json.loads(explanation)
    assert ex["peer_group"] == "big" and ex["model_id"] == "iforest:big"
    assert ex["dominant_signal"] == "tail" and ex["fused_percentile"] == 100.0
    assert ex["top_features"][0]["feature"] == "reads" and ex["top_features"][0]["value"] == 40
    assert "reads 40.0 vs peer median 3.0" in detail and "of peer group big" in detail
    event = next(
        e
        for e in findings_to_ocsf(features, product_version="t")
        if e["finding_info"]["uid"] == finding_id
    )
    validator.validate(event)
    assert event["finding_info"]["analytic"]["type"] == "Statistical"
    analysis = event["anomaly_analyses"][0]
    assert analysis["analysis_targets"] == [{"name": "odd", "type": "Agent Task"}]
    assert analysis["anomalies"][0]["observation_parameter"] == "reads"
    assert analysis["anomalies"][0]["observations"] == [{"value": "40.0"}]
    assert analysis["baselines"][0]["observations"] == [{"value": "3.0"}]


def test_anomaly_findings_keep_ids_and_triage_across_rescoring(features):
    train_models(features, train_until=TRAIN_UNTIL)
    score_tasks(features, since=SCORE_SINCE)
    _flag(features)
    ids = {r[0] for r in features.execute("SELECT finding_id FROM findings").fetchall()}
    finding_id = features.execute(
        "SELECT finding_id FROM findings WHERE task_id = 'odd'"
    ).fetchone()[0]
    assert set_triage(features, finding_id, "in_progress", "asked the owner")
    score_tasks(features, since=SCORE_SINCE)
    _flag(features)
    assert {r[0] for r in features.execute("SELECT finding_id FROM findings").fetchall()} == ids
    assert features.execute(
        "SELECT status, triage_note FROM findings WHERE finding_id = ?", [finding_id]
    ).fetchone() == ("in_progress", "asked the owner")


def test_cold_start_flags_nothing(features):
    assert score_tasks(features) == 0  # no model trained yet
    assert _flag(features) == 0
    assert features.execute("SELECT count(*) FROM findings").fetchone()[0] == 0


def test_a_rule_finding_on_an_anomalous_task_ranks_higher(features):
    train_models(features, train_until=TRAIN_UNTIL)
    score_tasks(features, since=SCORE_SINCE)
    for task_id in ("odd", "s-00"):  # the same rule finding on the odd task and a normal one
        features.execute(
            """INSERT INTO findings BY NAME SELECT 'f-' || $t AS finding_id, 'some_rule' AS rule_id,
                   'T' AS title, 'medium' AS severity, 55 AS risk_score, 'high' AS confidence,
                   'rule' AS analytic_type, 'task' AS entity_type, $t AS entity_id, $t AS task_id,
                   TIMESTAMP '2026-11-16' AS first_seen, TIMESTAMP '2026-11-16' AS last_seen,
                   [] AS evidence_event_ids, 'new' AS status,
                   TIMESTAMP '2026-11-20' AS first_detected_at, TIMESTAMP '2026-11-20' AS last_detected_at""",
            {"t": task_id},
        )
    _flag(features)
    rank_findings(features)
    rows = dict(features.execute("SELECT finding_id, priority FROM findings").fetchall())
    normal_pct = features.execute(
        "SELECT fused_percentile FROM task_anomaly_scores WHERE task_id = 's-00'"
    ).fetchone()[0]
    assert rows["f-odd"] > 55 and rows["f-odd"] > rows["f-s-00"]
    assert rows["f-s-00"] == (55 if normal_pct <= 90 else rows["f-s-00"])
    anomaly = features.execute(
        "SELECT priority, risk_score FROM findings WHERE rule_id = 'task_behaviour_anomaly' AND task_id = 'odd'"
    ).fetchone()
    assert anomaly[0] > anomaly[1]  # and the anomaly finding is raised by the rule finding
    risk = features.execute(
        "SELECT rule_findings, max_rule_risk, anomaly_percentile, risk_score FROM task_risk WHERE task_id = 'odd'"
    ).fetchone()
    assert risk[:3] == (1, 55, 100.0) and risk[3] == round(100 * (1 - 0.45 * 0.4))


def test_upper_tail_share_is_not_moved_by_summation_order():
    """A value equal to a training value but for its last bits (summed in another order, as the
    Spark engine does) counts that training value; a value clearly above does not."""
    train = np.sort(np.array([1.0, 2.3168232163628555, 5.0]))
    last_bits = np.nextafter(2.3168232163628555, 10.0)
    shares = upper_tail_share(train, np.array([2.3168232163628555, last_bits, 2.3168233]))
    assert shares.tolist() == [0.75, 0.75, 0.5]
