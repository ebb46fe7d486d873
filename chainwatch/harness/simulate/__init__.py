"""Simulate a fleet of AI agents and write its logs in the real published formats.

The output is what chainwatch ingests in production: OTLP/JSON traces with the GenAI semantic
conventions, HashiCorp Vault audit-file JSON lines, CloudTrail S3-delivery documents and
chainwatch's native task events, plus ``labels.jsonl`` naming every injected scenario instance.

Everything is derived from one seeded RNG (same seed, same bytes), and tasks are written as they
are generated: only lines not yet due (a task's later events, a leaked key's later use) wait in a
small time-ordered heap, so every file is in time order and memory depends on how many tasks run
at once, never on the size of the run.

Two families of injected behaviour, both labelled: :data:`SCENARIOS`, each caught by a detection
rule, always on; and, opt-in (``simulate(anomalies=True)``, ``chainwatch simulate --anomalies``),
:data:`ANOMALY_SCENARIOS`, built to stay below every shipped rule, for evaluating anomaly
detection. With anomalies off the output is byte for byte what it was before they existed.

Modules: ``catalog`` (scenarios, tools, roles), ``clock``, ``encoding`` and ``sinks`` (time,
JSON and the output files), ``state`` (agents, credentials, tasks), ``simulator`` (the
simulator, one mixin per concern: ``core``, ``fleet``, ``writers``, ``credentials``,
``arguments``, ``tools``, ``tasks``, ``scenarios``, ``anomalies``) and ``run`` (``simulate``).
"""

from chainwatch.harness.simulate.catalog import (
    _RARE_TOOLS,
    _ROLES,
    ANOMALY_RATE,
    ANOMALY_SCENARIOS,
    INJECT_RATE,
    SCENARIOS,
)
from chainwatch.harness.simulate.run import SimulationSummary, simulate
from chainwatch.harness.simulate.simulator import _Simulator

__all__ = [
    "ANOMALY_RATE",
    "ANOMALY_SCENARIOS",
    "INJECT_RATE",
    "SCENARIOS",
    "SimulationSummary",
    "_RARE_TOOLS",
    "_ROLES",
    "_Simulator",
    "simulate",
]
