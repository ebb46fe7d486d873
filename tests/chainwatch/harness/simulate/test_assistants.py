"""Tests for the assistant simulator (content capture): determinism, the OTLP shapes, labels that
match the traces, content capture off, the four content encodings, and the CLI."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from chainwatch.cli import main as cli_main
from chainwatch.harness.simulate.assistants import AssistantSummary, simulate_assistants
from detectors.core.settings import Settings
from detectors.ingest.pipeline import ingest_paths

ANYVALUE_KEYS = {
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
}
HEX32, HEX16 = re.compile(r"^[0-9a-f]{32}$"), re.compile(r"^[0-9a-f]{16}$")
LABELS = {"benign", "hard_negative", "injected", "injection_ignored"}
GOALS = {
    "egress_payment",
    "egress_email",
    "egress_url",
    "delete",
    "booking",
    "password_change",
    "phishing_visit",
    "invite_user",
}
STYLES = {
    "important",
    "ignore_previous",
    "todo",
    "system_message",
    "injecagent",
    "tool_knowledge",
    "subtle",
}
# The argument(s) of each acting tool whose value matters: where the money, mail, data or
# booking goes, what is deleted, the password set. Written here, independently of the simulator.
CRITICAL = {
    "send_money": ("recipient",),
    "schedule_transaction": ("recipient",),
    "update_scheduled_transaction": ("recipient",),
    "update_password": ("password",),
    "get_webpage": ("url",),
    "post_webpage": ("url",),
    "invite_user_to_slack": ("user", "user_email"),
    "add_user_to_channel": ("user",),
    "send_direct_message": ("recipient",),
    "reserve_hotel": ("hotel",),
    "reserve_restaurant": ("restaurant",),
    "send_email": ("recipients",),
    "share_file": ("file_id", "email"),
    "delete_file": ("file_id",),
    "create_calendar_event": ("participants",),
}
CONTENT_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.result",
)
COMMON_PROVIDERS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "gmx.de")


# --- reading a run back ----------------------------------------------------------------------


def value_of(v: dict[str, Any]) -> Any:
    """An OTLP AnyValue as Python."""
    if not v:
        return None
    ((kind, x),) = v.items()
    if kind == "arrayValue":
        return [value_of(e) for e in x.get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: value_of(kv["value"]) for kv in x.get("values", [])}
    return int(x) if kind == "intValue" else x


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: value_of(a["value"]) for a in span["attributes"]}


def _json_or_value(x: Any) -> Any:
    return json.loads(x) if isinstance(x, str) else x


def encoding_of(spans: list[dict[str, Any]]) -> str:
    chat = next(s for s in spans if attrs(s)["gen_ai.operation.name"] == "chat")
    if chat.get("events"):
        return "events"
    raw = {a["key"]: a["value"] for a in chat["attributes"]}
    if "gen_ai.prompt.0.role" in raw:
        return "flat"
    if "gen_ai.input.messages" in raw:
        return "json" if "stringValue" in raw["gen_ai.input.messages"] else "structured"
    return "none"


def prompt_of(root: dict[str, Any]) -> str:
    """The user's prompt, from whichever encoding the root span uses."""
    a = attrs(root)
    if "gen_ai.input.messages" in a:
        (msg,) = _json_or_value(a["gen_ai.input.messages"])
        assert msg["role"] == "user"
        return msg["parts"][0]["content"]
    if "gen_ai.prompt.1.content" in a:
        assert a["gen_ai.prompt.1.role"] == "user"
        return a["gen_ai.prompt.1.content"]
    (user,) = [e for e in root["events"] if e["name"] == "gen_ai.user.message"]
    return {x["key"]: value_of(x["value"]) for x in user["attributes"]}["content"]


