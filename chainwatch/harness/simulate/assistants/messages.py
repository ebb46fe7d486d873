"""The opt-in content of a trace, in the four shapes instrumentations really emit.

- ``json``: ``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``
  as JSON strings (the current semantic conventions);
- ``structured``: the same messages as structured AnyValue (``arrayValue`` of ``kvlistValue``);
- ``events``: the older span events ``gen_ai.system.message``, ``gen_ai.user.message``,
  ``gen_ai.assistant.message``, ``gen_ai.tool.message`` and ``gen_ai.choice``;
- ``flat``: OpenLLMetry's ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` attributes.

Chat span ``i`` sees the system instructions, the user's prompt and calls ``0..i-1`` with their
results; it answers with call ``i`` or, after the last call, the final answer.
"""

from __future__ import annotations

import json
from typing import Any

from chainwatch.harness.simulate.assistants.model import Call, Trace

Attr = dict[str, Any]
ENCODINGS = (("json", 0.55), ("structured", 0.2), ("events", 0.15), ("flat", 0.1))


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def any_value(v: Any) -> dict[str, Any]:
    """A Python value as an OTLP AnyValue (None as the empty AnyValue)."""
    if v is None:
        return {}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [any_value(x) for x in v]}}
    if isinstance(v, dict):
        return {
            "kvlistValue": {"values": [{"key": k, "value": any_value(x)} for k, x in v.items()]}
        }
    return {"stringValue": str(v)}


def sattr(key: str, value: str) -> Attr:
    return {"key": key, "value": {"stringValue": value}}


def iattr(key: str, value: int) -> Attr:
    return {"key": key, "value": {"intValue": str(value)}}


def structured(call: Call) -> bool:
    """Whether the call's result is data that a structured encoding writes as AnyValue."""
    return call.obj is not None and not isinstance(call.obj, str | int | float)


# --- the semantic-convention messages ------------------------------------------------------


def _tool_call(t: Trace, i: int, finish: str | None = None) -> dict[str, Any]:
    call = t.script.calls[i]
    parts: list[dict[str, Any]] = [{"type": "text", "content": call.say}] if call.say else []
    parts.append(
        {"type": "tool_call", "id": t.call_ids[i], "name": call.tool, "arguments": call.args}
    )
    msg: dict[str, Any] = {"role": "assistant", "parts": parts}
    if finish:
        msg["finish_reason"] = finish
    return msg


def _tool_result(t: Trace, i: int) -> dict[str, Any]:
    call = t.script.calls[i]
    response = call.obj if t.objects and structured(call) else call.result
    part = {"type": "tool_call_response", "id": t.call_ids[i], "response": response}
    return {"role": "tool", "parts": [part]}


def system_message(t: Trace) -> list[dict[str, str]]:
    return [{"type": "text", "content": text} for text in t.system]


def user_message(t: Trace) -> dict[str, Any]:
    return {"role": "user", "parts": [{"type": "text", "content": t.script.prompt}]}


def final_message(t: Trace) -> dict[str, Any]:
    part = {"type": "text", "content": t.script.answer}
    return {"role": "assistant", "parts": [part], "finish_reason": "stop"}


def history(t: Trace, i: int) -> list[dict[str, Any]]:
    """Chat span i's input: system, user, then every earlier call and its result."""
    msgs = [{"role": "system", "parts": system_message(t)}, user_message(t)]
    for j in range(i):
        msgs += [_tool_call(t, j), _tool_result(t, j)]
    return msgs


def reply(t: Trace, i: int) -> dict[str, Any]:
    """Chat span i's output: the next tool call, or the final answer."""
    return _tool_call(t, i, "tool_call") if i < len(t.script.calls) else final_message(t)


def _content(key: str, value: Any, as_json: bool) -> Attr:
    return {"key": key, "value": {"stringValue": dumps(value)} if as_json else any_value(value)}


def chat_content(t: Trace, i: int) -> list[Attr]:
    """The json / structured content attributes of chat span i."""
    as_json = t.encoding == "json"
    return [
        _content("gen_ai.input.messages", history(t, i), as_json),
        _content("gen_ai.output.messages", [reply(t, i)], as_json),
    ]


def root_content(t: Trace) -> list[Attr]:
    """The json / structured content attributes of the invoke_agent span."""
    as_json = t.encoding == "json"
    return [
        _content("gen_ai.system_instructions", system_message(t), as_json),
        _content("gen_ai.input.messages", [user_message(t)], as_json),
        _content("gen_ai.output.messages", [final_message(t)], as_json),
    ]


