"""OTLP/JSON trace exports with the GenAI semantic conventions (sql/parse_otlp.sql).

Fixtures are hand-written from the OTLP/JSON and GenAI conventions facts in FORMATS.md.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest

from tests.conftest import Ingester, counts

T0 = 1714557600  # 2024-05-01 10:00:00 UTC
TRACE = "5b8efff798038103d269b633813fc60c"
TRACE2 = "0af7651916cd43dd8448eb211c80319c"
TRACE3 = "4bf92f3577b34da6a3ce929d0e0e4736"


def at(ms: int) -> datetime:
    """The naive UTC timestamp ``ms`` milliseconds after T0."""
    return datetime(2024, 5, 1, 10, 0, 0) + timedelta(milliseconds=ms)


def ns(ms: int) -> str:
    return str(T0 * 10**9 + ms * 10**6)


def sid(n: int) -> str:
    return f"b7ad6b71{n:08x}"


def av(value) -> dict:
    """A Python value as an OTLP AnyValue (dicts are passed through as ready-made AnyValues)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def span(
    span_id: str,
    name: str,
    attributes: dict | None = None,
    *,
    trace: str = TRACE,
    parent: str | None = None,
    start: int = 0,
    end: int | None = None,
    status: dict | None = None,
) -> dict:
    out = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": ns(start),
        "endTimeUnixNano": ns(start + 100 if end is None else end),
        "attributes": [{"key": k, "value": av(v)} for k, v in (attributes or {}).items()],
    }
    if parent:
        out["parentSpanId"] = parent
    if status is not None:
        out["status"] = status
    return out


def export(*spans: dict, service: str = "svc-agent") -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "test-instrumentation"}, "spans": list(spans)}],
            }
        ]
    }


def tool_span(span_id: str, tool: str, extra: dict | None = None, **kwargs) -> dict:
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, **(extra or {})}
    return span(span_id, f"execute_tool {tool}", attrs, **kwargs)


def action(ingest: Ingester, span_id: str, trace: str = TRACE) -> dict:
    rows = ingest.rows(
        "SELECT * FROM agent_actions WHERE event_id = ?", [f"otlp:{trace}:{span_id}"]
    )
    assert len(rows) == 1, rows
    return rows[0]


# --- documents and lines ---------------------------------------------------------------------


def test_pretty_printed_single_document(ingest: Ingester):
    doc = export(
        span(
            sid(1),
            "invoke_agent planner",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.id": "agent-1",
                "gen_ai.conversation.id": "conv-1",
            },
            start=0,
            end=5000,
        ),
        tool_span(
            sid(2),
            "read_file",
            {"gen_ai.tool.call.id": "call-1"},
            parent=sid(1),
            start=1000,
            end=1250,
        ),
    )
    report = ingest.document("trace.json", doc)
    assert counts(report) == [(2, 2, 0, 0)]
    assert report.files[0].source_format == "otlp"
    row = action(ingest, sid(2))
    assert (
        row["tool"],
        row["agent_id"],
        row["task_id"],
        row["trace_id"],
        row["span_id"],
        row["parent_span_id"],
    ) == ("read_file", "agent-1", "conv-1", TRACE, sid(2), sid(1))
    assert row["ts"] == datetime(2024, 5, 1, 10, 0, 1)
    assert row["duration_ms"] == 250.0
    assert (row["outcome"], row["error_type"], row["source_format"]) == ("ok", None, "otlp")
    assert (row["source_line"], row["source_record"]) == (1, 1)
    assert ingest.one("SELECT count(*) FROM agent_spans") == 1


def test_json_lines_of_documents(ingest: Ingester):
    first = export(tool_span(sid(1), "read_file", start=0))
    second = export(
        tool_span(sid(2), "write_file", trace=TRACE2, start=10),
        tool_span(sid(3), "list_dir", trace=TRACE2, start=20),
    )
    report = ingest.lines("traces.jsonl", [first, second])
    assert counts(report) == [(3, 3, 0, 0)]
    rows = ingest.rows(
        "SELECT tool, trace_id, source_line, source_record FROM agent_actions ORDER BY ts"
    )
    assert rows == [
        {"tool": "read_file", "trace_id": TRACE, "source_line": 1, "source_record": 0},
        {"tool": "write_file", "trace_id": TRACE2, "source_line": 2, "source_record": 0},
        {"tool": "list_dir", "trace_id": TRACE2, "source_line": 2, "source_record": 1},
    ]


def test_legacy_instrumentation_library_spans_are_read(ingest: Ingester):
    # Older exporters (OTLP < 0.15) write instrumentationLibrarySpans / instrumentationLibrary.
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": []},
                "instrumentationLibrarySpans": [
                    {
                        "instrumentationLibrary": {"name": "opentelemetry.instrumentation.old"},
                        "spans": [tool_span(sid(1), "read_file"), tool_span(sid(2), "send_email")],
                    }
                ],
            }
        ]
    }
    report = ingest.document("legacy.json", doc)
    assert counts(report) == [(2, 2, 0, 0)]
    assert action(ingest, sid(2))["tool"] == "send_email"