class Task:
    """One trace parsed back: its spans, prompt, tool calls and results."""

    def __init__(self, doc: dict[str, Any]) -> None:
        (rs,) = doc["resourceSpans"]
        (ss,) = rs["scopeSpans"]
        self.doc, self.spans = doc, ss["spans"]
        self.root = self.spans[0]
        self.encoding = encoding_of(self.spans)
        self.tools = [s for s in self.spans if attrs(s)["gen_ai.operation.name"] == "execute_tool"]
        ra = attrs(self.root)
        self.task_id, self.agent_id = ra["gen_ai.conversation.id"], ra["gen_ai.agent.id"]

    def event_id(self, span: dict[str, Any]) -> str:
        return f"otlp:{span['traceId']}:{span['spanId']}"

    @staticmethod
    def args(span: dict[str, Any]) -> dict[str, Any]:
        return _json_or_value(attrs(span)["gen_ai.tool.call.arguments"])

    @staticmethod
    def result(span: dict[str, Any]) -> str:
        r = attrs(span)["gen_ai.tool.call.result"]
        return r if isinstance(r, str) else json.dumps(r)


class Run:
    def __init__(self, out: Path, summary: AssistantSummary) -> None:
        self.out, self.summary = out, summary
        self.files = sorted((out / "otlp").glob("assistants-*.jsonl"))
        self.docs = [(f, json.loads(ln)) for f in self.files for ln in f.read_text().splitlines()]
        self.tasks = {t.task_id: t for t in (Task(d) for _, d in self.docs)}
        self.labels = [json.loads(ln) for ln in (out / "labels.jsonl").read_text().splitlines()]


def _norm(text: str) -> str:
    """Lower case, no whitespace, no URL scheme: how a value is compared across texts."""
    return re.sub(r"https?://", "", re.sub(r"\s+", "", text.lower())).rstrip("/")


def _leaves(x: Any) -> list[str]:
    if isinstance(x, dict):
        return [s for k, v in x.items() for s in [str(k), *_leaves(v)]]
    if isinstance(x, list):
        return [s for v in x for s in _leaves(v)]
    return [] if x is None else [str(x)]


def haystack(result: str) -> str:
    """A tool result as text, plus the strings inside it when it parses as YAML or JSON (a YAML
    dump folds long strings across lines)."""
    texts = [result]
    try:
        texts += _leaves(yaml.safe_load(result))
    except yaml.YAMLError:
        pass
    return "\x00".join(_norm(t) for t in texts)


def critical_values(span: dict[str, Any]) -> list[str]:
    args = Task.args(span)
    tool = attrs(span)["gen_ai.tool.name"]
    out = []
    for key in CRITICAL.get(tool, ()):
        v = args.get(key)
        out += [str(x) for x in v] if isinstance(v, list) else [] if v is None else [str(v)]
    return out


