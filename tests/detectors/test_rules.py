"""Every rule's own positive and negative cases, run through the real ingest; metadata conventions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detectors.derive import build_derived_tables
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
    hits = [dict(zip(HIT_COLUMNS, row, strict=True)) for row in run_rule(ingest.con, rule)]
    expect = case.get("expect", {})
    wanted = expect.get("findings", 1 if polarity == "positive" else 0)
    assert len(hits) == wanted, hits
    if "entity_id" in expect:
        assert [h["entity_id"] for h in hits] == [expect["entity_id"]]
    if "evidence" in expect:
        assert hits[0]["evidence_event_ids"] == expect["evidence"]


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


def test_predicate_values_are_bound_not_pasted(tmp_path: Path):
    meta = yaml.safe_load((RULES_DIR / "sensitive_read_then_egress.yaml").read_text())
    meta["sequence"]["steps"][0]["where"] = {"tool": "x'); DROP TABLE agent_actions; --"}
    path = tmp_path / "sensitive_read_then_egress.yaml"
    path.write_text(yaml.safe_dump(meta))
    rule = load_rule(path)
    assert "DROP TABLE" not in rule.sql
    assert "x'); DROP TABLE agent_actions; --" in rule.params.values()
