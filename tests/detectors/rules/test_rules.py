"""Every rule's own positive and negative cases, run through the real ingest; metadata conventions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detectors.derive.tables import build_derived_tables
from detectors.rules.declarative import compile_chain
from detectors.rules.engine import (
    HIT_COLUMNS,
    RULES_DIR,
    RuleError,
    load_rule,
    load_rules,
    run_rule,
)
from tests.conftest import Ingester

RULES = load_rules()


def _cases():
    for rule in RULES:
        assert rule.cases_path is not None, f"{rule.id} has no {rule.id}.cases.yaml"
        doc = yaml.safe_load(rule.cases_path.read_text())
        for polarity in ("positive", "negative"):
            for case in doc.get(polarity) or []:
                yield pytest.param(rule, polarity, case, id=f"{rule.id}-{polarity}-{case['name']}")


@pytest.mark.parametrize(("rule", "polarity", "case"), list(_cases()))
def test_rule_case(ingest: Ingester, rule, polarity: str, case: dict):
    report = ingest.lines("case.jsonl", case["records"], fmt="native")
    assert report.total("rejected") == 0, ingest.rows("SELECT reason FROM rejected_events")
    build_derived_tables(ingest.con)
    columns = (*HIT_COLUMNS, *rule.meta["hit_overrides"])
    hits = [dict(zip(columns, row, strict=True)) for row in run_rule(ingest.con, rule)]
    expect = case.get("expect", {})
    wanted = expect.get("findings", 1 if polarity == "positive" else 0)
    assert len(hits) == wanted, hits
    if "entity_id" in expect:
        assert [h["entity_id"] for h in hits] == [expect["entity_id"]]
    if "evidence" in expect:
        assert hits[0]["evidence_event_ids"] == expect["evidence"]
    if "severity" in expect:  # rules whose severity depends on the evidence (hit_overrides)
        assert hits[0]["severity"] == expect["severity"], hits[0]


def test_every_rule_has_positive_and_negative_cases():
    for rule in RULES:
        doc = yaml.safe_load(rule.cases_path.read_text())
        assert doc.get("positive") and doc.get("negative"), rule.id


def test_rule_ids_are_unique_and_equal_file_names():
    assert len({r.id for r in RULES}) == len(RULES)
    assert all(r.path.stem == r.id for r in RULES)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": "urgent"}, "field 'severity' must be one of"),
        ({"id": "other"}, "field 'id' must equal the file name"),
        (
            {
                "frameworks": {
                    "owasp_agentic": ["x"],
                    "owasp_nhi": ["y"],
                    "nist_ai_rmf": ["PLAN"],
                    "maestro": {"layer": "L3 Agent Frameworks", "threat": "t"},
                }
            },
            "frameworks.nist_ai_rmf",
        ),
        ({"runbook": None}, "missing required field 'runbook'"),
        (
            {"sequence": {"steps": [{"where": {"colour": "red"}}, {"where": {"tool": "x"}}]}},
            "unknown field 'colour'",
        ),
        ({"sequence": {"within": "soon", "steps": [{}, {}]}}, "expected a duration"),
        ({"risk_score": 101}, "risk_score"),
        ({"id": "Sensitive-Read"}, "field 'id' must be an identifier"),
        ({"references": "https://example.org"}, "field 'references' must be a list of strings"),
        ({"parameters": {"Window": 1}}, "parameter name 'Window' must match"),
        ({"kind": "sql"}, "kind 'sql' needs sensitive_read_then_egress.sql next to it"),
        (
            {"sequence": {"steps": [{"where": {"tool": {"like": "x"}}}, {"where": {"tool": "x"}}]}},
            "unknown operator 'like' for 'tool'",
        ),
    ],
)
def test_a_malformed_rule_names_the_file_and_field(tmp_path: Path, change: dict, message: str):
    meta = yaml.safe_load((RULES_DIR / "sensitive_read_then_egress.yaml").read_text())
    meta.update(change)
    path = tmp_path / "sensitive_read_then_egress.yaml"
    path.write_text(yaml.safe_dump(meta))
    with pytest.raises(RuleError) as exc:
        load_rule(path)
    assert str(path) in str(exc.value) and message in str(exc.value)


def test_an_override_of_an_undeclared_parameter_is_refused(tmp_path: Path):
    path = tmp_path / "sensitive_read_then_egress.yaml"
    path.write_text((RULES_DIR / "sensitive_read_then_egress.yaml").read_text())
    with pytest.raises(RuleError, match="override for unknown parameter 'nope'"):
        load_rule(path, {"nope": 1})


def test_each_predicate_operator_compiles_to_its_bound_condition():
    sql, params = compile_chain(
        {
            "steps": [
                {
                    "where": {
                        "tool": {
                            "not": "a",
                            "in": ["b"],
                            "not_in": ["c"],
                            "glob": "d*",
                            "is_null": False,
                        }
                    }
                },
                {"where": {"system": ["s"], "outcome": "ok", "destination": {"is_null": True}}},
            ]
        },
        "ctx",
    )
    step0 = (
        'coalesce("tool" IS DISTINCT FROM $c1, false) AND coalesce(list_contains($c2, "tool"), '
        'false) AND coalesce(NOT coalesce(list_contains($c3, "tool"), false), false) AND '
        'coalesce("tool" GLOB $c4, false) AND coalesce("tool" IS NOT NULL, false)'
    )
    step1 = (
        'coalesce(list_contains($c5, "system"), false) AND coalesce("outcome" = $c6, false) AND '
        'coalesce("destination" IS NULL, false)'
    )
    assert f"({step0}) AS s0" in sql and f"({step1}) AS s1" in sql
    assert params == {"c0": 86400, "c1": "a", "c2": ["b"], "c3": ["c"], "c4": "d*"} | {
        "c5": ["s"],
        "c6": "ok",
    }


def test_predicate_values_are_bound_not_pasted(tmp_path: Path):
    meta = yaml.safe_load((RULES_DIR / "sensitive_read_then_egress.yaml").read_text())
    meta["sequence"]["steps"][0]["where"] = {"tool": "x'); DROP TABLE agent_actions; --"}
    path = tmp_path / "sensitive_read_then_egress.yaml"
    path.write_text(yaml.safe_dump(meta))
    rule = load_rule(path)
    assert "DROP TABLE" not in rule.sql
    assert "x'); DROP TABLE agent_actions; --" in rule.params.values()


def _chain_rule(tmp_path: Path, sequence: dict):
    meta = yaml.safe_load((RULES_DIR / "sensitive_read_then_egress.yaml").read_text())
    meta["sequence"] = sequence
    path = tmp_path / "sensitive_read_then_egress.yaml"
    path.write_text(yaml.safe_dump(meta))
    return load_rule(path)


def _act(event_id: str, minute: int, tool: str, task: str = "task-1", **extra) -> dict:
    return {
        "record_type": "action",
        "event_id": event_id,
        "ts": f"2026-11-01T10:{minute:02d}:00Z",
        "agent_id": "agent-1",
        "task_id": task,
        "tool": tool,
        **extra,
    }


def test_until_cancels_a_partial_match(ingest: Ingester, tmp_path: Path):
    rule = _chain_rule(
        tmp_path,
        {
            "within": "1h",
            "until": {"tool": "approve"},
            "steps": [{"where": {"tool": "read"}}, {"where": {"tool": "send"}}],
        },
    )
    ingest.lines(
        "a.jsonl",
        [
            _act("a1", 0, "read"),
            _act("a2", 1, "approve"),
            _act("a3", 2, "send"),  # cancelled
            _act("b1", 0, "read", "task-2"),
            _act("b2", 1, "send", "task-2"),  # matches
            _act("c1", 0, "read", "task-3"),
            _act("c2", 1, "approve", "task-3"),
            _act("c3", 2, "read", "task-3"),
            _act("c4", 3, "send", "task-3"),  # new start after until
        ],
        fmt="native",
    )
    hits = {h[0]: h[6] for h in run_rule(ingest.con, rule)}
    assert hits == {"task-2": ["native:b1", "native:b2"], "task-3": ["native:c3", "native:c4"]}


def test_absent_requires_no_follow_up_within_the_span(ingest: Ingester, tmp_path: Path):
    rule = _chain_rule(
        tmp_path,
        {
            "within": "1h",
            "absent": {"where": {"tool": "revoke"}, "within": "10m"},
            "steps": [{"where": {"tool": "issue"}}, {"where": {"tool": "use"}}],
        },
    )
    ingest.lines(
        "a.jsonl",
        [
            _act("a1", 0, "issue"),
            _act("a2", 1, "use"),
            _act("a3", 5, "revoke"),  # revoked in time
            _act("b1", 0, "issue", "task-2"),
            _act("b2", 1, "use", "task-2"),  # never revoked
            _act("c1", 0, "issue", "task-3"),
            _act("c2", 1, "use", "task-3"),
            _act("c3", 30, "revoke", "task-3"),  # too late
        ],
        fmt="native",
    )
    assert sorted(h[0] for h in run_rule(ingest.con, rule)) == ["task-2", "task-3"]


def test_three_steps_keep_their_order_and_window(ingest: Ingester, tmp_path: Path):
    rule = _chain_rule(
        tmp_path,
        {
            "within": "10m",
            "steps": [
                {"where": {"tool": "a"}},
                {"where": {"tool": "b"}},
                {"where": {"tool": {"in": ["c", "d"]}}},
            ],
        },
    )
    ingest.lines(
        "a.jsonl",
        [
            _act("x1", 0, "a"),
            _act("x2", 1, "b"),
            _act("x3", 2, "d"),  # in order
            _act("y1", 0, "b", "task-2"),
            _act("y2", 1, "a", "task-2"),
            _act("y3", 2, "c", "task-2"),  # b before a
            _act("z1", 0, "a", "task-3"),
            _act("z2", 5, "b", "task-3"),
            _act("z3", 15, "c", "task-3"),  # too slow
            _act("w1", 0, "a", "task-4"),
            _act("w2", 9, "a", "task-4"),
            _act("w3", 10, "b", "task-4"),
            _act("w4", 12, "c", "task-4"),  # latest start wins
        ],
        fmt="native",
    )
    hits = {h[0]: h[6] for h in run_rule(ingest.con, rule)}
    assert hits == {
        "task-1": ["native:x1", "native:x2", "native:x3"],
        "task-4": ["native:w2", "native:w3", "native:w4"],
    }
