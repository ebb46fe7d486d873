"""Score the `findings` table against the simulator's ground truth (`labels.jsonl`).

Each line of `labels.jsonl` is one injected scenario instance (see `chainwatch/harness/simulate.py`):
``{"scenario", "task_id", "agent_id", "credential_source_id", "credential_namespace", "note"}``.
A mapping from rule ids to the scenarios each rule is meant to catch (``DEFAULT_RULE_SCENARIOS``
unless overridden) decides which findings can detect which labels.

Definitions (all counts are exact; a ratio with a zero denominator is ``None``, "undefined"):

* A finding **matches** a label when the finding's rule maps to the label's scenario and the
  entities agree: for a credential scenario (``CREDENTIAL_SCENARIOS``) whose label names a
  credential, the finding's ``credential_id`` equals the label's credential hashed the way
  ingest hashes it (``credential_id()``); otherwise the finding's ``task_id`` equals the label's.
  A finding on the right task but a different (or no) credential does not match a credential
  label.
* **Recall** of a scenario = labels matched by at least one finding / labels of the scenario.
* A finding is a **true positive** when it matches some label of *any* scenario its own rule
  maps to, and a false positive otherwise. So a rule mapped to several scenarios (e.g.
  ``credential_used_after_task``) is not penalised for catching a sibling scenario.
* **Precision** of a scenario = true-positive findings / all findings, over the findings of the
  rules mapped to that scenario. A finding of a multi-scenario rule is counted in the row of
  every scenario its rule maps to.
* **Overall** (micro-averaged over rule-covered scenarios): recall = matched labels / labels,
  summed over covered scenarios; precision = true positives / findings over the *distinct*
  findings of all mapped rules, each finding counted once however many scenarios its rule maps
  to (so the overall finding count can be below the sum of the per-scenario counts).
* Every finding counts as a detection whatever its status: suppressed findings are kept and
  marked by chainwatch, so they still count (and are reported separately as ``suppressed``);
  a suppression hides a finding from triage, it does not undo the detection.
* Scenarios with labels but no mapped rule are reported as not covered by a rule and left out of
  the overall figures. Findings of rules absent from the mapping are listed as unmapped and not
  scored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from sklearn.metrics import roc_auc_score

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

# Scenarios whose entity is a credential: matched on credential_id when the label names one.
CREDENTIAL_SCENARIOS: frozenset[str] = frozenset(
    {
        "credential_outlived_task",
        "credential_reused_by_other_task",
        "credential_shared_across_agents",
        "leaked_credential_new_ip",
    }
)

FORMATS = ("table", "json")
NOT_COVERED = "not covered by a rule"
PRECISION_DEFINITION = (
    "precision = findings of the scenario's mapped rules that match a label of any scenario "
    "their rule maps to / all findings of those rules; suppressed findings count as detections"
)


class EvaluationError(ValueError):
    """The labels file or the arguments cannot be evaluated; the message says where."""


def credential_id(namespace: str, raw: str, hash_key: str) -> str:
    """The keyed hash chainwatch stores for a raw credential identifier (as ingest computes it)."""
    digest = hmac.new(hash_key.encode(), f"{namespace}:{raw}".encode(), hashlib.sha256)
    return "cred_" + digest.hexdigest()[:32]


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


@dataclass(frozen=True)
class Label:
    """One labelled scenario instance, with its credential already hashed."""

    scenario: str
    task_id: str
    agent_id: str | None = None
    credential_id: str | None = None
    note: str | None = None
    line: int = 0

    @property
    def by_credential(self) -> bool:
        """Whether findings must match this label on credential_id (else on task_id)."""
        return self.scenario in CREDENTIAL_SCENARIOS and self.credential_id is not None


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


def load_labels(labels_path: str | Path, hash_key: str) -> list[Label]:
    """Read labels.jsonl (blank lines skipped), hashing each label's credential."""
    path = Path(labels_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvaluationError(f"cannot read labels file {path}: {exc}") from exc
    labels: list[Label] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"{where}: not JSON: {exc}") from exc
        if not isinstance(rec, dict):
            raise EvaluationError(f"{where}: expected a JSON object")
        scenario, task_id = rec.get("scenario"), rec.get("task_id")
        if not scenario or not isinstance(scenario, str):
            raise EvaluationError(f"{where}: missing 'scenario'")
        if not task_id or not isinstance(task_id, str):
            raise EvaluationError(f"{where}: missing 'task_id'")
        raw, namespace = rec.get("credential_source_id"), rec.get("credential_namespace")
        if bool(raw) != bool(namespace):
            raise EvaluationError(
                f"{where}: 'credential_source_id' and 'credential_namespace' go together"
            )
        labels.append(
            Label(
                scenario=scenario,
                task_id=task_id,
                agent_id=rec.get("agent_id"),
                credential_id=credential_id(str(namespace), str(raw), hash_key) if raw else None,
                note=rec.get("note"),
                line=number,
            )
        )
    return labels


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
    """Compare the findings table with the labels; see the module docstring for definitions."""
    mapping = _normalised_mapping(rule_scenarios)
    labels = load_labels(labels_path, settings.hash_key)

    # Labels indexed by (scenario, entity key) for matching.
    by_cred: dict[tuple[str, str], list[int]] = {}
    by_task: dict[tuple[str, str], list[int]] = {}
    for i, label in enumerate(labels):
        if label.by_credential:
            by_cred.setdefault((label.scenario, label.credential_id or ""), []).append(i)
        else:
            by_task.setdefault((label.scenario, label.task_id), []).append(i)

    rows = con.execute(
        "SELECT rule_id, task_id, credential_id, status FROM findings ORDER BY finding_id"
    ).fetchall()

    matched_labels: set[int] = set()
    # Per rule: [findings, true positives, suppressed].
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


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


