"""Rule findings scored against the labels: recall and precision per scenario, per rule and
overall (definitions in the package docstring, chainwatch/harness/evaluate/__init__.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from chainwatch.harness.evaluate.labels import EvaluationError, Label, load_labels
from chainwatch.harness.simulate import SCENARIOS
from detectors.core.settings import Settings

# Rule id -> the simulator scenarios the rule is meant to catch. Rule ids are not final yet.
# Which scenarios each rule is expected to catch. Every scenario that keeps a task's credential
# alive after the task (reuse, sharing, leaks, retained approvals) is also, by definition, a
# credential that outlived its task, and most of them use it after the task ended.
_KEPT_ALIVE = [
    "credential_outlived_task",
    "credential_reused_by_other_task",
    "credential_shared_across_agents",
    "leaked_credential_new_ip",
    "approval_retained_access",
]
DEFAULT_RULE_SCENARIOS: dict[str, list[str]] = {
    "credential_outlived_task": list(_KEPT_ALIVE),
    "credential_used_after_task": list(_KEPT_ALIVE),
    "credential_reused_by_other_task": ["credential_reused_by_other_task"],
    "credential_shared_across_agents": ["credential_shared_across_agents"],
    "credential_new_source_ip": ["leaked_credential_new_ip"],
    "sensitive_read_then_egress": ["sensitive_read_then_egress"],
    "read_write_delegate": ["read_write_delegate"],
    "cross_system_writes": ["cross_system_writes"],
    "connector_sprawl": ["connector_sprawl"],
    "approval_scope_exceeded": ["approval_retained_access"],
}


PRECISION_DEFINITION = (
    "precision = findings of the scenario's mapped rules that match a label of any scenario "
    "their rule maps to / all findings of those rules; suppressed findings count as detections"
)


class _Rates:
    """Derived counts and ratios shared by per-scenario and overall results."""

    labels: int
    matched: int
    findings: int
    true_positives: int

    @property
    def false_positives(self) -> int:
        return self.findings - self.true_positives

    @property
    def false_negatives(self) -> int:
        return self.labels - self.matched

    @property
    def recall(self) -> float | None:
        return _ratio(self.matched, self.labels)

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_positives, self.findings)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class ScenarioResult(_Rates):
    """Detection quality for one scenario."""

    scenario: str
    rules: tuple[str, ...]  # rules mapped to the scenario; empty when not covered
    labels: int
    matched: int  # labels matched by >= 1 finding of a mapped rule
    findings: int  # findings of the mapped rules
    true_positives: int  # of those, findings matching a label of any scenario their rule maps to
    suppressed: int = 0  # of those findings, how many have status 'suppressed'

    @property
    def covered(self) -> bool:
        return bool(self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "covered": self.covered,
            "rules": list(self.rules),
            "labels": self.labels,
            "matched": self.matched,
            "recall": self.recall if self.covered else None,
            "findings": self.findings,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives if self.covered else None,
            "precision": self.precision,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class RuleResult:
    """Findings of one mapped rule and how many of them are true positives."""

    rule_id: str
    scenarios: tuple[str, ...]
    findings: int
    true_positives: int
    suppressed: int = 0

    @property
    def false_positives(self) -> int:
        return self.findings - self.true_positives

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_positives, self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "scenarios": list(self.scenarios),
            "findings": self.findings,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "precision": self.precision,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class Overall(_Rates):
    """Micro-averaged figures over the rule-covered scenarios (each finding counted once)."""

    labels: int
    matched: int
    findings: int
    true_positives: int
    suppressed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "matched": self.matched,
            "recall": self.recall,
            "findings": self.findings,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "precision": self.precision,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class Evaluation:
    """The result of `evaluate`: per scenario, per rule, overall, and what was not scored."""

    scenarios: tuple[ScenarioResult, ...]
    rules: tuple[RuleResult, ...]
    overall: Overall
    unmapped_rules: dict[str, int] = field(default_factory=dict)  # rule id -> findings
    labels_path: str = ""

    def scenario(self, name: str) -> ScenarioResult:
        for result in self.scenarios:
            if result.scenario == name:
                return result
        raise KeyError(name)

    @property
    def uncovered(self) -> tuple[str, ...]:
        """Labelled scenarios that no rule maps to."""
        return tuple(s.scenario for s in self.scenarios if not s.covered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels_path": self.labels_path,
            "scenarios": [s.to_dict() for s in self.scenarios],
            "overall": self.overall.to_dict(),
            "rules": [r.to_dict() for r in self.rules],
            "not_covered_by_a_rule": list(self.uncovered),
            "unmapped_rules": dict(self.unmapped_rules),
            "precision_definition": PRECISION_DEFINITION,
        }


def _scenario_order(names: set[str]) -> list[str]:
    known = [s for s in SCENARIOS if s in names]
    return known + sorted(names - set(SCENARIOS))


def _normalised_mapping(
    rule_scenarios: Mapping[str, Sequence[str]] | None,
) -> dict[str, tuple[str, ...]]:
    mapping = DEFAULT_RULE_SCENARIOS if rule_scenarios is None else rule_scenarios
    out: dict[str, tuple[str, ...]] = {}
    for rule_id, scenarios in mapping.items():
        if isinstance(scenarios, str):
            raise EvaluationError(
                f"rule_scenarios[{rule_id!r}] must be a list of scenarios, not a string"
            )
        if scenarios:
            out[str(rule_id)] = tuple(dict.fromkeys(str(s) for s in scenarios))
    return out


def evaluate(
    con: duckdb.DuckDBPyConnection,
    labels_path: str | Path,
    settings: Settings,
    *,
    rule_scenarios: Mapping[str, Sequence[str]] | None = None,
) -> Evaluation:
    """Compare the findings table with the labels; see the package docstring for definitions."""
    mapping = _normalised_mapping(rule_scenarios)
    labels = load_labels(labels_path, settings.hash_key)
    rows = con.execute(
        "SELECT rule_id, task_id, credential_id, status FROM findings ORDER BY finding_id"
    ).fetchall()
    per_rule, unmapped, matched_labels = _score_findings(rows, mapping, labels)
    results = _scenario_results(labels, mapping, per_rule, matched_labels)
    covered = [s for s in results if s.covered]
    overall = Overall(
        labels=sum(s.labels for s in covered),
        matched=sum(s.matched for s in covered),
        findings=sum(c[0] for c in per_rule.values()),
        true_positives=sum(c[1] for c in per_rule.values()),
        suppressed=sum(c[2] for c in per_rule.values()),
    )
    rule_results = tuple(
        RuleResult(rule_id, mapping[rule_id], *per_rule[rule_id]) for rule_id in sorted(mapping)
    )
    return Evaluation(
        scenarios=tuple(results),
        rules=rule_results,
        overall=overall,
        unmapped_rules=dict(sorted(unmapped.items())),
        labels_path=str(labels_path),
    )


def _score_findings(
    rows: list[tuple[Any, ...]], mapping: dict[str, tuple[str, ...]], labels: list[Label]
) -> tuple[dict[str, list[int]], dict[str, int], set[int]]:
    """Per mapped rule [findings, true positives, suppressed]; findings per unmapped rule; and
    the indices of the labels some finding matched."""
    # Labels indexed by (scenario, entity key) for matching.
    by_cred: dict[tuple[str, str], list[int]] = {}
    by_task: dict[tuple[str, str], list[int]] = {}
    for i, label in enumerate(labels):
        if label.by_credential:
            by_cred.setdefault((label.scenario, label.credential_id or ""), []).append(i)
        else:
            by_task.setdefault((label.scenario, label.task_id), []).append(i)

    matched_labels: set[int] = set()
    per_rule: dict[str, list[int]] = {rule_id: [0, 0, 0] for rule_id in mapping}
    unmapped: dict[str, int] = {}
    for rule_id, task_id, cred_id, status in rows:
        scenarios = mapping.get(rule_id)
        if scenarios is None:
            unmapped[rule_id] = unmapped.get(rule_id, 0) + 1
            continue
        hits: list[int] = []
        for scenario in scenarios:
            if cred_id is not None:
                hits += by_cred.get((scenario, cred_id), [])
            if task_id is not None:
                hits += by_task.get((scenario, task_id), [])
        counts = per_rule[rule_id]
        counts[0] += 1
        counts[1] += bool(hits)
        counts[2] += status == "suppressed"
        matched_labels.update(hits)
    return per_rule, unmapped, matched_labels


def _scenario_results(
    labels: list[Label],
    mapping: dict[str, tuple[str, ...]],
    per_rule: dict[str, list[int]],
    matched_labels: set[int],
) -> list[ScenarioResult]:
    """One result per labelled or mapped scenario, in the simulator's scenario order."""
    rules_of: dict[str, list[str]] = {}
    for rule_id, scenarios in mapping.items():
        for scenario in scenarios:
            rules_of.setdefault(scenario, []).append(rule_id)

    names = {label.scenario for label in labels} | set(rules_of)
    results = []
    for scenario in _scenario_order(names):
        rules = tuple(sorted(rules_of.get(scenario, [])))
        mine = [i for i, label in enumerate(labels) if label.scenario == scenario]
        results.append(
            ScenarioResult(
                scenario=scenario,
                rules=rules,
                labels=len(mine),
                matched=sum(i in matched_labels for i in mine),
                findings=sum(per_rule[r][0] for r in rules),
                true_positives=sum(per_rule[r][1] for r in rules),
                suppressed=sum(per_rule[r][2] for r in rules),
            )
        )
    return results
