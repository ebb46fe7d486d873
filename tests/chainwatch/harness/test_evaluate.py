"""Scoring findings against the simulator's labels (chainwatch/harness/evaluate/)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from chainwatch.harness.evaluate import (
    DEFAULT_RULE_SCENARIOS,
    NOT_COVERED,
    EvaluationError,
    credential_id,
    credential_ids,
    evaluate,
    evaluate_anomalies,
    format_anomaly_evaluation,
    format_evaluation,
    recall_at_fpr,
)
from chainwatch.harness.simulate import SCENARIOS
from detectors.core.sqlfiles import run_sql
from tests.conftest import TEST_KEY

TS = datetime(2024, 5, 1, 10, 0, 0)

# A small mapping for most tests: one rule per scenario, one rule shared by two scenarios.
MAPPING = {
    "outlived": ["credential_outlived_task"],
    "after_task": ["credential_outlived_task", "leaked_credential_new_ip"],
    "egress": ["sensitive_read_then_egress"],
}


def label(scenario: str, task_id: str, cred: str | None = None, ns: str | None = None) -> dict:
    return {
        "scenario": scenario,
        "task_id": task_id,
        "agent_id": "agent-1",
        "credential_source_id": cred,
        "credential_namespace": ns if cred else None,
        "note": "hand-written",
    }


def write_labels(tmp_path: Path, labels: list[dict]) -> Path:
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(rec) + "\n" for rec in labels))
    return path


def cid(raw: str, ns: str = "vault") -> str:
    return credential_id(ns, raw, TEST_KEY)


_seq = iter(range(1_000_000))


def add_finding(
    con,
    rule_id: str,
    *,
    task_id: str | None = None,
    credential_id: str | None = None,
    status: str = "new",
) -> None:
    entity_type = "credential" if credential_id else "task"
    con.execute(
        """INSERT INTO findings (finding_id, rule_id, title, severity, risk_score, confidence,
               analytic_type, entity_type, entity_id, agent_id, task_id, credential_id,
               first_seen, last_seen, evidence_event_ids, status, suppression,
               first_detected_at, last_detected_at)
           VALUES (?, ?, 'title', 'high', 75, 'high', 'rule', ?, ?, 'agent-1', ?, ?, ?, ?, [],
                   ?, ?, ?, ?)""",
        [
            f"f_{next(_seq)}",
            rule_id,
            entity_type,
            credential_id or task_id,
            task_id,
            credential_id,
            TS,
            TS,
            status,
            "allowlisted" if status == "suppressed" else None,
            TS,
            TS,
        ],
    )


def run(con, settings, tmp_path, labels, mapping=MAPPING):
    return evaluate(con, write_labels(tmp_path, labels), settings, rule_scenarios=mapping)


# --- the credential hash --------------------------------------------------------------------


def test_credential_id_is_the_hash_ingest_stores(ingest, settings):
    ingest.lines(
        "native.jsonl",
        [
            {
                "record_type": "credential",
                "event_id": "c1",
                "ts": "2024-05-01T10:01:00Z",
                "event": "issue",
                "credential_ref": "jit-123",
                "credential_kind": "native_jit",
                "agent_id": "agent-1",
                "task_id": "task-1",
                "ttl_s": 900,
            }
        ],
    )
    stored = ingest.one("SELECT credential_id FROM credential_events")
    assert stored == credential_id("native", "jit-123", settings.hash_key)
    assert stored == ingest.cred_id("native", "jit-123")


@pytest.mark.parametrize("key_bytes", [63, 64, 65])
def test_credential_ids_are_hmac_sha256_of_namespace_and_value(key_bytes):
    """One query over many pairs; keys on each side of the SHA-256 block size (64 bytes)."""
    key = "k" * key_bytes
    pairs = [("vault", "hmac-sha256:abc"), ("aws", "ASIAEXAMPLE"), ("native", "jit-é")]
    ids = credential_ids([*pairs, pairs[0]], key)
    expected = {
        (ns, raw): "cred_"
        + hmac.new(key.encode(), f"{ns}:{raw}".encode(), hashlib.sha256).hexdigest()[:32]
        for ns, raw in pairs
    }
    assert ids == expected
    assert credential_id("aws", "ASIAEXAMPLE", key) == expected[("aws", "ASIAEXAMPLE")]


def test_evaluate_works_on_a_read_only_warehouse(con, settings, tmp_path):
    add_finding(con, "outlived", task_id="task-1", credential_id=cid("tok-1"))
    con.close()
    labels = [label("credential_outlived_task", "task-1", "tok-1", "vault")]
    with duckdb.connect(str(settings.db_path), read_only=True) as read_only:
        ev = run(read_only, settings, tmp_path, labels)
    assert ev.scenario("credential_outlived_task").matched == 1


# --- scoring ----------------------------------------------------------------------------------


def test_perfect_detection(con, settings, tmp_path):
    labels = [
        label("credential_outlived_task", "task-1", "tok-1", "vault"),
        label("credential_outlived_task", "task-2", "AKIA1", "aws"),
        label("sensitive_read_then_egress", "task-3"),
    ]
    add_finding(con, "outlived", task_id="task-1", credential_id=cid("tok-1"))
    add_finding(con, "outlived", task_id="task-2", credential_id=cid("AKIA1", "aws"))
    add_finding(con, "egress", task_id="task-3")
    ev = run(con, settings, tmp_path, labels)

    for name in ("credential_outlived_task", "sensitive_read_then_egress"):
        s = ev.scenario(name)
        assert (s.recall, s.precision) == (1.0, 1.0)
        assert (s.false_positives, s.false_negatives) == (0, 0)
    assert ev.scenario("credential_outlived_task").labels == 2
    assert (ev.overall.recall, ev.overall.precision) == (1.0, 1.0)
    assert (ev.overall.labels, ev.overall.findings) == (3, 3)


def test_missed_label_lowers_recall_exactly(con, settings, tmp_path):
    labels = [label("sensitive_read_then_egress", f"task-{i}") for i in range(4)]
    for i in range(3):
        add_finding(con, "egress", task_id=f"task-{i}")
    s = run(con, settings, tmp_path, labels).scenario("sensitive_read_then_egress")
    assert (s.labels, s.matched, s.false_negatives) == (4, 3, 1)
    assert s.recall == 3 / 4
    assert s.precision == 1.0


def test_false_positive_lowers_precision_exactly(con, settings, tmp_path):
    labels = [label("sensitive_read_then_egress", "task-1")]
    add_finding(con, "egress", task_id="task-1")
    add_finding(con, "egress", task_id="task-benign")
    add_finding(con, "egress", task_id="task-other")
    ev = run(con, settings, tmp_path, labels)
    s = ev.scenario("sensitive_read_then_egress")
    assert (s.findings, s.true_positives, s.false_positives) == (3, 1, 2)
    assert s.precision == 1 / 3
    assert s.recall == 1.0
    assert ev.overall.precision == 1 / 3


def test_credential_finding_on_right_task_but_wrong_credential_does_not_match(
    con, settings, tmp_path
):
    labels = [label("credential_outlived_task", "task-1", "tok-1", "vault")]
    add_finding(con, "outlived", task_id="task-1", credential_id=cid("tok-OTHER"))
    add_finding(con, "outlived", task_id="task-1")  # task-level, no credential at all
    # The same raw id in another namespace is another credential.
    add_finding(con, "outlived", task_id="task-1", credential_id=cid("tok-1", "aws"))
    s = run(con, settings, tmp_path, labels).scenario("credential_outlived_task")
    assert (s.matched, s.recall) == (0, 0.0)
    assert (s.findings, s.true_positives, s.precision) == (3, 0, 0.0)


def test_credential_finding_matches_on_credential_from_another_task(con, settings, tmp_path):
    # E.g. reuse by a later task: the finding names the later task but the labelled credential.
    labels = [label("credential_outlived_task", "task-1", "tok-1", "vault")]
    add_finding(con, "outlived", task_id="task-9", credential_id=cid("tok-1"))
    s = run(con, settings, tmp_path, labels).scenario("credential_outlived_task")
    assert (s.recall, s.precision) == (1.0, 1.0)


def test_credential_scenario_without_credential_matches_on_task(con, settings, tmp_path):
    labels = [label("credential_outlived_task", "task-1")]
    add_finding(con, "outlived", task_id="task-1", credential_id=cid("whatever"))
    s = run(con, settings, tmp_path, labels).scenario("credential_outlived_task")
    assert (s.recall, s.precision) == (1.0, 1.0)


def test_non_credential_scenario_matches_on_task_even_with_a_credential(con, settings, tmp_path):
    mapping = {"approval": ["approval_retained_access"]}
    labels = [label("approval_retained_access", "task-1", "tok-1", "vault")]
    add_finding(con, "approval", task_id="task-1")
    s = run(con, settings, tmp_path, labels, mapping).scenario("approval_retained_access")
    assert (s.recall, s.precision) == (1.0, 1.0)


def test_rule_mapped_to_two_scenarios_is_no_false_positive_for_either(con, settings, tmp_path):
    labels = [
        label("credential_outlived_task", "task-1", "tok-1", "vault"),
        label("leaked_credential_new_ip", "task-2", "AKIA2", "aws"),
    ]
    add_finding(con, "after_task", task_id="task-1", credential_id=cid("tok-1"))
    add_finding(con, "after_task", task_id="task-2", credential_id=cid("AKIA2", "aws"))
    ev = run(con, settings, tmp_path, labels)

    outlived, leaked = (
        ev.scenario("credential_outlived_task"),
        ev.scenario("leaked_credential_new_ip"),
    )
    assert outlived.rules == ("after_task", "outlived")
    assert leaked.rules == ("after_task",)
    for s in (outlived, leaked):
        assert (s.labels, s.matched, s.recall) == (1, 1, 1.0)
        assert (s.findings, s.true_positives, s.false_positives) == (2, 2, 0)
        assert s.precision == 1.0
    rule = {r.rule_id: r for r in ev.rules}["after_task"]
    assert (rule.findings, rule.true_positives) == (2, 2)
    # Overall counts each finding once, even though its rule covers two scenarios.
    assert (ev.overall.findings, ev.overall.true_positives, ev.overall.precision) == (2, 2, 1.0)
    assert (ev.overall.labels, ev.overall.matched) == (2, 2)


def test_finding_must_match_a_scenario_its_own_rule_maps_to(con, settings, tmp_path):
    # "outlived" maps only to credential_outlived_task: catching a leak label is not its job.
    labels = [label("leaked_credential_new_ip", "task-2", "AKIA2", "aws")]
    add_finding(con, "outlived", task_id="task-2", credential_id=cid("AKIA2", "aws"))
    ev = run(con, settings, tmp_path, labels)
    assert ev.scenario("leaked_credential_new_ip").matched == 0
    outlived = ev.scenario("credential_outlived_task")
    assert (outlived.findings, outlived.true_positives, outlived.labels) == (1, 0, 0)
    assert outlived.recall is None


def test_scenarios_without_rules_are_uncovered(con, settings, tmp_path):
    labels = [
        label("sensitive_read_then_egress", "task-1"),
        label("connector_sprawl", "task-2"),
        label("connector_sprawl", "task-3"),
    ]
    add_finding(con, "egress", task_id="task-1")
    ev = run(con, settings, tmp_path, labels)
    assert ev.uncovered == ("connector_sprawl",)
    sprawl = ev.scenario("connector_sprawl")
    assert (sprawl.covered, sprawl.labels) == (False, 2)
    # Uncovered labels do not drag the overall recall down.
    assert (ev.overall.labels, ev.overall.matched, ev.overall.recall) == (1, 1, 1.0)
    text = format_evaluation(ev)
    row = next(line for line in text.splitlines() if line.startswith("connector_sprawl"))
    assert NOT_COVERED in row


def test_suppressed_findings_count_as_detections(con, settings, tmp_path):
    labels = [label("sensitive_read_then_egress", "task-1")]
    add_finding(con, "egress", task_id="task-1", status="suppressed")
    add_finding(con, "egress", task_id="task-benign", status="suppressed")
    ev = run(con, settings, tmp_path, labels)
    s = ev.scenario("sensitive_read_then_egress")
    assert (s.recall, s.findings, s.true_positives, s.suppressed) == (1.0, 2, 1, 2)
    assert ev.overall.suppressed == 2


def test_unmapped_rules_are_listed_not_scored(con, settings, tmp_path):
    labels = [label("sensitive_read_then_egress", "task-1")]
    add_finding(con, "egress", task_id="task-1")
    add_finding(con, "brand_new_rule", task_id="task-1")
    ev = run(con, settings, tmp_path, labels)
    assert ev.unmapped_rules == {"brand_new_rule": 1}
    assert ev.overall.findings == 1
    assert "brand_new_rule (1)" in format_evaluation(ev)


def test_empty_findings_give_zero_recall_and_undefined_precision(con, settings, tmp_path):
    labels = [label("credential_outlived_task", "task-1", "tok-1", "vault")]
    ev = run(con, settings, tmp_path, labels)
    s = ev.scenario("credential_outlived_task")
    assert (s.recall, s.precision, s.findings) == (0.0, None, 0)
    assert (ev.overall.recall, ev.overall.precision) == (0.0, None)
    text = format_evaluation(ev)
    assert "n/a" in text
    assert json.loads(format_evaluation(ev, "json"))["overall"]["precision"] is None


def test_default_mapping_covers_every_scenario_but_listed_ones(con, settings, tmp_path):
    labels = [label(s, f"task-{i}") for i, s in enumerate(SCENARIOS)]
    ev = evaluate(con, write_labels(tmp_path, labels), settings)
    assert ev.uncovered == ()
    assert [s.scenario for s in ev.scenarios] == list(SCENARIOS)
    # Every scenario that keeps a credential alive after its task is an outlived credential.
    assert set(DEFAULT_RULE_SCENARIOS["credential_used_after_task"]) == {
        "credential_outlived_task",
        "leaked_credential_new_ip",
        "credential_reused_by_other_task",
        "credential_shared_across_agents",
        "approval_retained_access",
    }
    assert (
        DEFAULT_RULE_SCENARIOS["credential_outlived_task"]
        == DEFAULT_RULE_SCENARIOS["credential_used_after_task"]
    )
    # An override replaces the default mapping entirely.
    ev = evaluate(
        con, write_labels(tmp_path, labels), settings, rule_scenarios={"egress": MAPPING["egress"]}
    )
    assert set(ev.uncovered) == set(SCENARIOS) - {"sensitive_read_then_egress"}


# --- output -----------------------------------------------------------------------------------


def test_json_output_carries_the_same_numbers(con, settings, tmp_path):
    labels = [
        label("credential_outlived_task", "task-1", "tok-1", "vault"),
        label("leaked_credential_new_ip", "task-2", "AKIA2", "aws"),
        label("sensitive_read_then_egress", "task-3"),
        label("connector_sprawl", "task-4"),
    ]
    add_finding(con, "after_task", task_id="task-1", credential_id=cid("tok-1"))
    add_finding(con, "egress", task_id="task-3")
    add_finding(con, "egress", task_id="task-x")
    ev = run(con, settings, tmp_path, labels)
    doc = json.loads(format_evaluation(ev, "json"))

    rows = {r["scenario"]: r for r in doc["scenarios"]}
    for s in ev.scenarios:
        row = rows[s.scenario]
        assert row["labels"] == s.labels
        assert row["matched"] == s.matched
        assert row["findings"] == s.findings
        assert row["true_positives"] == s.true_positives
        assert row["false_positives"] == s.false_positives
        assert row["precision"] == s.precision
        assert row["covered"] == s.covered
        if s.covered:
            assert row["recall"] == s.recall
    assert rows["sensitive_read_then_egress"]["precision"] == 0.5
    assert rows["leaked_credential_new_ip"]["recall"] == 0.0
    assert doc["overall"]["precision"] == ev.overall.precision == 2 / 3
    assert doc["overall"]["recall"] == ev.overall.recall == 2 / 3
    assert doc["not_covered_by_a_rule"] == ["connector_sprawl"]
    assert "precision" in doc["precision_definition"]


def test_table_output_has_the_columns_and_numbers(con, settings, tmp_path):
    labels = [
        label("sensitive_read_then_egress", "task-1"),
        label("sensitive_read_then_egress", "t2"),
    ]
    add_finding(con, "egress", task_id="task-1")
    add_finding(con, "egress", task_id="task-x")
    text = format_evaluation(run(con, settings, tmp_path, labels), "table")
    header = text.splitlines()[0].split("  ")
    assert [h.strip() for h in header if h.strip()] == [
        "scenario",
        "labels",
        "matched",
        "recall",
        "findings",
        "true positives",
        "precision",
    ]
    row = next(line for line in text.splitlines() if line.startswith("sensitive_read_then_egress"))
    assert row.split() == ["sensitive_read_then_egress", "2", "1", "0.500", "2", "1", "0.500"]
    assert any(line.startswith("overall") for line in text.splitlines())


def test_unknown_format_is_an_error(con, settings, tmp_path):
    ev = run(con, settings, tmp_path, [])
    with pytest.raises(EvaluationError, match="format"):
        format_evaluation(ev, "csv")


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json\n", "not JSON"),
        ('{"task_id": "t"}\n', "scenario"),
        ('{"scenario": "connector_sprawl"}\n', "task_id"),
        ('{"scenario": "s", "task_id": "t", "credential_source_id": "x"}\n', "go together"),
        ("[1, 2]\n", "JSON object"),
    ],
)
def test_malformed_labels_name_the_line(con, settings, tmp_path, text, message):
    path = tmp_path / "labels.jsonl"
    path.write_text("\n" + text)
    with pytest.raises(EvaluationError, match=rf"labels.jsonl:2: .*{message}"):
        evaluate(con, path, settings)


def test_missing_labels_file_is_an_error(con, settings, tmp_path):
    with pytest.raises(EvaluationError, match="cannot read labels file"):
        evaluate(con, tmp_path / "absent.jsonl", settings)


# --- anomaly signals against rule-less scenarios ---------------------------------------------


def test_recall_at_fpr_counts_positives_strictly_above_the_allowed_negatives():
    negatives = np.arange(100) / 100  # 0.00 .. 0.99; 2 % may pass: the threshold is 0.97
    assert recall_at_fpr(np.array([1.0, 0.98, 0.5]), negatives, 0.02) == pytest.approx(2 / 3)
    assert recall_at_fpr(np.array([0.97]), negatives, 0.02) == 0.0  # a tie is not a detection
    assert recall_at_fpr(np.array([]), negatives) is None


def test_anomaly_evaluation_per_scenario_and_signal(con, settings, tmp_path: Path):
    run_sql(con, "anomaly_models")
    # t1, t2 read bursts (t2 unscored: its group had no model), t3 a rule scenario (not a
    # negative), n0..n9 unlabelled.
    tasks = ["t1", "t2", "t3"] + [f"n{i}" for i in range(10)]
    con.executemany(
        "INSERT INTO tasks (task_id, start_source, end_source, status, actions, credentials_issued, updated_at) "
        "VALUES (?, 'x', 'x', 'completed', 1, 0, now())",
        [[t] for t in tasks],
    )
    scores = {"t1": 9.0, "t3": 8.0, **{f"n{i}": float(i) for i in range(10)}}
    for task, value in scores.items():
        con.execute(
            """INSERT INTO task_anomaly_scores BY NAME SELECT $t AS task_id, 'g' AS peer_group,
                   'iforest:g' AS model_id, 1 AS version, $v AS iforest_score, 50 AS iforest_percentile,
                   $v AS baseline_score, 0 AS tail_score, $v AS sequence_score, 50 AS fused_percentile,
                   -$v AS fused_score, 'tail' AS dominant_signal, now() AS scored_at""",
            {"t": task, "v": value},
        )
    labels = write_labels(
        tmp_path,
        [
            label("read_burst", "t1"),
            label("read_burst", "t2"),
            label("sensitive_read_then_egress", "t3"),
        ],
    )
    ev = evaluate_anomalies(con, labels, settings)
    assert ev.negatives == 10 and [s.scenario for s in ev.scenarios] == ["read_burst"]
    burst = ev.scenario("read_burst")
    assert (burst.positives, burst.scored) == (2, 1)
    # baseline: t1 (9.0) beats 9 negatives and ties 1 (9.5 / 10); t2, unscored, beats none
    assert burst.signals["baseline"].auroc == pytest.approx((9.5 / 10 + 0) / 2)
    assert burst.signals["fused"].auroc < 0.5  # fused is reversed in this table: t1 lowest
    assert burst.signals["baseline"].recall_at_fpr == 0.0
    table = format_anomaly_evaluation(ev)
    assert "| read_burst | 2 |" in table and "fused AUROC" in table
    assert json.loads(format_anomaly_evaluation(ev, "json"))["negatives"] == 10


def test_anomaly_evaluation_without_scores_says_to_refit_first(con, settings, tmp_path):
    path = write_labels(tmp_path, [label("sensitive_read_then_egress", "task-1")])
    with pytest.raises(EvaluationError, match="no task_anomaly_scores table"):
        evaluate_anomalies(con, path, settings)