# --- the older span events -----------------------------------------------------------------


def _event(name: str, ts: int, system: str, attrs: list[Attr]) -> dict[str, Any]:
    return {
        "timeUnixNano": str(ts),
        "name": name,
        "attributes": [sattr("gen_ai.system", system), *attrs],
    }


def _openai_calls(t: Trace, i: int) -> list[dict[str, Any]]:
    call = t.script.calls[i]
    fn = {"name": call.tool, "arguments": dumps(call.args)}
    return [{"id": t.call_ids[i], "type": "function", "function": fn}]


def _choice(t: Trace, i: int, ts: int) -> dict[str, Any]:
    if i < len(t.script.calls):
        call = t.script.calls[i]
        msg = {"role": "assistant", "content": call.say or None, "tool_calls": _openai_calls(t, i)}
        finish = "tool_calls"
    else:
        msg, finish = {"role": "assistant", "content": t.script.answer}, "stop"
    attrs = [iattr("index", 0), sattr("finish_reason", finish), sattr("message", dumps(msg))]
    return _event("gen_ai.choice", ts, t.agent.provider, attrs)


def chat_events(t: Trace, i: int) -> list[dict[str, Any]]:
    """Chat span i's content as events: the prompt at its start, the choice at its end."""
    span, system = t.chats[i], t.agent.provider
    out = [
        _event(
            "gen_ai.system.message", span.start, system, [sattr("content", "\n\n".join(t.system))]
        ),
        _event("gen_ai.user.message", span.start, system, [sattr("content", t.script.prompt)]),
    ]
    for j in range(i):
        call = t.script.calls[j]
        said = [sattr("content", call.say)] if call.say else []
        calls = sattr("tool_calls", dumps(_openai_calls(t, j)))
        out.append(_event("gen_ai.assistant.message", span.start, system, [*said, calls]))
        attrs = [sattr("content", call.result), sattr("id", t.call_ids[j])]
        out.append(_event("gen_ai.tool.message", span.start, system, attrs))
    out.append(_choice(t, i, span.end))
    return out


def root_events(t: Trace) -> list[dict[str, Any]]:
    system = t.agent.provider
    return [
        _event(
            "gen_ai.system.message", t.root.start, system, [sattr("content", "\n\n".join(t.system))]
        ),
        _event("gen_ai.user.message", t.root.start, system, [sattr("content", t.script.prompt)]),
        _choice(t, len(t.script.calls), t.root.end),
    ]


# --- OpenLLMetry's flattened attributes ----------------------------------------------------


def _flat_calls(prefix: str, t: Trace, j: int) -> list[Attr]:
    call = t.script.calls[j]
    return [
        sattr(f"{prefix}.tool_calls.0.id", t.call_ids[j]),
        sattr(f"{prefix}.tool_calls.0.name", call.tool),
        sattr(f"{prefix}.tool_calls.0.arguments", dumps(call.args)),
    ]


def flat_prompt(t: Trace, i: int) -> list[Attr]:
    """gen_ai.prompt.N.* for chat span i (i = -1: just system and user, for the root)."""
    out = [
        sattr("gen_ai.prompt.0.role", "system"),
        sattr("gen_ai.prompt.0.content", "\n\n".join(t.system)),
        sattr("gen_ai.prompt.1.role", "user"),
        sattr("gen_ai.prompt.1.content", t.script.prompt),
    ]
    n = 2
    for j in range(max(i, 0)):
        call, p = t.script.calls[j], f"gen_ai.prompt.{n}"
        out.append(sattr(f"{p}.role", "assistant"))
        out += ([sattr(f"{p}.content", call.say)] if call.say else []) + _flat_calls(p, t, j)
        p = f"gen_ai.prompt.{n + 1}"
        out += [
            sattr(f"{p}.role", "tool"),
            sattr(f"{p}.content", call.result),
            sattr(f"{p}.tool_call_id", t.call_ids[j]),
        ]
        n += 2
    return out


def flat_completion(t: Trace, i: int) -> list[Attr]:
    p = "gen_ai.completion.0"
    out = [sattr(f"{p}.role", "assistant")]
    if i < len(t.script.calls):
        call = t.script.calls[i]
        out.append(sattr(f"{p}.finish_reason", "tool_calls"))
        return out + ([sattr(f"{p}.content", call.say)] if call.say else []) + _flat_calls(p, t, i)
    return out + [sattr(f"{p}.finish_reason", "stop"), sattr(f"{p}.content", t.script.answer)]
