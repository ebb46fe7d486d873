"""The task model: what a suite's task builder produces and the trace writer renders.

A :class:`Script` is one conversation: the user's prompt, the tool calls the agent made (each
with its rendered result) and the final answer. Builders draw everything from one
:class:`Ctx`, which wraps the run's RNG, so the order of draws is the output.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


@dataclass(frozen=True)
class User:
    """The person an assistant works for."""

    name: str
    email: str
    iban: str = ""
    street: str = ""
    city: str = ""
    phone: str = ""

    @property
    def first(self) -> str:
        return self.name.split()[0]


@dataclass(frozen=True)
class Agent:
    """One deployed assistant: its identity, model, and how its framework serialises results."""

    agent_id: str
    name: str
    suite: str
    model: str
    provider: str  # gen_ai.provider.name
    framework: str  # tool results as "yaml", "json" or "repr" (str() of a Python object)
    service: str
    version: str
    user: User
    system: str  # the system instructions


@dataclass
class Call:
    """One tool call and its result (``obj`` is the structured result, when there is one)."""

    tool: str
    args: dict[str, Any]
    result: str
    obj: Any = None
    say: str = ""  # the assistant's text beside the call
    attack: bool = False  # the call acts on the attacker's values


@dataclass
class Script:
    """One task as the agent ran it."""

    prompt: str
    calls: list[Call]
    answer: str
    vector: int | None = None  # index of the call whose result carries the injection
    note: str = ""
    extras: dict[str, Any] = field(default_factory=dict)  # facts the attack may reuse


class Ctx:
    """What a task builder draws from: the run's RNG, the agent and its user, and today."""

    def __init__(self, rng: random.Random, agent: Agent, today: date) -> None:
        self.rng = rng
        self.agent = agent
        self.user = agent.user
        self.today = today

    def pick(self, seq: Sequence[T]) -> T:
        return seq[self.rng.randrange(len(seq))]

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        return self.rng.sample(list(seq), k)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def ri(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def money(self, lo: int, hi: int, cents: bool = True) -> float:
        value = self.rng.randint(lo * 100, hi * 100) / 100 if cents else self.rng.randint(lo, hi)
        return float(value)

    def day(self, offset: int = 0) -> str:
        return (self.today + timedelta(days=offset)).isoformat()

    def maybe(self, p: float, text: str) -> str:
        """``text`` with probability p, else the empty string (the assistant's optional words)."""
        return text if self.chance(p) else ""

    def data(self, tool: str, args: dict[str, Any], obj: Any, say: str = "") -> Call:
        """A call whose tool returns data, serialised the way the agent's framework does."""
        return Call(tool, args, render(obj, self.agent.framework), obj, say)

    def text(self, tool: str, args: dict[str, Any], text: str, say: str = "") -> Call:
        """A call whose tool returns text (a file, a web page, a confirmation)."""
        return Call(tool, args, text, None, say)


def deck(rng: random.Random, shares: Sequence[tuple[str, float]], n: int) -> list[str]:
    """n names in the given shares (largest remainder, ties to the earlier name), shuffled."""
    exact = [(i, name, share * n) for i, (name, share) in enumerate(shares)]
    counts = {name: int(x) for _, name, x in exact}
    by_rest = sorted(exact, key=lambda e: (int(e[2]) - e[2], e[0]))
    for _, name, _ in by_rest[: n - sum(counts.values())]:
        counts[name] += 1
    out = [name for name, _ in shares for _ in range(counts[name])]
    rng.shuffle(out)
    return out


def render(obj: Any, framework: str) -> str:
    """A tool's return value as the agent framework hands it to the model."""
    if obj is None:
        return "null" if framework == "json" else "None"
    if framework == "json":
        return json.dumps(obj, ensure_ascii=False)
    if framework == "repr":
        return str(obj)
    if isinstance(obj, str):
        return obj
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, default_flow_style=False)


def money_text(amount: float) -> str:
    return f"{amount:,.2f}"


@dataclass(frozen=True)
class Timed:
    """A span's id and times (unix nanoseconds)."""

    span_id: str
    start: int
    end: int


@dataclass
class Trace:
    """A script placed in time, with every id drawn: all the trace writer needs."""

    task_id: str
    agent: Agent
    script: Script
    encoding: str  # "json", "structured", "events" or "flat" (see messages.py)
    system: list[str]  # the system instructions, as text parts
    trace_id: str
    root: Timed
    chats: list[Timed]  # one per call, then the one that writes the final answer
    tools: list[Timed]
    call_ids: list[str]
    response_ids: list[str]
    objects: bool  # tool responses inside messages as objects (when the tool returned data)