def test_tempo_batches_export_is_read_as_otlp(ingest: Ingester):
    # Grafana Tempo's trace download: {"batches": [<resourceSpans entry>, ...]}, one large
    # document whose first bytes may not hold a whole span.
    padding = {"gen_ai.tool.description": "x" * 70_000}
    entry = export(tool_span(sid(1), "search_web", padding), tool_span(sid(2), "read_file"))
    report = ingest.document("tempo.json", {"batches": entry["resourceSpans"]})
    assert report.files[0].source_format == "otlp"
    assert counts(report) == [(2, 2, 0, 0)]
    assert action(ingest, sid(1))["tool"] == "search_web"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (
            {"resource": {}, "scopeSpan": [{"spans": []}]},
            "no scopeSpans in resourceSpans[0] (unexpected keys: scopeSpan)",
        ),
        (
            {"scopeSpans": [{"scope": {"name": "s"}, "span": [{}]}]},
            "no spans in resourceSpans[0].scopeSpans[0] (unexpected keys: span)",
        ),
    ],
    ids=["scopeSpans", "spans"],
)
def test_a_misspelt_key_is_rejected_not_silently_empty(ingest: Ingester, entry, reason):
    report = ingest.document("misspelt.json", {"resourceSpans": [entry]})
    assert counts(report) == [(1, 0, 1, 0)]
    assert ingest.rows("SELECT reason FROM rejected_events") == [{"reason": reason}]


def test_entries_without_spans_and_without_unknown_keys_are_simply_empty(ingest: Ingester):
    doc = {"resourceSpans": [{"resource": {}}, {"scopeSpans": [{"scope": {"name": "s"}}]}]}
    report = ingest.document("empty.json", doc)
    assert ingest.one("SELECT count(*) FROM rejected_events") == 0
    assert ingest.one("SELECT count(*) FROM agent_actions") == 0
    assert report.files[0].source_format == "otlp"


def test_spans_from_several_resources_and_scopes_are_all_read(ingest: Ingester):
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc-a"}}]
                },
                "scopeSpans": [
                    {"scope": {"name": "a1"}, "spans": [tool_span(sid(1), "t_one")]},
                    {"scope": {"name": "a2"}, "spans": [tool_span(sid(2), "t_two", start=5)]},
                ],
            },
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc-b"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "b1"},
                        "spans": [tool_span(sid(3), "t_three", trace=TRACE2, start=9)],
                    }
                ],
            },
        ]
    }
    assert counts(ingest.document("multi.json", doc)) == [(3, 3, 0, 0)]
    rows = ingest.rows(
        "SELECT tool, agent_id, source_record FROM agent_actions ORDER BY source_record"
    )
    assert [(r["tool"], r["agent_id"], r["source_record"]) for r in rows] == [
        ("t_one", "svc-a", 0),
        ("t_two", "svc-a", 1),
        ("t_three", "svc-b", 2),
    ]


# --- tool spans ------------------------------------------------------------------------------


def test_tool_name_comes_from_the_span_name_when_the_attribute_is_missing(ingest: Ingester):
    doc = export(
        span(sid(1), "execute_tool lookup_weather", {"gen_ai.operation.name": "execute_tool"}),
        span(sid(2), "execute_tool fetch_page", {}, start=10),  # no operation attribute either
        span(sid(3), "execute_tool", {"gen_ai.operation.name": "execute_tool"}, start=20),
        span(
            sid(4),
            "execute_tool span_name",
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "attribute_name"},
            start=30,
        ),
    )
    assert counts(ingest.document("names.json", doc)) == [(4, 4, 0, 0)]
    assert [action(ingest, sid(i))["tool"] for i in (1, 2, 3, 4)] == [
        "lookup_weather",
        "fetch_page",
        "unknown_tool",
        "attribute_name",
    ]
    assert ingest.one("SELECT count(*) FROM agent_spans") == 0


