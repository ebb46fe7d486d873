"""A content-injection evaluation rendered for a security engineer (fixed-width tables) or as
JSON (definitions in chainwatch/harness/evaluate/content.py)."""

from __future__ import annotations

import json

from chainwatch.harness.evaluate.content import ContentEvaluation, Rates, RuleSetResult
from chainwatch.harness.evaluate.labels import EvaluationError


def _frac(num: int, den: int) -> str:
    return "n/a (0/0)" if not den else f"{num / den:.3f} ({num}/{den})"


def _render(head: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    """A fixed-width table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i]) for i, cell in enumerate(row[1:], start=1)]
        return "  ".join(cells).rstrip()

    return [line(head), "-" * (sum(widths) + 2 * len(widths) - 2), *map(line, body)]


def _rates(r: Rates) -> tuple[str, ...]:
    return (
        _frac(r.tasks_caught, r.injected_tasks),
        _frac(r.benign_flagged, r.benign_tasks),
        _frac(r.hard_flagged, r.hard_negatives),
    )


def _rule_row(r: RuleSetResult) -> tuple[str, ...]:
    return (r.name, str(r.findings), _frac(r.actions_caught, r.injected_actions), *_rates(r))


_LEGEND = (
    "action recall = injected actions cited in a finding's evidence / injected actions\n"
    "task recall   = injected tasks with a finding on them or citing their actions / injected tasks\n"
    "benign FPR    = benign and hard-negative tasks with a finding / those tasks (hard-neg: alone)"
)
_QUEUE_NOTE = (
    "task queue: a task scores the highest priority of its findings (risk_score where priority is\n"
    "NULL, 0 without findings); the threshold, the smallest score within the FPR target, flags\n"
    "every task scoring >= it, ties included"
)


def _table(ev: ContentEvaluation) -> str:
    t, every = ev.tasks, ev.rule_sets[0]
    lines = [
        f"content injection vs findings ({ev.labels_path})",
        f"tasks: {t['injected']} injected ({ev.injected_actions} injected actions), "
        f"{t['benign']} benign, {t['hard_negative']} hard negative",
        f"       {t['injection_ignored']} injection_ignored: neither positive nor negative, not scored",
        f"findings: {every.findings} counted, {every.suppressed} suppressed (never counted), "
        f"{every.unlabelled} on no labelled task",
        "",
    ]
    head = ("rule", "findings", "action recall", "task recall", "benign FPR", "hard-neg FPR")
    body = [_rule_row(r) for r in ev.rules]
    table = _render(head, body + [_rule_row(r) for r in ev.rule_sets])
    lines += table[: 2 + len(body)] + [table[1]] + table[2 + len(body) :]
    target = ev.settings.fpr_targets[0]
    best = ", ".join(ev.best_set) or "(none)"
    lines += [f"best set (greedy, benign FPR <= {target:g}): {best}", _LEGEND, "", _QUEUE_NOTE]
    qhead = ("queue", "FPR target", "threshold", "task recall", "benign FPR", "hard-neg FPR")
    qbody = [
        (
            q.name,
            f"{p.target_fpr:g}",
            "none" if p.threshold is None else str(p.threshold),
            *_rates(p),
        )
        for q in ev.queues
        for p in q.points
    ]
    aurocs = "; ".join(
        f"{q.name} {'n/a' if q.auroc is None else f'{q.auroc:.3f}'}" for q in ev.queues
    )
    lines += [*_render(qhead, qbody), f"AUROC (ties count half): {aurocs}"]
    return "\n".join(lines) + "\n"


def format_content_evaluation(ev: ContentEvaluation, fmt: str = "table") -> str:
    """Render a content evaluation as a fixed-width text table or as JSON."""
    if fmt == "json":
        return json.dumps(ev.to_dict(), indent=2) + "\n"
    if fmt == "table":
        return _table(ev)
    raise EvaluationError(f"unknown format {fmt!r}; expected table or json")
