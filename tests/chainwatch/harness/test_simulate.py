"""Tests for the fleet simulator: determinism, real formats, labels that match the logs, streaming."""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
import subprocess
import sys
import tracemalloc
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from chainwatch.cli import main as cli_main
from chainwatch.harness import simulate as sim_module
from chainwatch.harness.simulate import ANOMALY_SCENARIOS, SCENARIOS, SimulationSummary, simulate
from detectors.core.settings import Settings
from detectors.ingest.pipeline import ingest_paths
from detectors.rules.engine import RULES_DIR
from detectors.stages import run_detection

SESSION_RE = re.compile(r"^(?P<agent_id>[A-Za-z0-9_+=,.-]+)@(?P<task_id>[A-Za-z0-9_+=,.-]+)$")
HMAC_RE = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
VAULT_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CT_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
AWS_DATE_FORMATS = ("%b %d, %Y %I:%M:%S %p", "%b %d, %Y, %I:%M:%S %p")
ANYVALUE_KEYS = {
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
}
CREDENTIAL_SCENARIOS = {
    "credential_outlived_task",
    "credential_reused_by_other_task",
    "credential_shared_across_agents",
    "leaked_credential_new_ip",
    "approval_retained_access",
}
EXTERNAL_MARKERS = (
    "gmail.com",
    "proton.me",
    "outlook.com",
    "mail.ru",
    "webhook.site",
    "pastebin.com",
    "transfer.sh",
    "data-sync.io",
)
WRITE_TOOLS = {
    "write_file",
    "update_record",
    "create_ticket",
    "slack_post",
    "http_post",
    "share_document",
    "put_secret",
    "s3_put_object",
    "dynamodb_put_item",
    "sqs_send_message",
    "create_review_comment",
    "create_pull_request",
    "add_comment",
    "create_issue",
    "post_message",
    "update_contact",
    "create_page",
}


# ---------------------------------------------------------------------------------------------
# Loading a run back.


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _aws_date(text: str) -> datetime:
    for fmt in AWS_DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise AssertionError(f"not a CloudTrail date: {text!r}")


def _attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for item in items:
        ((_, value),) = item["value"].items()
        out[item["key"]] = value
    return out


def _read_text(path: Path) -> str:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    return path.read_text(encoding="utf-8")


class Run:
    """A simulated run parsed back from disk."""

    def __init__(self, out: Path, summary: SimulationSummary) -> None:
        self.out, self.summary = out, summary
        self.otlp: list[tuple[str, dict[str, Any]]] = []  # (file day, document)
        self.vault: list[tuple[str, dict[str, Any]]] = []
        self.cloudtrail: list[tuple[str, dict[str, Any]]] = []
        self.native: list[tuple[str, dict[str, Any]]] = []
        for rel in summary.files:
            path = out / rel
            day = re.search(r"(\d{4}-\d\d-\d\d)", rel)
            text = _read_text(path)
            if rel.startswith("cloudtrail/"):
                self.cloudtrail += [(day[1], r) for r in json.loads(text)["Records"]]
            elif rel.startswith(("otlp/", "vault/", "native/")):
                target = {"otlp": self.otlp, "vault": self.vault, "native": self.native}
                target[rel.split("/")[0]].extend(
                    (day[1], json.loads(ln)) for ln in text.splitlines()
                )
        self.labels = [
            json.loads(ln) for ln in (out / "labels.jsonl").read_text().splitlines() if ln
        ]
        self.tasks: dict[str, dict[str, Any]] = defaultdict(dict)
        for _, ev in self.native:
            task = self.tasks[ev["task_id"]]
            task["agent_id"] = ev["agent_id"]
            task[ev["event"]] = ev
        self.spans: dict[str, list[dict[str, Any]]] = {}  # task id -> tool spans with attrs
        for _, doc in self.otlp:
            spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
            task_id = _attrs(spans[0]["attributes"])["chainwatch.task.id"]
            self.spans[task_id] = [dict(s, a=_attrs(s["attributes"])) for s in spans[1:]]

    def task_window(self, task_id: str) -> tuple[datetime, datetime]:
        task = self.tasks[task_id]
        return _ts(task["start"]["ts"]), _ts(task["end"]["ts"])

    def vault_uses(self, token: str) -> list[dict[str, Any]]:
        return [
            e
            for _, e in self.vault
            if e["type"] == "request" and e["auth"].get("client_token") == token
        ]

    def ct_uses(self, key: str) -> list[dict[str, Any]]:
        return [r for _, r in self.cloudtrail if r["userIdentity"].get("accessKeyId") == key]

    def issued(self, source_id: str) -> list[str]:
        """Task ids of the Vault logins or STS sessions that issued a credential."""
        out = []
        for _, e in self.vault:
            if e["type"] == "response" and e["request"]["path"] == "auth/approle/login":
                auth = e.get("response", {}).get("auth", {})
                if auth.get("client_token") == source_id:
                    out.append(auth["metadata"]["task_id"])
        for _, r in self.cloudtrail:
            creds = (r["responseElements"] or {}).get("credentials", {})
            if r["eventName"] == "AssumeRole" and creds.get("accessKeyId") == source_id:
                out.append(SESSION_RE.match(r["requestParameters"]["roleSessionName"])["task_id"])
        return out

    def agent_ips(self, agent_id: str) -> set[str]:
        """IPs an agent used to obtain its own credentials."""
        ips = set()
        for _, e in self.vault:
            if e["request"]["path"] == "auth/approle/login" and e["type"] == "response":
                if e["response"]["auth"]["metadata"]["agent_id"] == agent_id:
                    ips.add(e["request"]["remote_address"])
        for _, r in self.cloudtrail:
            if r["eventName"] == "AssumeRole":
                if r["requestParameters"]["roleSessionName"].startswith(agent_id + "@"):
                    ips.add(r["sourceIPAddress"])
        return ips