def test_mcp_tools_call_spans_are_actions_with_the_server_as_system(ingest: Ingester):
    doc = export(
        span(
            sid(1),
            "tools/call create_issue",
            {
                "mcp.method.name": "tools/call",
                "gen_ai.tool.name": "create_issue",
                "mcp.server.name": "github",
                "mcp.session.id": "s-1",
                "jsonrpc.request.id": "2",
            },
        ),
        span(
            sid(2),
            "tools/call search",
            {
                "mcp.method.name": "tools/call",
                "gen_ai.tool.name": "search",
                "mcp.session.id": "s-1",
            },
            start=10,
        ),
        span(
            sid(3),
            "tools/list",
            {"mcp.method.name": "tools/list", "mcp.server.name": "github"},
            start=20,
        ),
        tool_span(sid(4), "calc", {"gen_ai.tool.type": "function"}, start=30),
    )
    assert counts(ingest.document("mcp.json", doc)) == [(4, 4, 0, 0)]
    assert (action(ingest, sid(1))["tool"], action(ingest, sid(1))["system"]) == (
        "create_issue",
        "mcp:github",
    )
    assert action(ingest, sid(2))["system"] == "mcp"
    assert action(ingest, sid(4))["system"] is None  # a local function tool has no system
    # tools/list is not a tool call: it is a span, not an action
    assert ingest.one("SELECT count(*) FROM agent_actions WHERE span_id = ?", [sid(3)]) == 0
    assert ingest.one("SELECT name FROM agent_spans WHERE span_id = ?", [sid(3)]) == "tools/list"


def test_non_tool_spans_land_in_agent_spans(ingest: Ingester):
    doc = export(
        span(
            sid(1),
            "invoke_agent Researcher",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Researcher"},
            start=0,
            end=9000,
        ),
        span(
            sid(2),
            "chat gpt-4o",
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
            parent=sid(1),
            start=100,
            end=1600,
        ),
        span(
            sid(3),
            "embeddings",
            {
                "gen_ai.operation.name": "embeddings",
                "gen_ai.response.model": "text-embedding-3-small",
            },
            parent=sid(1),
            start=2000,
        ),
    )
    assert counts(ingest.document("spans.json", doc)) == [(3, 3, 0, 0)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 0
    rows = ingest.rows(
        "SELECT event_id, operation, name, model, agent_id, ts, end_ts, outcome FROM agent_spans ORDER BY ts"
    )
    assert rows == [
        {
            "event_id": f"otlp:{TRACE}:{sid(1)}",
            "operation": "invoke_agent",
            "name": "invoke_agent Researcher",
            "model": None,
            "agent_id": "Researcher",
            "ts": at(0),
            "end_ts": at(9000),
            "outcome": "ok",
        },
        {
            "event_id": f"otlp:{TRACE}:{sid(2)}",
            "operation": "chat",
            "name": "chat gpt-4o",
            "model": "gpt-4o",
            "agent_id": "Researcher",
            "ts": at(100),
            "end_ts": at(1600),
            "outcome": "ok",
        },
        {
            "event_id": f"otlp:{TRACE}:{sid(3)}",
            "operation": "embeddings",
            "name": "embeddings",
            "model": "text-embedding-3-small",
            "agent_id": "Researcher",
            "ts": at(2000),
            "end_ts": at(2100),
            "outcome": "ok",
        },
    ]


# --- arguments: every AnyValue variant ------------------------------------------------------

ANY_VALUES = [
    pytest.param({"stringValue": "hello world"}, "hello world", id="stringValue"),
    pytest.param({"boolValue": True}, True, id="boolValue-true"),
    pytest.param({"boolValue": False}, False, id="boolValue-false"),
    pytest.param({"intValue": "42"}, 42, id="intValue-string"),
    pytest.param({"intValue": 42}, 42, id="intValue-number"),
    pytest.param({"intValue": "-9007199254740993"}, -9007199254740993, id="intValue-beyond-double"),
    pytest.param({"doubleValue": 1.5}, 1.5, id="doubleValue"),
    pytest.param(
        {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}, {"boolValue": True}]}},
        ["a", 2, True],
        id="arrayValue",
    ),
    pytest.param(
        {
            "kvlistValue": {
                "values": [
                    {"key": "path", "value": {"stringValue": "/tmp/x"}},
                    {"key": "limit", "value": {"intValue": 10}},
                ]
            }
        },
        {"path": "/tmp/x", "limit": 10},
        id="kvlistValue",
    ),
    pytest.param({"bytesValue": "aGVsbG8="}, "aGVsbG8=", id="bytesValue"),
]


@pytest.mark.parametrize(("any_value", "expected"), ANY_VALUES)
def test_each_any_value_variant_round_trips_into_args(ingest: Ingester, any_value, expected):
    doc = export(tool_span(sid(1), "frobnicate", {"gen_ai.tool.call.arguments": any_value}))
    assert counts(ingest.document("args.json", doc)) == [(1, 1, 0, 0)]
    assert json.loads(action(ingest, sid(1))["args"]) == expected


