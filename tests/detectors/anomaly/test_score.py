"""Scoring: never refits, explains a score, fuses the signals, sequence rarity, and the anomaly
findings it leads to."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from sklearn.ensemble import IsolationForest

from detectors.anomaly.peers import assign_peer_groups
from detectors.anomaly.score import score_tasks
from detectors.anomaly.train import train_models
from detectors.core.settings import AnomalyParams
from detectors.derive.tables import build_derived_tables
from detectors.findings.exports import findings_to_ocsf
from detectors.findings.merge import flag_anomalies, rank_findings, set_triage
from tests.conftest import Ingester
from tests.detectors.anomaly.conftest import SCORE_SINCE, TRAIN_UNTIL, run_task, scores_of


def test_scoring_never_refits(features, monkeypatch):
    train_models(features, train_until=TRAIN_UNTIL)
    models_before = features.execute("SELECT count(*), max(version) FROM anomaly_models").fetchone()

    def no_fit(*args, **kwargs):
        raise AssertionError("scoring must not fit")

    monkeypatch.setattr(IsolationForest, "fit", no_fit)
    assert score_tasks(features, since=SCORE_SINCE) == 21
    first = scores_of(features)
    assert score_tasks(features, since=SCORE_SINCE) == 21
    assert scores_of(features) == first
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
        records += run_task(f"c{n}", f"agent-{n % 2}", 2 + n, COMMON)
    # after the training window: one task like the others, one with read_file -> http_post
    records += run_task("same", "agent-0", 10, COMMON)
    records += run_task(
        "odd", "agent-1", 10, ["read_file", "http_post", "write_file", "send_email"]
    )
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
        records += run_task(f"t{n}", "agent-0", 2 + n, ["read_file", nxt])
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