@pytest.fixture(scope="module")
def raw_tokens() -> list[str]:
    return []


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, raw_tokens: list[str]) -> Run:
    """One standard run (about 300 tasks), recording every raw secret the simulator invents."""
    out = tmp_path_factory.mktemp("sim")
    original = sim_module._Simulator._hmac

    def recording_hmac(self: Any, raw: str) -> str:
        if raw.startswith("hvs."):
            raw_tokens.append(raw)
        return original(self, raw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sim_module._Simulator, "_hmac", recording_hmac)
        summary = simulate(out, seed=11, agents=10, days=3, actions=3500)
    return Run(out, summary)


# ---------------------------------------------------------------------------------------------
# Determinism and layout.


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("gzip_cloudtrail", [False, True])
def test_same_seed_gives_identical_bytes(tmp_path: Path, gzip_cloudtrail: bool) -> None:
    a = simulate(tmp_path / "a", seed=5, agents=6, actions=1500, gzip_cloudtrail=gzip_cloudtrail)
    b = simulate(tmp_path / "b", seed=5, agents=6, actions=1500, gzip_cloudtrail=gzip_cloudtrail)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert a.files == b.files and a.scenarios == b.scenarios


def test_different_seeds_differ(tmp_path: Path) -> None:
    simulate(tmp_path / "a", seed=1, agents=6, actions=1500)
    simulate(tmp_path / "b", seed=2, agents=6, actions=1500)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.startswith(("otlp/", "vault/", "native/")))


def test_layout_one_file_per_kind_and_day(run: Run) -> None:
    files = set(run.summary.files)
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        assert {
            f"otlp/traces-{day}.jsonl",
            f"vault/audit-{day}.log",
            f"cloudtrail/cloudtrail-{day}.json",
            f"native/tasks-{day}.jsonl",
        } <= files
    assert {"labels.jsonl", "README.md"} <= files
    assert all((run.out / f).is_file() for f in files)
    readme = (run.out / "README.md").read_text()
    assert "chainwatch simulate" in readme and "--seed 11" in readme and "--actions 3500" in readme


def test_gzip_cloudtrail_is_gzip_with_the_same_shape(tmp_path: Path) -> None:
    summary = simulate(tmp_path, seed=3, agents=6, actions=800, gzip_cloudtrail=True)
    ct = [f for f in summary.files if f.startswith("cloudtrail/")]
    assert ct and all(f.endswith(".json.gz") for f in ct)
    records = [r for f in ct for r in json.loads(_read_text(tmp_path / f))["Records"]]
    assert any(r["eventName"] == "AssumeRole" for r in records)


def test_counts_match_the_files(run: Run) -> None:
    s = run.summary
    assert s.tool_actions == sum(len(v) for v in run.spans.values())
    assert s.cloudtrail_records == len(run.cloudtrail)
    assert s.vault_entries == len(run.vault) == 2 * s.vault_requests
    assert s.task_events == len(run.native)
    assert s.tasks == len(run.tasks) == len(run.otlp)
    assert s.scenarios == dict(Counter(lab["scenario"] for lab in run.labels))


@pytest.mark.parametrize("actions", [600, 5000, 20000])
def test_action_budget_is_respected(tmp_path: Path, actions: int) -> None:
    summary = simulate(tmp_path, seed=9, agents=12, actions=actions)
    assert 0.8 * actions <= summary.actions <= 1.2 * actions


# ---------------------------------------------------------------------------------------------
# Formats.


def _check_anyvalue(value: dict[str, Any], seen: Counter[str]) -> None:
    assert len(value) == 1, value
    ((kind, inner),) = value.items()
    assert kind in ANYVALUE_KEYS
    seen[kind] += 1
    if kind == "intValue":
        seen["intValue:" + type(inner).__name__] += 1
        assert int(inner) == float(inner)
    elif kind == "arrayValue":
        for item in inner["values"]:
            _check_anyvalue(item, seen)
    elif kind == "kvlistValue":
        for item in inner["values"]:
            assert set(item) == {"key", "value"}
            _check_anyvalue(item["value"], seen)