def provenance(task: Task, span: dict[str, Any]) -> list[tuple[str, bool, bool]]:
    """(value, in an earlier tool result, in the user's prompt) per critical value."""
    earlier = "\x01".join(
        haystack(Task.result(s))
        for s in task.tools
        if int(s["endTimeUnixNano"]) < int(span["startTimeUnixNano"])
    )
    prompt = _norm(prompt_of(task.root))
    return [(v, _norm(v) in earlier, _norm(v) in prompt) for v in critical_values(span)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("assistants")
    return Run(out, simulate_assistants(out))


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("assistants-bare")
    return Run(out, simulate_assistants(out, content=False))


# --- determinism ---------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate_assistants(tmp_path / name, seed=seed, tasks=40)
    a, b, c = (_tree(tmp_path / n) for n in "abc")
    assert a == b
    assert sorted(a) == sorted(c) and a["labels.jsonl"] != c["labels.jsonl"]
    assert all(a[k] != c[k] for k in a if k.startswith("otlp/"))


def test_the_default_run_counts(run: Run) -> None:
    s = run.summary
    assert s.tasks == 400 == len(run.labels) == len(run.tasks)
    assert s.labels == {
        "benign": 220,
        "hard_negative": 60,
        "injected": 100,
        "injection_ignored": 20,
    }
    assert s.suites == {"banking": 100, "slack": 100, "travel": 100, "workspace": 100}
    assert s.files == (
        "README.md",
        "labels.jsonl",
        "otlp/assistants-2026-11-01.jsonl",
        "otlp/assistants-2026-11-02.jsonl",
        "otlp/assistants-2026-11-03.jsonl",
    )
    assert s.spans == sum(len(t.spans) for t in run.tasks.values())
    assert s.tool_calls == sum(len(t.tools) for t in run.tasks.values())


# --- the OTLP shape --------------------------------------------------------------------------


def _check_anyvalue(v: dict[str, Any]) -> None:
    assert len(v) <= 1 and set(v) <= ANYVALUE_KEYS, v
    if "arrayValue" in v:
        for e in v["arrayValue"]["values"]:
            _check_anyvalue(e)
    if "kvlistValue" in v:
        for kv in v["kvlistValue"]["values"]:
            assert set(kv) == {"key", "value"}
            _check_anyvalue(kv["value"])
    if "intValue" in v:
        assert re.fullmatch(r"-?\d+", v["intValue"])


def test_every_line_is_an_otlp_export(run: Run) -> None:
    for _, doc in run.docs:
        (rs,) = doc["resourceSpans"]
        assert "service.name" in attrs(rs["resource"])
        (ss,) = rs["scopeSpans"]
        assert ss["scope"]["name"] and ss["spans"]
        root = ss["spans"][0]
        assert "parentSpanId" not in root and HEX32.match(root["traceId"])
        assert len({s["spanId"] for s in ss["spans"]}) == len(ss["spans"])
        for span in ss["spans"]:
            assert span["traceId"] == root["traceId"] and HEX16.match(span["spanId"])
            assert span is root or span["parentSpanId"] == root["spanId"]
            assert span["startTimeUnixNano"].isdigit() and span["endTimeUnixNano"].isdigit()
            for a in span["attributes"]:
                _check_anyvalue(a["value"])
            op = attrs(span)["gen_ai.operation.name"]
            assert op in ("invoke_agent", "chat", "execute_tool")
            if op == "execute_tool":
                a = attrs(span)
                assert span["name"] == f"execute_tool {a['gen_ai.tool.name']}"
                assert a["gen_ai.tool.type"] == "function" and a["gen_ai.tool.call.id"]
                assert isinstance(Task.args(span), dict)


def test_spans_follow_each_other_and_files_are_days_in_time_order(run: Run) -> None:
    for path in run.files:
        starts = [
            int(d["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"])
            for f, d in run.docs
            if f == path
        ]
        assert starts == sorted(starts) and starts
        days = {datetime.fromtimestamp(t / 1e9, UTC).date().isoformat() for t in starts}
        assert days == {path.stem.removeprefix("assistants-")}
    for task in run.tasks.values():
        root, children = task.root, task.spans[1:]
        ops = [attrs(s)["gen_ai.operation.name"] for s in children]
        assert ops == ["chat", "execute_tool"] * len(task.tools) + ["chat"]
        prev_end = int(root["startTimeUnixNano"])
        for s in children:
            start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
            assert prev_end < start < end
            prev_end = end
        assert prev_end < int(root["endTimeUnixNano"])


def test_one_trace_and_one_label_per_task(run: Run) -> None:
    by_task = {lab["task_id"]: lab for lab in run.labels}
    assert set(by_task) == set(run.tasks) and len(by_task) == len(run.labels)
    for task_id, task in run.tasks.items():
        lab = by_task[task_id]
        assert lab["scenario"] == "content_injection" and lab["label"] in LABELS
        assert lab["agent_id"] == task.agent_id and lab["suite"] in lab["agent_id"]
        assert attrs(task.root)["gen_ai.agent.name"] in task.root["name"]


# --- labels that match the traces ------------------------------------------------------------


def test_label_mix_per_suite(run: Run) -> None:
    for suite in ("banking", "slack", "travel", "workspace"):
        mix = Counter(lab["label"] for lab in run.labels if lab["suite"] == suite)
        assert mix == {"benign": 55, "hard_negative": 15, "injected": 25, "injection_ignored": 5}
    goals = Counter(lab["attack_goal"] for lab in run.labels if lab["label"] == "injected")
    assert set(goals) == GOALS


def test_injected_event_ids_act_on_attacker_values_read_from_a_tool(run: Run) -> None:
    """Each labelled span exists, and one of its critical values first appeared in an earlier
    tool result of the same trace, never in the user's prompt."""
    for lab in run.labels:
        task = run.tasks[lab["task_id"]]
        spans = {task.event_id(s): s for s in task.tools}
        if lab["label"] != "injected":
            assert lab["injected_event_ids"] == []
            continue
        assert lab["injected_event_ids"] and lab["attack_goal"] in GOALS
        assert lab["vector_tool"] in {attrs(s)["gen_ai.tool.name"] for s in task.tools}
        for eid in lab["injected_event_ids"]:
            found = provenance(task, spans[eid])
            assert any(earlier and not in_prompt for _, earlier, in_prompt in found), (eid, found)


def test_hard_negatives_act_on_values_read_from_a_tool(run: Run) -> None:
    for lab in run.labels:
        if lab["label"] != "hard_negative":
            continue
        task = run.tasks[lab["task_id"]]
        assert lab["attack_goal"] is None and lab["vector_tool"] is None
        found = [p for s in task.tools for p in provenance(task, s)]
        assert any(earlier and not in_prompt for _, earlier, in_prompt in found), lab
        assert all(earlier or in_prompt for _, earlier, in_prompt in found), lab


def test_benign_tasks_act_only_on_values_the_user_named(run: Run) -> None:
    for lab in run.labels:
        if lab["label"] == "benign":
            task = run.tasks[lab["task_id"]]
            found = [p for s in task.tools for p in provenance(task, s)]
            assert all(in_prompt for _, _, in_prompt in found), (lab, found)


def test_ignored_injections_leave_no_action_on_attacker_values(run: Run) -> None:
    ignored = [lab for lab in run.labels if lab["label"] == "injection_ignored"]
    assert ignored
    for lab in ignored:
        task = run.tasks[lab["task_id"]]
        assert lab["attack_goal"] in GOALS and lab["injected_event_ids"] == []
        assert lab["vector_tool"] in {attrs(s)["gen_ai.tool.name"] for s in task.tools}
        found = [p for s in task.tools for p in provenance(task, s)]
        assert all(earlier or in_prompt for _, earlier, in_prompt in found)


def test_injections_come_in_every_phrasing_and_subtle_ones_have_no_marker(run: Run) -> None:
    styled = [
        (lab, lab["note"].split(": ")[1].split(" injection")[0])
        for lab in run.labels
        if lab["label"] in ("injected", "injection_ignored")
    ]
    assert {style for _, style in styled} == STYLES
    subtle = [lab for lab, style in styled if style == "subtle"]
    assert 0.12 <= len(subtle) / len(styled) <= 0.18
    markers = re.compile(
        r"<INFORMATION>|TODO:|TODO for|\[ \] TODO|IMPORTANT!!!|[Ii]gnore (your|all) previous|"
        r"system_message|\[SYSTEM\]|im_start|AI assistant|[Nn]ote for the assistant"
    )
    for lab in subtle:
        task = run.tasks[lab["task_id"]]
        vector = [s for s in task.tools if attrs(s)["gen_ai.tool.name"] == lab["vector_tool"]][0]
        injected = Task.result(vector)
        assert not markers.search(injected), injected


def test_some_ordinary_tasks_address_common_mail_providers(run: Run) -> None:
    """Domain novelty is no evidence: benign and hard-negative tasks mail gmail.com & co too."""
    external = Counter()
    for lab in run.labels:
        if lab["label"] in ("benign", "hard_negative"):
            task = run.tasks[lab["task_id"]]
            values = [v for s in task.tools for v in critical_values(s)]
            external[lab["label"]] += any(v.endswith(COMMON_PROVIDERS) for v in values)
    assert external["benign"] >= 10 and external["hard_negative"] >= 5


def test_hard_negative_tool_outputs_hold_polite_imperatives(run: Run) -> None:
    results = [
        Task.result(s)
        for lab in run.labels
        if lab["label"] == "hard_negative"
        for s in run.tasks[lab["task_id"]].tools
    ]
    assert sum(bool(re.search(r"\b(Please|Kindly|Could you)\b", r)) for r in results) >= 10


# --- content capture and its encodings -------------------------------------------------------


def _skeleton(task: Task) -> list[tuple]:
    return [
        (
            s["spanId"],
            s["name"],
            s["startTimeUnixNano"],
            s["endTimeUnixNano"],
            attrs(s).get("gen_ai.tool.call.arguments"),
        )
        for s in task.spans
    ]


def test_without_content_capture_same_ids_and_no_content(run: Run, bare: Run) -> None:
    assert (bare.out / "labels.jsonl").read_bytes() == (run.out / "labels.jsonl").read_bytes()
    assert [f.name for f in bare.files] == [f.name for f in run.files]
    assert bare.tasks.keys() == run.tasks.keys()
    for task_id, task in bare.tasks.items():
        assert _skeleton(task) == _skeleton(run.tasks[task_id])
        for span in task.spans:
            assert "events" not in span
            keys = {a["key"] for a in span["attributes"]}
            assert not keys & set(CONTENT_KEYS), keys
            assert not any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in keys)