_COLUMNS = ("scenario", "labels", "matched", "recall", "findings", "true positives", "precision")


def _table(ev: Evaluation) -> str:
    body: list[tuple[str, ...]] = []
    for s in ev.scenarios:
        if s.covered:
            body.append(
                (
                    s.scenario,
                    str(s.labels),
                    str(s.matched),
                    _num(s.recall),
                    str(s.findings),
                    str(s.true_positives),
                    _num(s.precision),
                )
            )
        else:
            body.append((s.scenario, str(s.labels), NOT_COVERED))
    o = ev.overall
    total = (
        "overall (micro, covered)",
        str(o.labels),
        str(o.matched),
        _num(o.recall),
        str(o.findings),
        str(o.true_positives),
        _num(o.precision),
    )
    widths = [
        max(len(r[i]) for r in [_COLUMNS, *body, total] if len(r) == len(_COLUMNS) or i < 2)
        for i in range(len(_COLUMNS))
    ]

    def render(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i + 1]) for i, cell in enumerate(row[1:2])]
        if len(row) == len(_COLUMNS):
            cells += [cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:])]
        else:
            cells += list(row[2:])
        return "  ".join(cells).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    lines = [render(_COLUMNS), rule, *(render(r) for r in body), rule, render(total), ""]
    if ev.uncovered:
        lines.append(f"{NOT_COVERED}: {', '.join(ev.uncovered)}")
    if ev.unmapped_rules:
        listed = ", ".join(f"{r} ({n})" for r, n in ev.unmapped_rules.items())
        lines.append(f"findings of rules mapped to no scenario (not scored): {listed}")
    lines.append(f"suppressed findings counted as detections: {o.suppressed}")
    lines.append(PRECISION_DEFINITION)
    return "\n".join(lines) + "\n"


def format_evaluation(ev: Evaluation, fmt: str = "table") -> str:
    """Render an evaluation as a fixed-width text table or as JSON."""
    if fmt == "json":
        return json.dumps(ev.to_dict(), indent=2) + "\n"
    if fmt == "table":
        return _table(ev)
    raise EvaluationError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------------------------------------
# Anomaly scores against the rule-less scenarios

ANOMALY_SIGNALS: tuple[str, ...] = ("iforest", "sequence", "tail", "fused", "baseline")
ANOMALY_FPR = 0.02
# The ranking score of each signal in task_anomaly_scores. Percentiles are comparable across peer
# groups but saturate at 100 beyond a group's training maximum, so the raw score breaks ties there.
_SIGNAL_SQL = {
    "iforest": "iforest_percentile * 1e3 + iforest_score",
    "sequence": "coalesce(sequence_score, 0) + coalesce(tool_rarity_score, 0)",
    "tail": "tail_score",
    "fused": "fused_percentile * 1e3 + fused_score",
    "baseline": "baseline_score",
}


@dataclass(frozen=True)
class SignalResult:
    """One signal's ranking quality for one scenario: AUROC and recall at the FPR budget."""

    auroc: float | None
    recall_at_fpr: float | None


@dataclass(frozen=True)
class AnomalyScenarioResult:
    """Per rule-less scenario: labelled tasks, how many were scored, and each signal's result."""

    scenario: str
    positives: int
    scored: int
    signals: dict[str, SignalResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "positives": self.positives,
            "scored": self.scored,
            **{
                f"{name}_{metric}": getattr(r, attr)
                for name, r in self.signals.items()
                for metric, attr in (("auroc", "auroc"), ("recall_at_fpr", "recall_at_fpr"))
            },
        }


@dataclass(frozen=True)
class AnomalyEvaluation:
    """Anomaly scores against labels of scenarios no rule covers; negatives are unlabelled tasks."""

    scenarios: tuple[AnomalyScenarioResult, ...]
    negatives: int
    fpr: float
    labels_path: str = ""

    def scenario(self, name: str) -> AnomalyScenarioResult:
        for result in self.scenarios:
            if result.scenario == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels_path": self.labels_path,
            "negatives": self.negatives,
            "fpr": self.fpr,
            "scenarios": [s.to_dict() for s in self.scenarios],
        }


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    if len(pos) == 0 or len(neg) == 0:
        return None
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return float(roc_auc_score(y, np.r_[pos, neg]))