def test_otlp_documents_follow_otlp_json_and_genai_conventions(run: Run) -> None:
    seen: Counter[str] = Counter()
    numeric_times = tagged_tool_spans = mcp_spans = 0
    for _, doc in run.otlp:
        assert list(doc) == ["resourceSpans"] and len(doc["resourceSpans"]) == 1
        rs = doc["resourceSpans"][0]
        resource = _attrs(rs["resource"]["attributes"])
        assert resource["service.name"].endswith("-agent")
        (scope_spans,) = rs["scopeSpans"]
        assert scope_spans["scope"] == {"name": "chainwatch-sim", "version": "1"}
        spans = scope_spans["spans"]
        roots = [s for s in spans if not s.get("parentSpanId")]
        assert len(roots) == 1
        root = roots[0]
        ra = _attrs(root["attributes"])
        assert ra["gen_ai.operation.name"] == "invoke_agent"
        assert root["name"] == f"invoke_agent {ra['gen_ai.agent.name']}"
        assert {"gen_ai.agent.id", "gen_ai.conversation.id", "chainwatch.task.id"} <= ra.keys()
        for span in spans:
            assert (
                re.fullmatch(r"[0-9a-f]{32}", span["traceId"])
                and span["traceId"] == root["traceId"]
            )
            assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
            assert span["kind"] in (1, 3)
            start, end = span["startTimeUnixNano"], span["endTimeUnixNano"]
            numeric_times += isinstance(start, int) + isinstance(end, int)
            assert int(start) <= int(end)
            assert int(root["startTimeUnixNano"]) <= int(start) <= int(root["endTimeUnixNano"])
            for attr in span["attributes"]:
                _check_anyvalue(attr["value"], seen)
            if span is root:
                continue
            assert span["parentSpanId"] == root["spanId"]
            a = _attrs(span["attributes"])
            assert a["gen_ai.operation.name"] == "execute_tool"
            assert span["name"] == f"execute_tool {a['gen_ai.tool.name']}"
            assert a["gen_ai.tool.type"] in ("function", "extension", "datastore")
            assert a["gen_ai.tool.call.id"].startswith("call_")
            args = a["gen_ai.tool.call.arguments"]
            assert isinstance(json.loads(args), dict) if isinstance(args, str) else args["values"]
            if "mcp.server.name" in a:
                mcp_spans += 1
                assert a["mcp.method.name"] == "tools/call" and a["mcp.session.id"]
            tagged_tool_spans += "chainwatch.task.id" in a
            if "error.type" in a:
                assert span["status"]["code"] == 2 and span["status"]["message"]
    # Every AnyValue variant the brief asks for, and both intValue encodings, appear.
    for kind in (
        "stringValue",
        "boolValue",
        "intValue",
        "doubleValue",
        "arrayValue",
        "kvlistValue",
    ):
        assert seen[kind], kind
    assert seen["intValue:str"] and seen["intValue:int"]
    assert numeric_times > 0 and mcp_spans > 0
    # Tool spans usually inherit agent and task from the root span; about 10 % carry them.
    assert 0.02 < tagged_tool_spans / run.summary.tool_actions < 0.3


def test_vault_entries_pair_up_and_carry_auth(run: Run) -> None:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, e in run.vault:
        assert set(e) >= {"time", "type", "auth", "request"}
        assert VAULT_TIME_RE.match(e["time"])
        assert UUID_RE.match(e["request"]["id"])
        assert e["request"]["namespace"] == {"id": "root"}
        for value in e["request"].get("data", {}).values():
            for leaf in value.values() if isinstance(value, dict) else [value]:
                assert HMAC_RE.match(leaf)
        by_id[e["request"]["id"]].append(e)
    paths: Counter[str] = Counter()
    for rid, (req, resp) in by_id.items():
        assert (req["type"], resp["type"]) == ("request", "response"), rid
        assert req["request"] == resp["request"] and req["time"] <= resp["time"]
        path = req["request"]["path"]
        paths[path.split("/")[0] + "/" + path.split("/")[1]] += 1
        if path == "auth/approle/login":
            assert "client_token" not in req["auth"]
            auth = resp["response"]["auth"]
            assert HMAC_RE.match(auth["client_token"]) and HMAC_RE.match(auth["accessor"])
            assert auth["token_type"] == "service" and auth["display_name"] == "approle"
            assert set(auth["metadata"]) == {"task_id", "agent_id", "role_name"}
            assert auth["metadata"]["task_id"] in run.tasks
            assert 900 <= auth["token_ttl"] and CT_TIME_RE.match(auth["token_issue_time"])
            continue
        auth = req["auth"]
        assert HMAC_RE.match(auth["client_token"]) and HMAC_RE.match(auth["accessor"])
        assert {"task_id", "agent_id"} <= auth["metadata"].keys()
        assert {"display_name", "policies", "token_ttl", "token_issue_time"} <= auth.keys()
        if path.startswith("database/creds/") and "error" not in resp:
            lease = resp["response"]["secret"]["lease_id"]
            assert lease.startswith(path + "/")
    assert paths["auth/token"] and paths["sys/leases"] and paths["database/creds"]
    assert any(e.get("error") for _, e in run.vault if e["type"] == "response")
    assert any(e["request"]["path"] == "auth/token/revoke-self" for _, e in run.vault)


