"""Evaluations rendered for people (fixed-width or markdown-style tables) or as JSON."""

from __future__ import annotations

import json

from chainwatch.harness.evaluate.anomalies import ANOMALY_SIGNALS, AnomalyEvaluation
from chainwatch.harness.evaluate.labels import EvaluationError
from chainwatch.harness.evaluate.rules import PRECISION_DEFINITION, Evaluation

FORMATS = ("table", "json")
NOT_COVERED = "not covered by a rule"


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