def recall_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float = ANOMALY_FPR) -> float | None:
    """Share of positives scored strictly above the threshold that lets at most ``fpr`` of the
    negatives through (ties at the threshold count against the positives)."""
    if len(pos) == 0 or len(neg) == 0:
        return None
    allowed = int(np.floor(fpr * len(neg)))
    threshold = np.sort(neg)[::-1][allowed] if allowed < len(neg) else -np.inf
    return float(np.mean(pos > threshold))


def evaluate_anomalies(
    con: duckdb.DuckDBPyConnection,
    labels_path: str | Path,
    settings: Settings,
    *,
    fpr: float = ANOMALY_FPR,
) -> AnomalyEvaluation:
    """AUROC and recall at ``fpr`` of each anomaly signal (forest, sequence, fused, robust-z
    baseline) per rule-less scenario (labels whose scenario no rule scenario names).

    Positives: the scenario's labelled tasks; negatives: tasks with no label at all. A task the
    models did not score (its peer group had no model) ranks below every scored task.
    """
    labels = load_labels(labels_path, settings.hash_key)
    ruleless: dict[str, set[str]] = {}
    for label in labels:
        if label.scenario not in SCENARIOS:
            ruleless.setdefault(label.scenario, set()).add(label.task_id)
    labelled = [label.task_id for label in labels]
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'task_anomaly_scores'"
    ).fetchone()[0]
    if not exists:
        raise EvaluationError(
            "no task_anomaly_scores table: run `chainwatch refit` and detect first"
        )
    columns = ", ".join(f"{sql} AS {name}" for name, sql in _SIGNAL_SQL.items())
    data = con.execute(
        f"""SELECT t.task_id, s.task_id IS NOT NULL AS scored, {columns}
            FROM tasks t LEFT JOIN task_anomaly_scores s USING (task_id)"""  # noqa: S608 - fixed text
    ).fetchnumpy()
    task_ids = np.asarray(data["task_id"], dtype=object)
    scored = np.asarray(data["scored"], dtype=bool)
    floor = {
        name: (np.nanmin(np.asarray(data[name], dtype=float)[scored]) - 1.0)
        if scored.any()
        else 0.0
        for name in ANOMALY_SIGNALS
    }
    values = {
        name: np.where(
            scored, np.nan_to_num(np.asarray(data[name], dtype=float), nan=floor[name]), floor[name]
        )
        for name in ANOMALY_SIGNALS
    }
    negative = ~np.isin(task_ids, np.asarray(labelled, dtype=object))
    order = [s for s in _ANOMALY_ORDER if s in ruleless] + sorted(
        set(ruleless) - set(_ANOMALY_ORDER)
    )

    def result(name: str, task_set: set[str]) -> AnomalyScenarioResult:
        positive = np.isin(task_ids, np.asarray(sorted(task_set), dtype=object))
        return AnomalyScenarioResult(
            scenario=name,
            positives=int(positive.sum()),
            scored=int((positive & scored).sum()),
            signals={
                signal: SignalResult(
                    _auroc(values[signal][positive], values[signal][negative]),
                    recall_at_fpr(values[signal][positive], values[signal][negative], fpr),
                )
                for signal in ANOMALY_SIGNALS
            },
        )

    results = [result(scenario, ruleless[scenario]) for scenario in order]
    if len(results) > 1:
        results.append(result("all rule-less scenarios", set().union(*ruleless.values())))
    return AnomalyEvaluation(tuple(results), int(negative.sum()), fpr, str(labels_path))


_ANOMALY_ORDER = (
    "read_burst",
    "unusual_tool_combination",
    "off_hours_bulk_access",
    "slow_exfiltration",
    "role_drift",
)


def format_anomaly_evaluation(ev: AnomalyEvaluation, fmt: str = "table") -> str:
    """Render an anomaly evaluation as a markdown-style table or as JSON."""
    if fmt == "json":
        return json.dumps(ev.to_dict(), indent=2) + "\n"
    if fmt != "table":
        raise EvaluationError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    pct = f"{ev.fpr:.0%}"
    head = ["scenario", "tasks"] + [
        f"{name} {metric}" for name in ANOMALY_SIGNALS for metric in ("AUROC", f"R@{pct}")
    ]
    lines = [
        f"anomaly signals vs rule-less scenarios ({ev.negatives} unlabelled tasks as negatives; "
        f"R@{pct} = recall at {pct} false-positive rate)",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for s in ev.scenarios:
        cells = [s.scenario, str(s.positives)]
        for name in ANOMALY_SIGNALS:
            r = s.signals[name]
            cells += [_num(r.auroc), _num(r.recall_at_fpr)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