def test_no_raw_vault_token_is_written_anywhere(run: Run, raw_tokens: list[str]) -> None:
    assert len(raw_tokens) >= run.summary.tasks // 3  # the recorder saw the invented tokens
    blob = b"".join(_tree(run.out).values())
    assert b"hvs." not in blob
    text = blob.decode()
    assert not [t for t in raw_tokens if t in text]


def test_cloudtrail_records_and_sts_issuance(run: Run) -> None:
    styles: Counter[bool] = Counter()
    issued: dict[str, dict[str, Any]] = {}
    tagged = failed = 0
    for _, r in run.cloudtrail:
        assert CT_TIME_RE.match(r["eventTime"]) and UUID_RE.match(r["eventID"])
        assert {
            "eventVersion",
            "eventSource",
            "awsRegion",
            "sourceIPAddress",
            "userAgent",
            "recipientAccountId",
            "requestParameters",
            "responseElements",
        } <= r.keys()
        if r["eventName"] != "AssumeRole":
            continue
        params = r["requestParameters"]
        m = SESSION_RE.match(params["roleSessionName"])
        assert (
            m and m["task_id"] in run.tasks and run.tasks[m["task_id"]]["agent_id"] == m["agent_id"]
        )
        tagged += "tags" in params
        if "errorCode" in r:
            assert r["errorCode"] == "AccessDenied" and r["responseElements"] is None
            failed += 1
            continue
        creds = r["responseElements"]["credentials"]
        assert re.fullmatch(r"ASIA[A-Z0-9]{16}", creds["accessKeyId"])
        assert len(creds["sessionToken"]) > 200
        expiration = creds["expiration"]
        with pytest.raises(ValueError):
            datetime.fromisoformat(expiration)
        styles[", " in expiration.split(" ", 2)[2]] += 1
        lifetime = _aws_date(expiration) - _ts(r["eventTime"])
        assert lifetime == timedelta(seconds=params["durationSeconds"])
        assumed = r["responseElements"]["assumedRoleUser"]["arn"]
        assert assumed.endswith("/" + params["roleSessionName"])
        issued[creds["accessKeyId"]] = r
    assert styles[True] and styles[False]  # both real non-ISO shapes
    assert issued and 0 < tagged < len(issued) and failed
    # Calls made with an issued key name the same session and come after issuance.
    uses = 0
    for _, r in run.cloudtrail:
        key = r["userIdentity"].get("accessKeyId")
        if key in issued and r["eventName"] != "AssumeRole":
            uses += 1
            ident = r["userIdentity"]
            assert ident["type"] == "AssumedRole"
            assert ident["arn"] == issued[key]["responseElements"]["assumedRoleUser"]["arn"]
            assert ident["sessionContext"]["sessionIssuer"]["type"] == "Role"
            assert ident["sessionContext"]["attributes"]["mfaAuthenticated"] == "false"
            assert r["eventTime"] >= issued[key]["eventTime"]
    assert uses > len(issued)
    assert any(r.get("errorCode") for _, r in run.cloudtrail if r["eventName"] != "AssumeRole")


def test_iam_access_key_lifecycle(run: Run) -> None:
    created = {
        r["responseElements"]["accessKey"]["accessKeyId"]: r
        for _, r in run.cloudtrail
        if r["eventName"] == "CreateAccessKey"
    }
    assert created
    for key, r in created.items():
        assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key)
        _aws_date(r["responseElements"]["accessKey"]["createDate"])
        assert r["responseElements"]["accessKey"]["status"] == "Active"
    names = {r["eventName"] for _, r in run.cloudtrail if r["eventSource"] == "iam.amazonaws.com"}
    assert {"UpdateAccessKey", "DeleteAccessKey"} <= names
    used = [r for _, r in run.cloudtrail if r["userIdentity"].get("accessKeyId") in created]
    assert used and all(r["userIdentity"]["type"] == "IAMUser" for r in used)


def test_native_task_events(run: Run) -> None:
    approvals = 0
    for task_id, task in run.tasks.items():
        assert {"start", "end"} <= task.keys(), task_id
        assert task["end"]["status"] in ("completed", "failed", "cancelled")
        assert _ts(task["start"]["ts"]) <= _ts(task["end"]["ts"])
        assert "status" not in task["start"]
        if "approval" in task:
            approvals += 1
            ap = task["approval"]
            assert ap["approved_by"] and isinstance(ap["approved_scope"], list)
            assert _ts(ap["approval_expires_at"]) > _ts(ap["ts"])
    statuses = Counter(t["end"]["status"] for t in run.tasks.values())
    assert statuses["completed"] > 0.85 * len(run.tasks) and statuses["failed"]
    assert approvals
    assert all(
        ev["record_type"] == "task" and UUID_RE.match(ev["event_id"]) for _, ev in run.native
    )