def test_every_any_value_variant_inside_a_kvlist_round_trips(ingest: Ingester):
    kv = {
        "kvlistValue": {
            "values": [
                {"key": "s", "value": {"stringValue": "text"}},
                {"key": "b", "value": {"boolValue": True}},
                {"key": "i_str", "value": {"intValue": "7"}},
                {"key": "i_num", "value": {"intValue": 8}},
                {"key": "d", "value": {"doubleValue": 2.25}},
                {
                    "key": "arr",
                    "value": {
                        "arrayValue": {"values": [{"stringValue": "x"}, {"doubleValue": 0.5}]}
                    },
                },
                {"key": "raw", "value": {"bytesValue": "AAEC"}},
            ]
        }
    }
    doc = export(tool_span(sid(1), "frobnicate", {"gen_ai.tool.call.arguments": kv}))
    ingest.document("kv.json", doc)
    assert json.loads(action(ingest, sid(1))["args"]) == {
        "s": "text",
        "b": True,
        "i_str": 7,
        "i_num": 8,
        "d": 2.25,
        "arr": ["x", 0.5],
        "raw": "AAEC",
    }


def test_nested_kvlists_and_arrays_become_nested_json(ingest: Ingester):
    """Tool arguments often nest objects ({"filter": {"status": "open"}}); every level becomes plain JSON."""
    nested = {
        "kvlistValue": {
            "values": [
                {
                    "key": "filter",
                    "value": {
                        "kvlistValue": {
                            "values": [
                                {"key": "status", "value": {"stringValue": "open"}},
                                {
                                    "key": "labels",
                                    "value": {"arrayValue": {"values": [{"stringValue": "bug"}]}},
                                },
                            ]
                        }
                    },
                },
                {
                    "key": "rows",
                    "value": {
                        "arrayValue": {
                            "values": [
                                {
                                    "kvlistValue": {
                                        "values": [{"key": "id", "value": {"intValue": "1"}}]
                                    }
                                },
                            ]
                        }
                    },
                },
            ]
        }
    }
    ingest.document(
        "nested.json",
        export(tool_span(sid(1), "search_issues", {"gen_ai.tool.call.arguments": nested})),
    )
    assert json.loads(action(ingest, sid(1))["args"]) == {
        "filter": {"status": "open", "labels": ["bug"]},
        "rows": [{"id": 1}],
    }


def test_arguments_given_as_a_json_string_become_the_same_json(ingest: Ingester):
    as_kvlist = {
        "kvlistValue": {
            "values": [
                {"key": "to", "value": {"stringValue": "bob@partner.org"}},
                {"key": "count", "value": {"intValue": "3"}},
                {"key": "urgent", "value": {"boolValue": False}},
            ]
        }
    }
    as_string = json.dumps(
        {"to": "bob@partner.org", "count": 3, "urgent": False}
    )  # with spaces, as json.dumps writes
    doc = export(
        tool_span(sid(1), "notify", {"gen_ai.tool.call.arguments": as_kvlist}),
        tool_span(sid(2), "notify", {"gen_ai.tool.call.arguments": as_string}, start=10),
    )
    ingest.document("args.json", doc)
    kv_row, str_row = action(ingest, sid(1)), action(ingest, sid(2))
    assert json.loads(str_row["args"]) == {"to": "bob@partner.org", "count": 3, "urgent": False}
    assert json.loads(kv_row["args"]) == json.loads(str_row["args"])
    # the same call must give the same stored text and digest, however the exporter encoded it
    assert str_row["args"] == kv_row["args"]
    assert str_row["args_digest"] == kv_row["args_digest"]


def test_a_tool_span_without_arguments_has_null_args(ingest: Ingester):
    ingest.document("noargs.json", export(tool_span(sid(1), "frobnicate")))
    row = action(ingest, sid(1))
    assert (row["args"], row["args_digest"]) == (None, None)


# --- bytes sent ------------------------------------------------------------------------------

BODY_SIZES = [
    pytest.param({"http.request.body.size": {"intValue": "2048"}}, 2048, id="int-as-string"),
    pytest.param({"http.request.body.size": {"intValue": 2048}}, 2048, id="int-as-number"),
    pytest.param({"http.request.body.size": {"intValue": "0"}}, 0, id="zero"),
    pytest.param({"messaging.message.body.size": {"intValue": "512"}}, 512, id="messaging"),
    pytest.param(
        {
            "http.request.body.size": {"intValue": "2048"},
            "messaging.message.body.size": {"intValue": "512"},
        },
        2048,
        id="http-wins",
    ),
    pytest.param({}, None, id="absent"),
    pytest.param({"http.request.body.size": {"intValue": "-5"}}, None, id="negative"),
    pytest.param({"http.request.body.size": {"doubleValue": 1.5}}, None, id="fraction"),
    pytest.param({"http.request.body.size": {"boolValue": True}}, None, id="boolean"),
    # only real size attributes: the arguments' length is not a body size
    pytest.param({"gen_ai.tool.call.arguments": '{"body": "hello"}'}, None, id="arguments"),
]


@pytest.mark.parametrize(("attributes", "expected"), BODY_SIZES)
def test_bytes_out_comes_from_body_size_attributes(ingest: Ingester, attributes, expected):
    report = ingest.document("size.json", export(tool_span(sid(1), "http_post", attributes)))
    assert counts(report) == [(1, 1, 0, 0)]
    assert action(ingest, sid(1))["bytes_out"] == expected


