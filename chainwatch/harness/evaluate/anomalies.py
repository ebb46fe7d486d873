"""Anomaly scores against the rule-less scenarios (ANOMALY_SCENARIOS): per signal, AUROC and
recall at a false-positive budget, with unlabelled tasks as the negatives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from chainwatch.harness.evaluate.labels import EvaluationError, load_labels
from chainwatch.harness.simulate import ANOMALY_SCENARIOS, SCENARIOS
from detectors.core.settings import Settings
from detectors.core.warehouse import has_table

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
    from sklearn.metrics import roc_auc_score  # here: importing sklearn takes seconds

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
    if not has_table(con, "task_anomaly_scores"):
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
    order = [s for s in ANOMALY_SCENARIOS if s in ruleless] + sorted(
        set(ruleless) - set(ANOMALY_SCENARIOS)
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
