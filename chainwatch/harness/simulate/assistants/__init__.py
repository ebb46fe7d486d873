"""Simulated assistant agents under prompt injection, with the opt-in content captured.

A deterministic (per seed) generator of traces of assistant agents in four AgentDojo-style
suites (banking, slack, travel, workspace): OTLP/JSON exports with the OpenTelemetry GenAI
semantic conventions, the prompts, messages and tool results in one of four real encodings, and
``labels.jsonl`` saying which tasks were benign, legitimately acted on values read from tools
(hard negatives), followed an injection hidden in a tool's output, or ignored one.

Modules: ``values`` (IBANs, addresses, ids), ``model`` (scripts and traces), one per suite
(``banking``, ``slack``, ``travel``, ``workspace``) and ``suites`` (their agents and users),
``attacks`` and ``goals`` (what injections say and what a complying agent does), ``compose``
(one task of a label), ``messages`` and ``traces`` (the OTLP), ``run``
(:func:`simulate_assistants`).
"""

from chainwatch.harness.simulate.assistants.run import AssistantSummary, simulate_assistants

__all__ = ["AssistantSummary", "simulate_assistants"]