# --- task and agent resolution ---------------------------------------------------------------


def test_task_id_precedence_and_task_source(ingest: Ingester):
    doc = export(
        # trace 1: own attributes and nearest ancestors
        span(
            sid(1),
            "invoke_agent",
            {
                "gen_ai.operation.name": "invoke_agent",
                "chainwatch.task.id": "task-A",
                "gen_ai.conversation.id": "conv-A",
            },
            start=0,
            end=60000,
        ),
        tool_span(sid(2), "t_child", parent=sid(1), start=100),
        span(
            sid(3),
            "chat",
            {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "conv-B"},
            parent=sid(1),
            start=200,
        ),
        tool_span(sid(4), "t_grandchild", parent=sid(3), start=300),
        span(
            sid(5),
            "invoke_agent sub",
            {"gen_ai.operation.name": "invoke_agent"},
            parent=sid(4),
            start=400,
        ),
        tool_span(sid(6), "t_deep", parent=sid(5), start=500),
        # trace 2: no ancestor has a task, but other spans of the trace do (the earliest wins)
        span(
            sid(7),
            "invoke_agent",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "conv-T"},
            trace=TRACE2,
            start=50,
        ),
        span(
            sid(8),
            "invoke_agent",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "conv-late"},
            trace=TRACE2,
            start=90,
        ),
        tool_span(sid(9), "t_orphan", trace=TRACE2, parent="ffffffffffffffff", start=100),
        tool_span(sid(10), "t_root", trace=TRACE2, start=110),
        # trace 3: nothing names a task
        tool_span(sid(11), "t_alone", trace=TRACE3, start=120),
    )
    assert counts(ingest.document("tasks.json", doc)) == [(11, 11, 0, 0)]
    got = {
        r["span_id"]: (r["task_id"], r["task_source"])
        for r in ingest.rows(
            "SELECT span_id, task_id, task_source FROM agent_actions UNION ALL SELECT span_id, task_id, task_source FROM agent_spans"
        )
    }
    assert got == {
        sid(1): ("task-A", "span_attribute"),  # chainwatch.task.id beats gen_ai.conversation.id
        sid(2): ("task-A", "ancestor_span"),
        sid(3): ("conv-B", "span_attribute"),
        sid(4): ("conv-B", "ancestor_span"),  # the nearest ancestor, not the root
        sid(5): ("conv-B", "ancestor_span"),
        sid(6): ("conv-B", "ancestor_span"),
        sid(7): ("conv-T", "span_attribute"),
        sid(8): ("conv-late", "span_attribute"),
        sid(9): ("conv-T", "trace"),
        sid(10): ("conv-T", "trace"),
        sid(11): (TRACE3, "trace_id"),
    }


def test_agent_precedence(ingest: Ingester):
    doc = export(
        span(
            sid(1),
            "invoke_agent",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.id": "agent-id-1",
                "gen_ai.agent.name": "Planner",
            },
            start=0,
        ),
        tool_span(sid(2), "t_inherits", parent=sid(1), start=10),
        tool_span(sid(3), "t_named", {"gen_ai.agent.name": "Researcher"}, parent=sid(1), start=20),
        tool_span(
            sid(4),
            "t_own_id",
            {"gen_ai.agent.id": "agent-id-2", "gen_ai.agent.name": "Writer"},
            parent=sid(1),
            start=30,
        ),
        tool_span(sid(5), "t_service", trace=TRACE2, start=40),
        service="svc-fallback",
    )
    ingest.document("agents.json", doc)
    got = {
        r["span_id"]: r["agent_id"]
        for r in ingest.rows(
            "SELECT span_id, agent_id FROM agent_actions UNION ALL SELECT span_id, agent_id FROM agent_spans"
        )
    }
    assert got == {
        sid(1): "agent-id-1",
        sid(2): "agent-id-1",
        sid(3): "Researcher",
        sid(4): "agent-id-2",
        sid(5): "svc-fallback",
    }


def test_agent_named_by_name_only_takes_the_id_its_trace_gives_that_name(ingest: Ingester):
    # The invoke_agent span carries both id and name; the tool span only the name: one agent.
    invoke = span(
        sid(1),
        "invoke_agent travel",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": "asst_7Qx",
            "gen_ai.agent.name": "travel",
        },
        end=5000,
    )
    tool = tool_span(sid(2), "book_hotel", {"gen_ai.agent.name": "travel"}, start=1000)
    other = tool_span(sid(3), "search", {"gen_ai.agent.name": "helper"}, start=2000)
    ingest.document("agents.json", export(invoke, tool, other))
    assert action(ingest, sid(2))["agent_id"] == "asst_7Qx"
    # A name no span maps to an id stays the name.
    assert action(ingest, sid(3))["agent_id"] == "helper"
    assert ingest.rows("SELECT DISTINCT agent_id FROM tasks") == [{"agent_id": "asst_7Qx"}]


