"""One task as an OTLP/JSON trace export: an ``invoke_agent`` root span, then for every step a
``chat`` span (the model choosing the call) followed by an ``execute_tool`` span, and a last
``chat`` span writing the answer; all children of the root, each starting after the last ended.

:func:`place` draws every id and time from the run's RNG; :func:`render` draws nothing, so the
trace with and without content capture has the same ids and times.
"""

from __future__ import annotations

import random
from typing import Any

from chainwatch.harness.simulate.assistants import messages as m
from chainwatch.harness.simulate.assistants.model import Agent, Script, Timed, Trace
from chainwatch.harness.simulate.assistants.values import call_id, hex_id, response_id

_MS = 1_000_000  # nanoseconds per millisecond
_SCOPES = {
    "json": ("opentelemetry.instrumentation.genai", "0.4b0"),
    "structured": ("agent_framework", "1.0.0b251007"),
    "events": ("opentelemetry.instrumentation.openai_v2", "2.1b0"),
    "flat": ("opentelemetry.instrumentation.openai", "0.40.14"),
}
_CLIENT_KIND, _INTERNAL_KIND = 3, 1
# The provider's own finish reasons (after a tool call, after the answer).
_FINISH = {
    "openai": ("tool_calls", "stop"),
    "anthropic": ("tool_use", "end_turn"),
    "gcp.gemini": ("STOP", "STOP"),
}