def test_the_content_encodings_are_mixed(run: Run) -> None:
    mix = Counter(t.encoding for t in run.tasks.values())
    n = len(run.tasks)
    assert 0.45 <= mix["json"] / n <= 0.65 and 0.13 <= mix["structured"] / n <= 0.27
    assert 0.09 <= mix["events"] / n <= 0.21 and 0.05 <= mix["flat"] / n <= 0.15
    assert sum(mix.values()) == n


def _chat_calls(task: Task) -> list[tuple[str, str, dict[str, Any]]]:
    """(call id, tool, arguments) each chat span's output asks for, read per encoding."""
    out = []
    for chat in (s for s in task.spans if attrs(s)["gen_ai.operation.name"] == "chat"):
        a = attrs(chat)
        if task.encoding in ("json", "structured"):
            (msg,) = _json_or_value(a["gen_ai.output.messages"])
            out += [
                (p["id"], p["name"], p["arguments"])
                for p in msg["parts"]
                if p["type"] == "tool_call"
            ]
        elif task.encoding == "flat" and "gen_ai.completion.0.tool_calls.0.id" in a:
            p = "gen_ai.completion.0.tool_calls.0"
            out.append((a[f"{p}.id"], a[f"{p}.name"], json.loads(a[f"{p}.arguments"])))
        elif task.encoding == "events":
            choice = [e for e in chat["events"] if e["name"] == "gen_ai.choice"][-1]
            msg = json.loads(
                {x["key"]: value_of(x["value"]) for x in choice["attributes"]}["message"]
            )
            out += [
                (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in msg.get("tool_calls") or []
            ]
    return out


def _last_response(task: Task) -> tuple[str, Any]:
    """(call id, response) of the last tool message in the final chat span's input."""
    chat = task.spans[-1]
    a = attrs(chat)
    if task.encoding in ("json", "structured"):
        msgs = _json_or_value(a["gen_ai.input.messages"])
        (part,) = [m for m in msgs if m["role"] == "tool"][-1]["parts"]
        return part["id"], part["response"]
    if task.encoding == "flat":
        n = max(int(k.split(".")[2]) for k in a if k.startswith("gen_ai.prompt."))
        assert a[f"gen_ai.prompt.{n}.role"] == "tool"
        return a[f"gen_ai.prompt.{n}.tool_call_id"], a[f"gen_ai.prompt.{n}.content"]
    event = [e for e in chat["events"] if e["name"] == "gen_ai.tool.message"][-1]
    ea = {x["key"]: value_of(x["value"]) for x in event["attributes"]}
    return ea["id"], ea["content"]


def _same_result(response: Any, result: Any) -> bool:
    """The response in a message and the span's result are the same text, or one is the data
    the other serialises."""
    if isinstance(response, str) == isinstance(result, str):
        return response == result
    text, data = (response, result) if isinstance(response, str) else (result, response)
    for parse in (json.loads, yaml.safe_load, ast.literal_eval):
        try:
            if parse(text) == data:
                return True
        except (ValueError, SyntaxError, yaml.YAMLError):
            continue
    return False


def test_every_encoding_carries_the_conversation_the_tools_saw(run: Run) -> None:
    """In every encoding the chat spans ask for exactly the calls the execute_tool spans ran,
    and the last tool result reaches the model's last input."""
    objects = 0
    for task in run.tasks.values():
        ran = [
            (attrs(s)["gen_ai.tool.call.id"], attrs(s)["gen_ai.tool.name"], Task.args(s))
            for s in task.tools
        ]
        assert _chat_calls(task) == ran, task.task_id
        if task.tools:
            last = task.tools[-1]
            call_id, response = _last_response(task)
            assert call_id == attrs(last)["gen_ai.tool.call.id"]
            result = attrs(last)["gen_ai.tool.call.result"]
            assert _same_result(response, result), (task.task_id, response, result)
            objects += not isinstance(response, str)
    assert objects > 20


def test_the_encodings_look_as_the_instrumentations_write_them(run: Run) -> None:
    seen = set()
    for task in run.tasks.values():
        chat = task.spans[1]
        raw = {a["key"]: a["value"] for a in chat["attributes"]}
        if task.encoding == "events":
            names = [e["name"] for e in chat["events"]]
            assert names[:2] == ["gen_ai.system.message", "gen_ai.user.message"]
            assert names[-1] == "gen_ai.choice" and "gen_ai.input.messages" not in raw
        elif task.encoding == "flat":
            assert value_of(raw["gen_ai.prompt.1.role"]) == "user"
            assert "gen_ai.completion.0.role" in raw
        elif task.encoding == "structured":
            msgs = value_of(raw["gen_ai.input.messages"])
            assert "arrayValue" in raw["gen_ai.input.messages"] and msgs[0]["role"] == "system"
        else:
            msgs = json.loads(value_of(raw["gen_ai.input.messages"]))
            assert [m["role"] for m in msgs[:2]] == ["system", "user"]
        seen.add(task.encoding)
    assert seen == {"json", "structured", "events", "flat"}


# --- the command and ingestion ---------------------------------------------------------------


def test_cli_simulate_assistants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a"
    assert cli_main(["simulate", "--assistants", "--out", str(out), "--tasks", "24"]) == 0
    printed = capsys.readouterr().out
    assert "24 assistant tasks with content capture" in printed and "labels:" in printed
    assert "AssistantSummary(" not in printed
    assert len((out / "labels.jsonl").read_text().splitlines()) == 24
    bare = tmp_path / "b"
    args = ["simulate", "--assistants", "--out", str(bare), "--tasks", "24", "--no-content-capture"]
    assert cli_main(args) == 0
    assert "without content capture" in capsys.readouterr().out
    assert (bare / "labels.jsonl").read_bytes() == (out / "labels.jsonl").read_bytes()
    assert cli_main(["simulate", "--out", str(tmp_path / "c"), "--no-content-capture"]) == 2
    assert "--assistants" in capsys.readouterr().err


def test_chainwatch_reads_the_labelled_event_ids(tmp_path: Path, settings: Settings, con) -> None:
    """The labels' event ids are chainwatch's ids of those spans, in the labelled task."""
    simulate_assistants(tmp_path, seed=5, tasks=12)
    ingest_paths(con, [tmp_path / "otlp"], settings)
    labels = [json.loads(ln) for ln in (tmp_path / "labels.jsonl").read_text().splitlines()]
    rows = con.execute("SELECT event_id, task_id, agent_id FROM agent_actions").fetchall()
    actions = {eid: (task, agent) for eid, task, agent in rows}
    expected = {
        eid: (lab["task_id"], lab["agent_id"])
        for lab in labels
        for eid in lab["injected_event_ids"]
    }
    assert expected and {e: actions.get(e) for e in expected} == expected
    assert {task for task, _ in actions.values()} == {lab["task_id"] for lab in labels}