def test_a_trace_without_genai_spans_creates_no_task(ingest: Ingester):
    plain = span(sid(1), "GET /healthz", {"http.request.method": "GET"}, trace=TRACE2)
    agent = tool_span(sid(2), "read_file")
    report = ingest.document("mixed.json", export(plain, agent))
    assert counts(report) == [(2, 2, 0, 0)]
    # The plain span is loaded (nothing lost) but belongs to no task.
    assert ingest.rows("SELECT task_id, task_source FROM agent_spans") == [
        {"task_id": None, "task_source": None}
    ]
    assert ingest.rows("SELECT task_id FROM tasks") == [{"task_id": TRACE}]


def _mcp_span(span_id: str, kind: int, **kwargs) -> dict:
    attrs = {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "get_weather",
        "mcp.session.id": "sess-42",
        "jsonrpc.request.id": "7",
    }
    out = span(span_id, "tools/call get_weather", attrs, **kwargs)
    out["kind"] = kind
    return out


def test_mcp_client_and_server_spans_of_one_call_are_one_action(ingest: Ingester):
    client = _mcp_span(sid(1), 3, start=0, end=300)
    server = _mcp_span(sid(2), 2, parent=sid(1), start=50, end=250)
    # Another call on the same session (its own request id) stays its own action, and so does
    # a second client span reusing the request id (against the MCP spec, but two calls).
    again = _mcp_span(sid(3), 3, start=500, end=700)
    again["attributes"][3]["value"] = {"stringValue": "8"}
    reused = _mcp_span(sid(4), 3, start=800, end=900)
    report = ingest.document("mcp.json", export(client, server, again, reused))
    assert counts(report) == [(4, 4, 0, 0)]
    assert ingest.rows("SELECT span_id FROM agent_actions ORDER BY ts") == [
        {"span_id": sid(1)},
        {"span_id": sid(3)},
        {"span_id": sid(4)},
    ]
    assert ingest.rows("SELECT span_id FROM agent_spans") == [{"span_id": sid(2)}]


def test_mcp_server_span_in_a_trace_of_its_own_is_the_same_call(ingest: Ingester):
    # The server did not join the client's trace: the pair still makes one action, and the
    # server's trace creates no task of its own.
    client = _mcp_span(sid(1), 3, start=0, end=300)
    server = _mcp_span(sid(2), 2, trace=TRACE2, start=50, end=250)
    ingest.document("mcp.json", export(server, client))
    assert ingest.rows("SELECT trace_id, span_id FROM agent_actions") == [
        {"trace_id": TRACE, "span_id": sid(1)}
    ]
    assert ingest.rows("SELECT trace_id, task_id FROM agent_spans") == [
        {"trace_id": TRACE2, "task_id": TRACE}
    ]
    assert ingest.rows("SELECT task_id FROM tasks") == [{"task_id": TRACE}]


def test_agent_and_task_can_come_from_different_ancestors(ingest: Ingester):
    doc = export(
        span(
            sid(1),
            "invoke_agent",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "conv-1"},
        ),
        span(
            sid(2),
            "invoke_agent",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "agent-7"},
            parent=sid(1),
            start=10,
        ),
        tool_span(sid(3), "t", parent=sid(2), start=20),
    )
    ingest.document("mixed.json", doc)
    row = action(ingest, sid(3))
    assert (row["agent_id"], row["task_id"], row["task_source"]) == (
        "agent-7",
        "conv-1",
        "ancestor_span",
    )


# --- ids and timestamps ------------------------------------------------------------------------