def pick_encoding(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for name, weight in m.ENCODINGS:
        acc += weight
        if x < acc:
            return name
    return m.ENCODINGS[-1][0]


def place(
    rng: random.Random, task_id: str, agent: Agent, script: Script, system: list[str], start: int
) -> Trace:
    """Ids and times for a script starting at ``start`` (unix ns)."""
    encoding = pick_encoding(rng)
    trace_id, root_id = hex_id(rng, 32), hex_id(rng, 16)
    t = start + rng.randint(2, 40) * _MS
    chats, tools = [], []
    for i in range(len(script.calls) + 1):
        end = t + rng.randint(500, 6500) * _MS + rng.randrange(_MS)
        chats.append(Timed(hex_id(rng, 16), t, end))
        t = end + rng.randint(1, 15) * _MS
        if i < len(script.calls):
            end = t + rng.randint(3, 900) * _MS + rng.randrange(_MS)
            tools.append(Timed(hex_id(rng, 16), t, end))
            t = end + rng.randint(1, 20) * _MS
    root = Timed(root_id, start, t + rng.randint(1, 30) * _MS)
    call_ids = [call_id(rng, agent.provider) for _ in script.calls]
    response_ids = [response_id(rng, agent.provider) for _ in chats]
    objects = rng.random() < 0.4
    return Trace(
        task_id,
        agent,
        script,
        encoding,
        system,
        trace_id,
        root,
        chats,
        tools,
        call_ids,
        response_ids,
        objects,
    )


def event_id(t: Trace, i: int) -> str:
    """chainwatch's event id of tool span i."""
    return f"otlp:{t.trace_id}:{t.tools[i].span_id}"


def _span(t: Trace, timed: Timed, name: str, kind: int, attrs: list[m.Attr]) -> dict[str, Any]:
    span: dict[str, Any] = {"traceId": t.trace_id, "spanId": timed.span_id}
    if timed is not t.root:
        span["parentSpanId"] = t.root.span_id
    span.update(
        name=name,
        kind=kind,
        startTimeUnixNano=str(timed.start),
        endTimeUnixNano=str(timed.end),
        attributes=attrs,
    )
    return span


def _provider_attr(t: Trace) -> m.Attr:
    """The provider, under the attribute name of the instrumentation's generation."""
    key = "gen_ai.provider.name" if t.encoding in ("json", "structured") else "gen_ai.system"
    return m.sattr(key, t.agent.provider)


def _root(t: Trace, content: bool) -> dict[str, Any]:
    a = t.agent
    attrs = [
        m.sattr("gen_ai.operation.name", "invoke_agent"),
        _provider_attr(t),
        m.sattr("gen_ai.agent.id", a.agent_id),
        m.sattr("gen_ai.agent.name", a.name),
        m.sattr("gen_ai.conversation.id", t.task_id),
        m.sattr("gen_ai.request.model", a.model),
    ]
    span = _span(t, t.root, f"invoke_agent {a.name}", _INTERNAL_KIND, attrs)
    if content and t.encoding in ("json", "structured"):
        attrs += m.root_content(t)
    elif content and t.encoding == "flat":
        attrs += m.flat_prompt(t, -1) + m.flat_completion(t, len(t.script.calls))
    elif content:
        span["events"] = m.root_events(t)
    return span


def _tokens(t: Trace, i: int) -> tuple[int, int]:
    """Token counts that grow with the conversation (from the content, captured or not)."""
    calls = t.script.calls
    seen = sum(len(x) for x in t.system) + len(t.script.prompt)
    seen += sum(len(c.result) + len(m.dumps(c.args)) + len(c.say) for c in calls[:i])
    out = (
        len(m.dumps(calls[i].args)) + len(calls[i].say) if i < len(calls) else len(t.script.answer)
    )
    return 180 + seen // 4, 12 + out // 4


def _chat(t: Trace, i: int, content: bool) -> dict[str, Any]:
    a, last = t.agent, i == len(t.script.calls)
    tokens_in, tokens_out = _tokens(t, i)
    finish = _FINISH.get(a.provider, _FINISH["openai"])[1 if last else 0]
    attrs = [
        m.sattr("gen_ai.operation.name", "chat"),
        _provider_attr(t),
        m.sattr("gen_ai.request.model", a.model),
        m.sattr("gen_ai.response.model", a.model),
        m.sattr("gen_ai.response.id", t.response_ids[i]),
        {"key": "gen_ai.response.finish_reasons", "value": m.any_value([finish])},
        m.iattr("gen_ai.usage.input_tokens", tokens_in),
        m.iattr("gen_ai.usage.output_tokens", tokens_out),
    ]
    if t.encoding == "flat":
        attrs.append(m.sattr("llm.request.type", "chat"))
    span = _span(t, t.chats[i], f"chat {a.model}", _CLIENT_KIND, attrs)
    if content and t.encoding in ("json", "structured"):
        attrs += m.chat_content(t, i)
    elif content and t.encoding == "flat":
        attrs += m.flat_prompt(t, i) + m.flat_completion(t, i)
    elif content:
        span["events"] = m.chat_events(t, i)
    return span


def _tool(t: Trace, i: int, content: bool) -> dict[str, Any]:
    call = t.script.calls[i]
    structured = t.encoding == "structured"
    args = {"kvlistValue": m.any_value(call.args)["kvlistValue"]} if structured else None
    attrs = [
        m.sattr("gen_ai.operation.name", "execute_tool"),
        m.sattr("gen_ai.tool.name", call.tool),
        m.sattr("gen_ai.tool.call.id", t.call_ids[i]),
        m.sattr("gen_ai.tool.type", "function"),
        {"key": "gen_ai.tool.call.arguments", "value": args or {"stringValue": m.dumps(call.args)}},
    ]
    if content:
        result = m.any_value(call.obj) if structured and m.structured(call) else None
        attrs.append(
            {"key": "gen_ai.tool.call.result", "value": result or {"stringValue": call.result}}
        )
    return _span(t, t.tools[i], f"execute_tool {call.tool}", _INTERNAL_KIND, attrs)


def render(t: Trace, content: bool) -> str:
    """The trace as one line of OTLP/JSON (an ExportTraceServiceRequest)."""
    a = t.agent
    spans = [_root(t, content)]
    for i in range(len(t.script.calls) + 1):
        spans.append(_chat(t, i, content))
        if i < len(t.script.calls):
            spans.append(_tool(t, i, content))
    resource = [
        m.sattr("service.name", a.service),
        m.sattr("service.version", a.version),
        m.sattr("telemetry.sdk.language", "python"),
        m.sattr("telemetry.sdk.name", "opentelemetry"),
    ]
    name, version = _SCOPES[t.encoding]
    if t.encoding == "flat" and a.provider != "openai":  # OpenLLMetry: one package per provider
        name = name.replace("openai", "anthropic" if a.provider == "anthropic" else "vertexai")
    scope = {"scope": {"name": name, "version": version}, "spans": spans}
    return m.dumps(
        {"resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [scope]}]}
    )