def test_files_are_time_ordered_and_partitioned_by_utc_day(run: Run) -> None:
    for records, key in (
        (run.vault, lambda e: e["time"]),
        (run.cloudtrail, lambda r: r["eventTime"]),
        (run.native, lambda e: e["ts"]),
    ):
        times = [(day, _ts(key(rec))) for day, rec in records]
        assert all(t.date().isoformat() == day for day, t in times)
        assert [t for _, t in times] == sorted(t for _, t in times)
    for day, doc in run.otlp:
        root = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        start = datetime.fromtimestamp(int(root["startTimeUnixNano"]) / 1e9, UTC)
        assert start.date().isoformat() == day


def test_agents_have_stable_small_ip_sets(run: Run) -> None:
    agents = {t["agent_id"] for t in run.tasks.values()}
    for agent in agents:
        ips = run.agent_ips(agent)
        assert 1 <= len(ips) <= 3
        assert all(ipaddress.ip_address(ip).is_private for ip in ips)


# ---------------------------------------------------------------------------------------------
# Labels: complete, and each instance visible in the logs.


def test_labels_cover_every_scenario_and_name_real_tasks(run: Run) -> None:
    assert run.summary.tasks >= 200
    assert {lab["scenario"] for lab in run.labels} == set(SCENARIOS)
    assert len(run.labels) < 0.1 * run.summary.tasks
    for lab in run.labels:
        assert set(lab) == {
            "scenario",
            "task_id",
            "agent_id",
            "credential_source_id",
            "credential_namespace",
            "note",
        }
        assert lab["task_id"] in run.tasks
        assert run.tasks[lab["task_id"]]["agent_id"] == lab["agent_id"]
        if lab["scenario"] in CREDENTIAL_SCENARIOS:
            assert lab["credential_namespace"] in ("vault", "aws")
            src = lab["credential_source_id"]
            issued = run.issued(src)
            assert issued and issued[0] == lab["task_id"], lab
            if lab["credential_namespace"] == "vault":
                assert HMAC_RE.match(src)
            else:
                assert re.fullmatch(r"ASIA[A-Z0-9]{16}", src)
        else:
            assert lab["credential_source_id"] is None and lab["credential_namespace"] is None


def _uses(run: Run, lab: dict[str, Any]) -> list[tuple[datetime, str]]:
    """(time, source IP) of every use of a label's credential."""
    src = lab["credential_source_id"]
    if lab["credential_namespace"] == "vault":
        return [(_ts(e["time"]), e["request"]["remote_address"]) for e in run.vault_uses(src)]
    return [(_ts(r["eventTime"]), r["sourceIPAddress"]) for r in run.ct_uses(src)]


def _is_revoked(run: Run, token: str) -> bool:
    return any(e["request"]["path"] == "auth/token/revoke-self" for e in run.vault_uses(token))


def test_credential_scenarios_are_visible_in_the_logs(run: Run) -> None:
    for lab in run.labels:
        scenario, task_id = lab["scenario"], lab["task_id"]
        if scenario not in CREDENTIAL_SCENARIOS:
            continue
        _, end = run.task_window(task_id)
        uses = _uses(run, lab)
        if lab["credential_namespace"] == "vault":
            assert not _is_revoked(run, lab["credential_source_id"]), lab
        after = [(t, ip) for t, ip in uses if t > end]
        if scenario == "leaked_credential_new_ip":
            own = run.agent_ips(lab["agent_id"])
            assert after and any(ip not in own for _, ip in after), lab
        elif scenario in ("credential_reused_by_other_task", "credential_shared_across_agents"):
            # Some use falls inside another task's window: same agent (reuse) or another one (shared).
            others = [
                tid
                for tid, t in run.tasks.items()
                if tid != task_id
                and (t["agent_id"] == lab["agent_id"])
                == (scenario == "credential_reused_by_other_task")
                and any(run.task_window(tid)[0] <= u <= run.task_window(tid)[1] for u, _ in uses)
            ]
            assert others, lab
        elif scenario == "approval_retained_access":
            approval = run.tasks[task_id]["approval"]
            expires = _ts(approval["approval_expires_at"])
            late = [
                s
                for s in run.spans[task_id]
                if int(s["startTimeUnixNano"]) / 1e9 > expires.timestamp()
            ]
            assert late and any(
                s["a"]["gen_ai.tool.name"] not in approval["approved_scope"] for s in late
            )