def test_base64_ids_normalise_to_the_same_lowercase_hex(ingest: Ingester):
    b64 = export(
        tool_span(
            base64.b64encode(bytes.fromhex(sid(1))).decode(),
            "read_file",
            trace=base64.b64encode(bytes.fromhex(TRACE)).decode(),
            parent=base64.b64encode(bytes.fromhex(sid(9))).decode(),
        )
    )
    report = ingest.document("b64.json", b64)
    assert counts(report) == [(1, 1, 0, 0)]
    row = action(ingest, sid(1))
    assert (row["trace_id"], row["span_id"], row["parent_span_id"]) == (TRACE, sid(1), sid(9))
    # the same span with upper-case hex ids, from another exporter, is the same event
    hexed = export(
        tool_span(sid(1).upper(), "read_file", trace=TRACE.upper(), parent=sid(9).upper())
    )
    assert counts(ingest.lines("hex.jsonl", [hexed])) == [(1, 0, 0, 1)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 1


def test_nanosecond_times_as_strings_and_as_numbers(ingest: Ingester):
    as_strings = tool_span(sid(1), "t_str")
    as_strings["startTimeUnixNano"] = "1714557600123456789"
    as_strings["endTimeUnixNano"] = "1714557600373456789"
    as_numbers = tool_span(sid(2), "t_num")
    as_numbers["startTimeUnixNano"] = 1714557600123456789
    as_numbers["endTimeUnixNano"] = 1714557600373456789
    no_end = tool_span(sid(3), "t_open")
    del no_end["endTimeUnixNano"]
    ingest.document("times.json", export(as_strings, as_numbers, no_end))
    for span_id in (sid(1), sid(2)):
        row = action(ingest, span_id)
        assert row["ts"] == datetime(2024, 5, 1, 10, 0, 0, 123456)
        assert row["day"].isoformat() == "2024-05-01"
        assert row["duration_ms"] == 250.0
    row = action(ingest, sid(3))
    assert (row["ts"], row["duration_ms"]) == (datetime(2024, 5, 1, 10, 0, 0), None)


@pytest.mark.parametrize(
    ("status", "attrs", "outcome", "error_type"),
    [
        pytest.param(None, {}, "ok", None, id="no-status"),
        pytest.param({"code": 1}, {}, "ok", None, id="status-ok"),
        pytest.param({"code": 0, "message": ""}, {}, "ok", None, id="status-unset"),
        pytest.param({"code": 2, "message": "boom"}, {}, "error", "boom", id="status-error"),
        pytest.param(
            {"code": "STATUS_CODE_ERROR", "message": "boom"},
            {},
            "error",
            "boom",
            id="status-error-enum-name",
        ),
        pytest.param(
            None, {"error.type": "TimeoutError"}, "error", "TimeoutError", id="error-type"
        ),
        pytest.param(
            {"code": 2, "message": "HTTP 403 from upstream"},
            {},
            "denied",
            "HTTP 403 from upstream",
            id="403",
        ),
        pytest.param(
            {"code": 2},
            {"error.type": "PermissionDenied"},
            "denied",
            "PermissionDenied",
            id="permission",
        ),
        pytest.param(
            {"code": 2, "message": "access denied by policy"},
            {"error.type": "ToolError"},
            "denied",
            "ToolError",
            id="denied-message",
        ),
        pytest.param(
            {"code": 2, "message": "HTTP 4031 items"}, {}, "error", "HTTP 4031 items", id="not-403"
        ),
    ],
)
def test_status_and_error_type_set_the_outcome(
    ingest: Ingester, status, attrs, outcome, error_type
):
    ingest.document("status.json", export(tool_span(sid(1), "t", attrs, status=status)))
    row = action(ingest, sid(1))
    assert (row["outcome"], row["error_type"]) == (outcome, error_type)


def test_error_status_on_a_non_tool_span(ingest: Ingester):
    ingest.document(
        "chat.json",
        export(
            span(
                sid(1),
                "chat",
                {"gen_ai.operation.name": "chat"},
                status={"code": 2, "message": "rate limited"},
            )
        ),
    )
    assert ingest.one("SELECT outcome FROM agent_spans") == "error"


# --- rejects and duplicates ----------------------------------------------------------------------


def test_invalid_spans_are_rejected_while_their_siblings_load(ingest: Ingester):
    bad_trace = tool_span(sid(2), "t_bad_trace")
    bad_trace["traceId"] = "not-a-trace-id"
    no_span_id = tool_span(sid(3), "t_no_span_id")
    del no_span_id["spanId"]
    bad_start = tool_span(sid(4), "t_bad_start")
    bad_start["startTimeUnixNano"] = "soon"
    short_span_id = tool_span("abc123", "t_short_span_id")
    no_start = tool_span(sid(6), "t_no_start")
    del no_start["startTimeUnixNano"]
    doc = export(
        tool_span(sid(1), "t_good"),
        bad_trace,
        no_span_id,
        bad_start,
        "not a span",
        short_span_id,
        no_start,
        tool_span(sid(8), "t_good_too", start=10),
    )
    report = ingest.document("bad.json", doc)
    assert counts(report) == [(8, 2, 6, 0)]
    assert sorted(r["tool"] for r in ingest.rows("SELECT tool FROM agent_actions")) == [
        "t_good",
        "t_good_too",
    ]
    rejected = ingest.rows(
        "SELECT source_record, reason, source_format, source_line FROM rejected_events ORDER BY source_record"
    )
    assert [(r["source_record"], r["reason"]) for r in rejected] == [
        (1, "invalid traceId: not-a-trace-id"),
        (2, "missing required field spanId"),
        (3, 'unparseable timestamp in startTimeUnixNano: "soon"'),
        (4, "span is not a JSON object (got string)"),
        (5, "invalid spanId: abc123"),
        (6, "missing required field startTimeUnixNano"),
    ]
    assert {(r["source_format"], r["source_line"]) for r in rejected} == {("otlp", 1)}


def test_a_document_that_is_not_a_trace_export_is_one_rejected_record(ingest: Ingester):
    good = export(tool_span(sid(1), "t_good"))
    report = ingest.lines(
        "mixed.jsonl", [good, {"resource": {}, "spans": []}, {"resourceSpans": {}}, [1, 2]]
    )
    assert counts(report) == [(4, 1, 3, 0)]
    rows = ingest.rows("SELECT source_line, reason FROM rejected_events ORDER BY source_line")
    assert rows == [
        {"source_line": 2, "reason": "not an OTLP trace export: missing resourceSpans"},
        {"source_line": 3, "reason": "wrong type for resourceSpans: expected array, got object"},
        {"source_line": 4, "reason": "document is not a JSON object (got array)"},
    ]


def test_forced_otlp_format_on_a_document_without_resource_spans(ingest: Ingester):
    report = ingest.document("other.json", {"hello": "world"}, fmt="otlp")
    assert counts(report) == [(1, 0, 1, 0)]
    assert (
        ingest.one("SELECT reason FROM rejected_events")
        == "not an OTLP trace export: missing resourceSpans"
    )


def test_the_same_span_twice_is_a_duplicate(ingest: Ingester):
    doc = export(tool_span(sid(1), "read_file"))
    report = ingest.lines("twice.jsonl", [doc, doc])
    assert counts(report) == [(2, 1, 0, 1)]
    # and again from another file in a later run (different bytes, same span)
    other = export(tool_span(sid(1), "read_file"), tool_span(sid(2), "write_file", start=5))
    assert counts(ingest.document("again.json", other)) == [(2, 1, 0, 1)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 2
    assert ingest.one("SELECT count(*) FROM ingest_ledger WHERE disposition = 'loaded'") == 2


def test_reingesting_an_identical_file_adds_nothing(ingest: Ingester):
    doc = export(
        tool_span(sid(1), "read_file"), span(sid(2), "chat", {"gen_ai.operation.name": "chat"})
    )
    first = ingest.document("t.json", doc)
    second = ingest.document("t.json", doc)
    assert counts(first) == [(2, 2, 0, 0)]
    assert counts(second) == [(2, 0, 0, 2)]
    assert (
        ingest.one("SELECT count(*) FROM agent_actions")
        + ingest.one("SELECT count(*) FROM agent_spans")
        == 2
    )


# --- tasks -----------------------------------------------------------------------------------------


def test_tasks_are_bounded_by_the_invoke_agent_span(ingest: Ingester):
    doc = export(
        span(
            sid(1),
            "invoke_agent",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.id": "agent-1",
                "gen_ai.conversation.id": "conv-9",
            },
            start=0,
            end=60000,
        ),
        tool_span(sid(2), "read_file", parent=sid(1), start=1000),
        tool_span(sid(3), "write_file", parent=sid(1), start=2000),
        span(sid(4), "chat", {"gen_ai.operation.name": "chat"}, parent=sid(1), start=3000),
        # a trace without invoke_agent: bounds come from its actions
        tool_span(
            sid(5),
            "read_file",
            {"chainwatch.task.id": "task-plain", "gen_ai.agent.id": "agent-2"},
            trace=TRACE2,
            start=5000,
        ),
        tool_span(
            sid(6),
            "read_file",
            {"chainwatch.task.id": "task-plain", "gen_ai.agent.id": "agent-2"},
            trace=TRACE2,
            start=7000,
        ),
    )
    ingest.document("task.json", doc)
    rows = ingest.rows("""SELECT task_id, agent_id, started_at, ended_at, start_source, end_source, status,
                                 actions, credentials_issued, approved_by FROM tasks ORDER BY task_id""")
    assert rows == [
        {
            "task_id": "conv-9",
            "agent_id": "agent-1",
            "started_at": at(0),
            "ended_at": at(60000),
            "start_source": "agent_span",
            "end_source": "agent_span",
            "status": "unknown",
            "actions": 2,
            "credentials_issued": 0,
            "approved_by": None,
        },
        {
            "task_id": "task-plain",
            "agent_id": "agent-2",
            "started_at": at(5000),
            "ended_at": at(7000),
            "start_source": "first_activity",
            "end_source": "last_activity",
            "status": "unknown",
            "actions": 2,
            "credentials_issued": 0,
            "approved_by": None,
        },
    ]


def test_credential_attribute_is_hashed_never_stored(ingest: Ingester):
    doc = export(tool_span(sid(1), "call_api", {"chainwatch.credential.id": "jit-abc"}))
    ingest.document("cred.json", doc)
    row = action(ingest, sid(1))
    assert row["credential_id"] == ingest.cred_id("native", "jit-abc")
    assert "jit-abc" not in json.dumps(row, default=str)
