"""The content-injection labels of ``labels.jsonl`` (``chainwatch simulate --assistants``): one
line per assistant task, ``{"scenario": "content_injection", "task_id", "agent_id", "suite",
"label", "attack_goal", "injected_event_ids", "vector_tool", "note"}``; lines of other scenarios
are skipped."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chainwatch.harness.evaluate.labels import EvaluationError

CONTENT_SCENARIO = "content_injection"
CONTENT_LABELS = ("benign", "hard_negative", "injected", "injection_ignored")
_OPTIONAL_TEXT = ("agent_id", "suite", "attack_goal", "vector_tool", "note")


@dataclass(frozen=True)
class ContentLabel:
    """One labelled assistant task."""

    task_id: str
    label: str
    injected_event_ids: tuple[str, ...] = ()
    agent_id: str | None = None
    suite: str | None = None
    attack_goal: str | None = None
    vector_tool: str | None = None
    note: str | None = None
    line: int = 0


def _records(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) of each non-blank line; EvaluationError names path:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvaluationError(f"cannot read labels file {path}: {exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"{path}:{number}: not JSON: {exc}") from exc
        if not isinstance(rec, dict):
            raise EvaluationError(f"{path}:{number}: expected a JSON object")
        if not rec.get("scenario") or not isinstance(rec["scenario"], str):
            raise EvaluationError(f"{path}:{number}: missing 'scenario'")
        yield number, rec


def label_scenarios(labels_path: str | Path) -> set[str]:
    """The scenarios a labels file names (empty when it cannot be read or parsed: the evaluation
    that then runs reports why)."""
    try:
        return {rec["scenario"] for _, rec in _records(Path(labels_path))}
    except EvaluationError:
        return set()


def _content_label(where: str, number: int, rec: dict[str, Any]) -> ContentLabel:
    task_id, label, ids = rec.get("task_id"), rec.get("label"), rec.get("injected_event_ids")
    if not task_id or not isinstance(task_id, str):
        raise EvaluationError(f"{where}: missing 'task_id'")
    if label not in CONTENT_LABELS:
        raise EvaluationError(f"{where}: 'label' must be one of {', '.join(CONTENT_LABELS)}")
    ids = [] if ids is None else ids
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise EvaluationError(f"{where}: 'injected_event_ids' must be a list of event ids")
    text = {key: rec.get(key) for key in _OPTIONAL_TEXT}
    if any(value is not None and not isinstance(value, str) for value in text.values()):
        raise EvaluationError(f"{where}: {', '.join(_OPTIONAL_TEXT)} must be strings or null")
    return ContentLabel(task_id, label, tuple(dict.fromkeys(ids)), **text, line=number)


def load_content_labels(labels_path: str | Path) -> list[ContentLabel]:
    """The content_injection labels of a labels file (other scenarios skipped), one per task."""
    path = Path(labels_path)
    labels: dict[str, ContentLabel] = {}
    for number, rec in _records(path):
        if rec["scenario"] != CONTENT_SCENARIO:
            continue
        label = _content_label(f"{path}:{number}", number, rec)
        if (first := labels.get(label.task_id)) is not None:
            raise EvaluationError(
                f"{path}:{number}: task {label.task_id!r} already labelled on line {first.line}"
            )
        labels[label.task_id] = label
    if not labels:
        raise EvaluationError(f"{path}: no {CONTENT_SCENARIO} labels")
    return list(labels.values())