def test_chain_scenarios_are_visible_in_the_spans(run: Run) -> None:
    for lab in run.labels:
        spans = run.spans[lab["task_id"]]
        names = [s["a"]["gen_ai.tool.name"] for s in spans]
        if lab["scenario"] == "connector_sprawl":
            assert len({s["a"].get("mcp.server.name") for s in spans} - {None}) >= 5
        elif lab["scenario"] == "cross_system_writes":
            systems = {
                s["a"].get("mcp.server.name") or n
                for s, n in zip(spans, names, strict=True)
                if n in WRITE_TOOLS
            }
            assert len(systems) >= 3
        elif lab["scenario"] == "read_write_delegate":
            first_write = next(i for i, n in enumerate(names) if n in WRITE_TOOLS)
            assert any(n in ("spawn_subagent", "delegate_task") for n in names[first_write:])
        elif lab["scenario"] == "sensitive_read_then_egress":
            args = [json.dumps(s["a"]["gen_ai.tool.call.arguments"]) for s in spans]
            sens = next(
                i
                for i, a in enumerate(args)
                if "customers" in a or "payments" in a or "customer-exports" in a
            )
            assert any(
                n in ("send_email", "http_post") and any(m in args[i] for m in EXTERNAL_MARKERS)
                for i, n in enumerate(names)
                if i > sens
            )


def test_baseline_rarely_shows_the_chain_patterns(run: Run) -> None:
    """Ordinary tasks stay below the chain thresholds, so labels are the chains that matter."""
    labelled = {lab["task_id"] for lab in run.labels}
    hits = 0
    for task_id, spans in run.spans.items():
        if task_id in labelled:
            continue
        servers = {s["a"].get("mcp.server.name") for s in spans} - {None}
        writes = {
            s["a"].get("mcp.server.name") or s["a"]["gen_ai.tool.name"]
            for s in spans
            if s["a"]["gen_ai.tool.name"] in WRITE_TOOLS
        }
        hits += len(servers) >= 5 or len(writes) >= 3
    assert hits <= 0.01 * len(run.spans)


# ---------------------------------------------------------------------------------------------
# Streaming and isolation.


def _peak_bytes(tmp_path: Path, actions: int) -> int:
    tracemalloc.start()
    try:
        simulate(tmp_path / str(actions), seed=4, agents=20, days=3, actions=actions)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_run(tmp_path: Path) -> None:
    small = _peak_bytes(tmp_path, 4000)
    large = _peak_bytes(tmp_path, 16000)
    # Holding the run in memory would make the peak ~4x; streaming keeps it about flat.
    assert large < 1.5 * small, (small, large)
    assert large < 16 * 1024 * 1024


def test_rejects_nonsense_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        simulate(tmp_path, actions=0)
    with pytest.raises(ValueError):
        simulate(tmp_path, agents=0)


def test_single_agent_fleet_still_works(tmp_path: Path) -> None:
    summary = simulate(tmp_path, seed=2, agents=1, days=1, actions=2500)
    assert summary.tasks >= 200
    assert "credential_shared_across_agents" not in summary.scenarios
    assert len(summary.scenarios) == len(SCENARIOS) - 1


def test_simulator_does_not_import_dagster() -> None:
    code = "import sys, chainwatch.harness.simulate; print('dagster' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# Anomaly scenarios: opt-in, whole ordinary-looking tasks, no rule's pattern.

ROOT = Path(__file__).resolve().parents[3]
CAMPAIGN_RE = re.compile(
    r"campaign (?P<id>\S+), task (?P<k>\d+) of (?P<n>\d+): .* to (?P<dest>\S+) \("
)


@pytest.fixture(scope="module")
def anomaly_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("sim-anomalies")
    return Run(out, simulate(out, seed=13, agents=10, days=3, actions=4000, anomalies=True))


def _labelled(run: Run, scenario: str) -> list[dict[str, Any]]:
    return [lab for lab in run.labels if lab["scenario"] == scenario]


def _tool_key(span: dict[str, Any]) -> str:
    """The simulator's tool key: "<mcp server>.<tool>" or the tool name."""
    server = span["a"].get("mcp.server.name")
    name = span["a"]["gen_ai.tool.name"]
    return f"{server}.{name}" if server else name


def _role_of(run: Run, agent_id: str) -> str:
    """An agent's own role, from its OTLP resource (service.name is "<role>-agent")."""
    for _, doc in run.otlp:
        spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
        if _attrs(spans[0]["attributes"])["gen_ai.agent.id"] == agent_id:
            resource = _attrs(doc["resourceSpans"][0]["resource"]["attributes"])
            return resource["service.name"].removesuffix("-agent")
    raise AssertionError(agent_id)


def _role_tools(role: str) -> set[str]:
    return {k for r in sim_module._ROLES if r.name == role for s in r.steps for k in s.options}


