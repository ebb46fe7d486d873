"""One run of the assistant simulator: plan the tasks, compose and place each, write the files.

``OUT/otlp/assistants-YYYY-MM-DD.jsonl`` holds one OTLP export per task (by start day, in time
order), ``OUT/labels.jsonl`` one label per task. Everything comes from one ``random.Random(seed)``;
content capture only changes what :func:`render` writes, never a draw.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from chainwatch.harness.simulate.assistants.attacks import STYLES, make_attacker
from chainwatch.harness.simulate.assistants.compose import LABELS, Composed, compose
from chainwatch.harness.simulate.assistants.model import Ctx, Trace, deck
from chainwatch.harness.simulate.assistants.suites import SUITES, make_agents, system_parts
from chainwatch.harness.simulate.assistants.traces import event_id, place, render
from chainwatch.harness.simulate.clock import _HOUR_WEIGHTS

DAYS = 3
SCENARIO = "content_injection"
_NS = 1_000_000_000


@dataclass(frozen=True)
class AssistantSummary:
    """What one run of the assistant simulator wrote."""

    out_dir: Path
    files: tuple[str, ...]  # relative to out_dir, sorted
    tasks: int
    spans: int
    tool_calls: int
    content: bool
    labels: dict[str, int] = field(default_factory=dict)
    suites: dict[str, int] = field(default_factory=dict)
    goals: dict[str, int] = field(default_factory=dict)  # of the injected tasks
    encodings: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        def counts(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"

        capture = "with content capture" if self.content else "without content capture"
        return "\n".join(
            [
                f"{self.tasks} assistant tasks {capture} in {self.out_dir}",
                f"  files:      {', '.join(self.files)}",
                f"  spans:      {self.spans} ({self.tool_calls} execute_tool)",
                f"  labels:     {counts(self.labels)}",
                f"  suites:     {counts(self.suites)}",
                f"  goals:      {counts(self.goals)} (injected tasks)",
                f"  encodings:  {counts(self.encodings)}",
            ]
        )


def _plan(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """(suite, label, injection style) of each task in arrival order: suites in equal shares,
    in each suite the labels in LABELS' shares, the injections' phrasings in STYLES' shares."""
    suites = [SUITES[i % len(SUITES)] for i in range(n)]
    rng.shuffle(suites)
    decks = {s: deck(rng, LABELS, suites.count(s)) for s in SUITES}
    plan = [(s, decks[s].pop()) for s in suites]
    injections = sum(label in ("injected", "injection_ignored") for _, label in plan)
    styles = deck(rng, STYLES, injections)
    return [
        (s, label, styles.pop() if label in ("injected", "injection_ignored") else "")
        for s, label in plan
    ]


def _arrivals(rng: random.Random, n: int, start: date) -> list[int]:
    """Task start times (unix ns) over DAYS days, shaped by hour of day, sorted."""
    t0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * _NS
    hours = rng.choices(range(24), weights=_HOUR_WEIGHTS, k=n)
    return sorted(
        t0 + (rng.randrange(DAYS) * 24 + h) * 3600 * _NS + rng.randrange(3600 * _NS) for h in hours
    )


def _label(trace: Trace, c: Composed) -> str:
    return json.dumps(
        {
            "scenario": SCENARIO,
            "task_id": trace.task_id,
            "agent_id": trace.agent.agent_id,
            "suite": trace.agent.suite,
            "label": c.label,
            "attack_goal": c.goal,
            "injected_event_ids": [
                event_id(trace, i) for i, call in enumerate(c.script.calls) if call.attack
            ],
            "vector_tool": c.vector_tool,
            "note": c.note,
        },
        separators=(",", ":"),
    )


class _Days:
    """One OTLP file per start day, opened as the run reaches it."""

    def __init__(self, out: Path) -> None:
        self.dir = out / "otlp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.day: date | None = None
        self.fh: TextIO | None = None
        self.files: list[str] = []

    def write(self, day: date, line: str) -> None:
        if day != self.day:
            self.close()
            name = f"assistants-{day.isoformat()}.jsonl"
            self.fh = open(self.dir / name, "w", encoding="utf-8", newline="\n")
            self.day = day
            self.files.append(f"otlp/{name}")
        assert self.fh is not None
        self.fh.write(line + "\n")

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def simulate_assistants(
    out: Path,
    seed: int = 7,
    tasks: int = 400,
    content: bool = True,
    start: date = date(2026, 11, 1),
) -> AssistantSummary:
    """Write ``tasks`` assistant traces (with or without content capture) and their labels."""
    if tasks < 1:
        raise ValueError("tasks must be positive")
    out = Path(out)
    rng = random.Random(seed)
    agents, attacker = make_agents(rng), make_attacker(rng)
    plan = _plan(rng, tasks)
    stats: dict[str, Counter[str]] = {k: Counter() for k in ("labels", "suites", "goals", "enc")}
    spans = tool_calls = 0
    days = _Days(out)
    with open(out / "labels.jsonl", "w", encoding="utf-8", newline="\n") as labels:
        for n, ((suite, label, style), t0) in enumerate(
            zip(plan, _arrivals(rng, tasks, start), strict=True), 1
        ):
            day = start + timedelta(days=(t0 // _NS - _epoch(start)) // 86400)
            ctx = Ctx(rng, rng.choice(agents[suite]), day)
            composed = compose(ctx, label, attacker, style)
            task_id = f"asst-{day:%Y%m%d}-{n:04d}"
            system = system_parts(ctx.agent, day.isoformat())
            trace = place(rng, task_id, ctx.agent, composed.script, system, t0)
            days.write(day, render(trace, content))
            labels.write(_label(trace, composed) + "\n")
            stats["labels"][label] += 1
            stats["suites"][suite] += 1
            if label == "injected":
                stats["goals"][composed.goal or ""] += 1
            stats["enc"][trace.encoding] += 1
            spans += 2 + 2 * len(composed.script.calls)
            tool_calls += len(composed.script.calls)
    days.close()
    _readme(out, seed, tasks, content, start)
    return AssistantSummary(
        out_dir=out,
        files=tuple(sorted([*days.files, "labels.jsonl", "README.md"])),
        tasks=tasks,
        spans=spans,
        tool_calls=tool_calls,
        content=content,
        labels=dict(sorted(stats["labels"].items())),
        suites=dict(sorted(stats["suites"].items())),
        goals=dict(sorted(stats["goals"].items())),
        encodings=dict(sorted(stats["enc"].items())),
    )


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _readme(out: Path, seed: int, tasks: int, content: bool, start: date) -> None:
    flags = f" --seed {seed} --tasks {tasks}"
    flags += f" --start {start.isoformat()}" if start != date(2026, 11, 1) else ""
    flags += "" if content else " --no-content-capture"
    (out / "README.md").write_text(
        f"Generated by `chainwatch simulate --assistants --out <this directory>{flags}`: "
        f"assistant-agent traces (OTLP/JSON, GenAI semantic conventions"
        f"{', with' if content else ', without'} content capture) and labels.jsonl.\n",
        encoding="utf-8",
    )