def test_anomalies_are_off_by_default_and_change_nothing(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", seed=5, agents=6, actions=1500)
    b = simulate(tmp_path / "b", seed=5, agents=6, actions=1500, anomalies=False)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert a.scenarios == b.scenarios and not set(a.scenarios) & set(ANOMALY_SCENARIOS)


def test_committed_samples_are_still_what_their_command_makes(tmp_path: Path) -> None:
    """data/samples/ stays valid: its README's command still writes exactly these bytes."""
    samples = ROOT / "data" / "samples"
    command = (samples / "README.md").read_text()
    args = dict(re.findall(r"--(seed|agents|days|actions) (\d+)", command))
    assert len(args) == 4 and "--start" not in command and "--anomalies" not in command
    simulate(tmp_path, **{k: int(v) for k, v in args.items()})
    assert _tree(tmp_path) == _tree(samples)


def test_anomalies_are_deterministic(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", seed=8, agents=6, actions=1500, anomalies=True)
    b = simulate(tmp_path / "b", seed=8, agents=6, actions=1500, anomalies=True)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b") and a.scenarios == b.scenarios
    assert set(ANOMALY_SCENARIOS) <= set(a.scenarios)


def test_anomaly_run_keeps_formats_counts_and_time_order(anomaly_run: Run) -> None:
    """What holds for the standard run holds with anomalies (scheduled tasks included)."""
    test_counts_match_the_files(anomaly_run)
    test_native_task_events(anomaly_run)
    test_files_are_time_ordered_and_partitioned_by_utc_day(anomaly_run)
    assert "--anomalies" in (anomaly_run.out / "README.md").read_text()


def test_every_anomaly_scenario_is_labelled_on_real_tasks(anomaly_run: Run) -> None:
    run = anomaly_run
    scenarios = Counter(lab["scenario"] for lab in run.labels)
    assert set(ANOMALY_SCENARIOS) | set(SCENARIOS) <= set(scenarios)  # rule scenarios too
    anomalous = sum(scenarios[s] for s in ANOMALY_SCENARIOS)
    assert anomalous < 0.12 * run.summary.tasks
    for lab in run.labels:
        if lab["scenario"] not in ANOMALY_SCENARIOS:
            continue
        task = run.tasks[lab["task_id"]]
        assert {"start", "end"} <= task.keys() and task["end"]["status"] == "completed", lab
        assert task["agent_id"] == lab["agent_id"] and "approval" not in task
        assert lab["credential_source_id"] is None and lab["note"]
        assert run.spans[lab["task_id"]], lab
    assert len({lab["task_id"] for lab in run.labels if lab["scenario"] in ANOMALY_SCENARIOS}) == (
        anomalous
    )


def test_anomaly_tasks_get_and_revoke_their_credentials(anomaly_run: Run) -> None:
    """JIT hygiene as usual: a credential issued for the task; a Vault token revoked at its end."""
    run = anomaly_run
    logins = {
        e["response"]["auth"]["metadata"]["task_id"]: e["response"]["auth"]["client_token"]
        for _, e in run.vault
        if e["type"] == "response" and e["request"]["path"] == "auth/approle/login"
    }
    sessions = {
        SESSION_RE.match(r["requestParameters"]["roleSessionName"])["task_id"]
        for _, r in run.cloudtrail
        if r["eventName"] == "AssumeRole" and r.get("responseElements")
    }
    static_keys = {  # agents with an IAM user, whose tasks sometimes use its static key instead
        r["requestParameters"]["userName"].removeprefix("svc-")
        for _, r in run.cloudtrail
        if r["eventName"] == "CreateAccessKey"
    }
    revoked = 0
    for lab in run.labels:
        if lab["scenario"] not in ANOMALY_SCENARIOS:
            continue
        if lab["task_id"] in logins:
            assert _is_revoked(run, logins[lab["task_id"]]), lab
            revoked += 1
        else:
            assert lab["task_id"] in sessions or lab["agent_id"] in static_keys, lab
    assert revoked


def test_read_burst_tasks_read_far_more_than_usual(anomaly_run: Run) -> None:
    run = anomaly_run
    bursts = {lab["task_id"] for lab in _labelled(run, "read_burst")}
    ordinary = sorted(len(v) for k, v in run.spans.items() if k not in bursts)
    median = ordinary[len(ordinary) // 2]
    for task_id in bursts:
        names = [s["a"]["gen_ai.tool.name"] for s in run.spans[task_id]]
        assert len(names) >= 3 * median, (task_id, len(names), median)
        assert not {"send_email", "slack_post", "http_post", "share_document"} & set(names)
        assert len({s["a"].get("mcp.server.name") for s in run.spans[task_id]} - {None}) <= 4


def test_unusual_combinations_are_foreign_reads_no_role_uses_together(anomaly_run: Run) -> None:
    role_sets = [_role_tools(r.name) for r in sim_module._ROLES]
    for lab in _labelled(anomaly_run, "unusual_tool_combination"):
        spans = anomaly_run.spans[lab["task_id"]]
        tools = {_tool_key(s) for s in spans}
        assert 3 <= len(tools) <= 5
        assert not tools & _role_tools(_role_of(anomaly_run, lab["agent_id"]))
        assert not any(tools <= role for role in role_sets)
        assert not {s["a"]["gen_ai.tool.name"] for s in spans} & WRITE_TOOLS
        assert len({s["a"].get("mcp.server.name") for s in spans} - {None}) <= 4


def test_off_hours_tasks_start_at_night_and_read_in_bulk(anomaly_run: Run) -> None:
    for lab in _labelled(anomaly_run, "off_hours_bulk_access"):
        start = _ts(anomaly_run.tasks[lab["task_id"]]["start"]["ts"])
        assert 0 <= start.hour <= 4, lab
        spans = anomaly_run.spans[lab["task_id"]]
        args = {json.dumps(s["a"]["gen_ai.tool.call.arguments"]) for s in spans}
        assert len(spans) >= 8 and len(args) >= 6  # many distinct targets
        assert not {s["a"]["gen_ai.tool.name"] for s in spans} & (WRITE_TOOLS | {"send_email"})


def _sends(run: Run, task_id: str) -> list[str]:
    """The arguments (as text) of a task's sends that leave the organisation."""
    out = []
    for s in run.spans[task_id]:
        if s["a"]["gen_ai.tool.name"] in ("send_email", "http_post"):
            args = json.dumps(s["a"]["gen_ai.tool.call.arguments"])  # JSON text or a kvlist
            if "acme.example" not in args and ".example.com" not in args:
                out.append(args)
    return out


def test_slow_exfiltration_campaigns_share_agent_and_destination(anomaly_run: Run) -> None:
    run = anomaly_run
    campaigns: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lab in _labelled(run, "slow_exfiltration"):
        campaigns[CAMPAIGN_RE.search(lab["note"])["id"]].append(lab)
    assert campaigns
    for labs in campaigns.values():
        first = CAMPAIGN_RE.search(labs[0]["note"])
        assert len(labs) == int(first["n"]) >= 6
        assert len({lab["agent_id"] for lab in labs}) == 1
        starts = [_ts(run.tasks[lab["task_id"]]["start"]["ts"]) for lab in labs]
        assert starts == sorted(starts) and starts[-1] - starts[0] > timedelta(hours=6)
        for lab in labs:
            sends = _sends(run, lab["task_id"])
            assert len(sends) == 1 and first["dest"] in sends[0], lab
            reads = [
                s["a"]
                for s in run.spans[lab["task_id"]]
                if s["a"]["gen_ai.tool.name"] not in WRITE_TOOLS | {"send_email"}
            ]
            assert not re.search(r"secret|customer|payment|finance", json.dumps(reads)), lab


def test_role_drift_tasks_use_tools_outside_the_agent_role(anomaly_run: Run) -> None:
    labs = _labelled(anomaly_run, "role_drift")
    assert len(labs) >= 2
    for lab in labs:
        own = _role_tools(_role_of(anomaly_run, lab["agent_id"]))
        tools = {_tool_key(s) for s in anomaly_run.spans[lab["task_id"]]}
        assert tools - own - set(sim_module._RARE_TOOLS), lab
    # The drift rises: the drifting agent's later tasks drift more often than its earlier ones.
    agent = labs[0]["agent_id"]
    drifted = {lab["task_id"] for lab in labs}
    since = re.search(r"since (\S+)", labs[0]["note"])[1]
    after = sorted(
        (_ts(t["start"]["ts"]), tid)
        for tid, t in anomaly_run.tasks.items()
        if t["agent_id"] == agent and _ts(t["start"]["ts"]) >= _ts(since)
    )
    half = len(after) // 2
    early = sum(tid in drifted for _, tid in after[:half])
    late = sum(tid in drifted for _, tid in after[half:])
    assert late >= early


def test_cli_simulate_anomalies_flag(tmp_path: Path) -> None:
    args = ["simulate", "--out", str(tmp_path), "--seed", "3", "--actions", "1200"]
    assert cli_main([*args, "--anomalies"]) == 0
    labels = [json.loads(ln) for ln in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert set(ANOMALY_SCENARIOS) <= {lab["scenario"] for lab in labels}


def test_no_shipped_rule_fires_on_anomaly_tasks(
    anomaly_run: Run, settings: Settings, con: duckdb.DuckDBPyConnection
) -> None:
    """They are for anomaly detection: every rule stays quiet on them. The one exception that
    may happen: egress_new_destination on a slow exfiltration campaign that began on the last
    day (the rule's window), whose destination is then new for the agent."""
    out = anomaly_run.out
    ingest_paths(con, [out / k for k in ("otlp", "vault", "cloudtrail", "native")], settings)
    run_detection(con, settings)
    rules = {
        p.name.removesuffix(".yaml")
        for p in RULES_DIR.glob("*.yaml")
        if not p.name.endswith(".cases.yaml")
    }
    assert {"connector_sprawl", "egress_new_destination", "credential_outlived_task"} <= rules
    scenario_of = {
        lab["task_id"]: lab["scenario"]
        for lab in anomaly_run.labels
        if lab["scenario"] in ANOMALY_SCENARIOS
    }
    hits = [
        (rule, scenario_of[task])
        for rule, task in con.execute("SELECT rule_id, task_id FROM findings").fetchall()
        if task in scenario_of and rule in rules
    ]
    assert all(hit == ("egress_new_destination", "slow_exfiltration") for hit in hits), hits
    assert con.execute("SELECT count(*) FROM findings").fetchone()[0]  # the rules did run
