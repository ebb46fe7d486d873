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
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import heapq
import hmac
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, TextIO

SCENARIOS: tuple[str, ...] = (
    "credential_outlived_task",
    "credential_reused_by_other_task",
    "credential_shared_across_agents",
    "leaked_credential_new_ip",
    "sensitive_read_then_egress",
    "read_write_delegate",
    "cross_system_writes",
    "connector_sprawl",
    "approval_retained_access",
)

# Share of ordinary tasks turned into a scenario instance (on top of one forced instance each).
INJECT_RATE = 0.015

# Behaviour that no rule is meant to catch (simulate(anomalies=True)): unusual for the agent or its
# peers, not a rule's pattern. Every instance is a whole ordinary-looking task (JIT credential
# issued and revoked, spans and audit records from the usual tool paths), labelled per task.
# - read_burst: the role's usual plan plus 15-45 extra reads of its own non-sensitive read tools
#   over its usual resources (about 5-12x its typical reads); no egress, no approval.
# - unusual_tool_combination: 3-5 read tools of other roles that no role uses together, in random
#   order; no writes, no egress, at most 4 MCP servers.
# - off_hours_bulk_access: 8-20 reads of the role's read tools over distinct tables, objects and
#   paths, starting 00:00-04:59 UTC; no egress.
# - slow_exfiltration: one agent's campaign of 6-15 small ordinary tasks spread over the run, each
#   with one small send to the same external host or address and no sensitive read. Only the
#   campaign's first send is to a destination new for the agent; egress_new_destination judges
#   the last day only, so it fires on campaign tasks there only if the campaign started that day
#   (campaigns start in the first half of the run).
# - role_drift: from some point on, an agent runs another role's plan (its tools and systems,
#   without its egress; the agent's own credential) with a probability rising to the run's end.
ANOMALY_SCENARIOS: tuple[str, ...] = (
    "read_burst",
    "unusual_tool_combination",
    "off_hours_bulk_access",
    "slow_exfiltration",
    "role_drift",
)

# Share of ordinary tasks that become anomaly tasks, split evenly over ANOMALY_SCENARIOS (on top
# of one forced instance each); multi-task instances (campaigns, drift) count their tasks.
ANOMALY_RATE = 0.01

_S = 1_000_000  # microseconds per second: all times are integer microseconds since the epoch
_MIN = 60 * _S
_HOUR = 3600 * _S
_DAY = 24 * _HOUR

_OTLP, _VAULT, _CLOUDTRAIL, _NATIVE = range(4)
_KIND_PATHS = (
    ("otlp", "traces-{day}.jsonl"),
    ("vault", "audit-{day}.log"),
    ("cloudtrail", "cloudtrail-{day}.json"),
    ("native", "tasks-{day}.jsonl"),
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Relative task arrival rate per UTC hour of the day, and for Saturday/Sunday.
_HOUR_WEIGHTS = (0.04,) * 6 + (0.2, 0.5) + (1.0,) * 10 + (0.5, 0.3, 0.2) + (0.08,) * 3
_WEEKEND_WEIGHT = 0.35
_WRITE_BATCH = 256 * 1024  # characters buffered per open file before a write

_dumps = json.JSONEncoder(separators=(",", ":")).encode
if json.encoder.c_make_encoder is not None:  # skip building an encoder per call: ~2x faster
    _c_encode = json.encoder.c_make_encoder(
        None, None, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )

    def _dumps(o: Any) -> str:  # noqa: F811
        return "".join(_c_encode(o, 0))


_B64_TO_ALNUM = bytes.maketrans(b"+/", b"Xq")


@dataclass(frozen=True)
class SimulationSummary:
    """What one simulation run wrote."""

    out_dir: Path
    files: tuple[str, ...]  # paths relative to out_dir, sorted
    tasks: int
    tool_actions: int  # OTLP execute_tool spans
    vault_requests: int
    vault_entries: int  # request + response lines
    cloudtrail_records: int
    task_events: int  # native task lines
    scenarios: dict[str, int] = field(default_factory=dict)

    @property
    def actions(self) -> int:
        """Agent actions as the budget counts them: tool spans + CloudTrail records + Vault requests."""
        return self.tool_actions + self.cloudtrail_records + self.vault_requests


# --------------------------------------------------------------------------------------------
# The fleet's catalogue: tools, MCP servers, roles and the resources they touch.


@dataclass(frozen=True)
class _Tool:
    name: str  # gen_ai.tool.name
    type: str  # gen_ai.tool.type: function, extension, datastore
    effect: str  # read, write, egress, delegate
    server: str | None = None  # MCP server name
    latency_ms: tuple[int, int] = (50, 800)
    attrs_json: str = ""  # the span attributes that never change, pre-rendered


def _sattr(key: str, value: str) -> str:
    """A string attribute as OTLP/JSON; value must need no JSON escaping."""
    return f'{{"key":"{key}","value":{{"stringValue":"{value}"}}}}'


def _t(key: str, ttype: str, effect: str, latency: tuple[int, int] = (50, 800)) -> _Tool:
    server, _, name = key.rpartition(".")
    ttype = "extension" if server else ttype
    attrs = [
        _sattr("gen_ai.operation.name", "execute_tool"),
        _sattr("gen_ai.tool.name", name),
        _sattr("gen_ai.tool.type", ttype),
    ]
    if server:
        attrs += [_sattr("mcp.method.name", "tools/call"), _sattr("mcp.server.name", server)]
    return _Tool(name, ttype, effect, server or None, latency, ",".join(attrs))


_TOOLS: dict[str, _Tool] = {
    k: _t(k, *v)
    for k, v in {
        "web_search": ("function", "read", (400, 2500)),
        "retrieve_docs": ("datastore", "read", (80, 600)),
        "read_file": ("function", "read", (5, 80)),
        "write_file": ("function", "write", (5, 120)),
        "query_db": ("datastore", "read", (30, 1500)),
        "update_record": ("function", "write", (100, 900)),
        "create_ticket": ("function", "write", (150, 900)),
        "send_email": ("function", "egress", (200, 1200)),
        "slack_post": ("function", "write", (100, 700)),
        "http_get": ("function", "read", (80, 2000)),
        "http_post": ("function", "write", (100, 2500)),
        "share_document": ("function", "write", (150, 900)),
        "spawn_subagent": ("function", "delegate", (2000, 40000)),
        "delegate_task": ("function", "delegate", (300, 3000)),
        "get_secret": ("function", "read", (5, 60)),
        "put_secret": ("function", "write", (5, 80)),
        "s3_get_object": ("function", "read", (30, 400)),
        "s3_list_objects": ("function", "read", (30, 300)),
        "s3_put_object": ("function", "write", (40, 500)),
        "dynamodb_query": ("function", "read", (10, 120)),
        "dynamodb_put_item": ("function", "write", (10, 150)),
        "sqs_send_message": ("function", "write", (15, 150)),
        "get_aws_secret": ("function", "read", (20, 200)),
        # Rare but benign.
        "calculator": ("function", "read", (1, 10)),
        "translate_text": ("function", "read", (200, 1500)),
        "generate_chart": ("function", "read", (300, 3000)),
        # MCP tools, "<server>.<tool>".
        "github.get_pull_request": ("", "read", (150, 900)),
        "github.get_file_contents": ("", "read", (100, 800)),
        "github.search_code": ("", "read", (300, 1800)),
        "github.create_review_comment": ("", "write", (200, 1000)),
        "github.create_pull_request": ("", "write", (400, 2000)),
        "jira.get_issue": ("", "read", (150, 900)),
        "jira.search_issues": ("", "read", (200, 1500)),
        "jira.add_comment": ("", "write", (200, 900)),
        "jira.create_issue": ("", "write", (250, 1200)),
        "slack.conversations_history": ("", "read", (150, 900)),
        "slack.post_message": ("", "write", (150, 700)),
        "filesystem.read_text_file": ("", "read", (5, 60)),
        "filesystem.list_directory": ("", "read", (5, 40)),
        "filesystem.write_file": ("", "write", (5, 90)),
        "postgres.query": ("", "read", (30, 1500)),
        "confluence.search_pages": ("", "read", (200, 1500)),
        "confluence.get_page": ("", "read", (150, 900)),
        "hubspot.search_contacts": ("", "read", (200, 1200)),
        "hubspot.update_contact": ("", "write", (200, 1000)),
        "salesforce.soql_query": ("", "read", (200, 1500)),
        "pagerduty.get_incident": ("", "read", (150, 800)),
        "sentry.get_issue_details": ("", "read", (150, 900)),
        "gdrive.search_files": ("", "read", (200, 1200)),
        "linear.list_issues": ("", "read", (200, 900)),
        "linear.create_issue": ("", "write", (250, 1000)),
        "notion.search": ("", "read", (200, 1200)),
        "notion.create_page": ("", "write", (250, 1200)),
    }.items()
}
_MCP_SERVERS: tuple[str, ...] = tuple(dict.fromkeys(t.server for t in _TOOLS.values() if t.server))
# The first read-only tool of each MCP server (every server has one).
_MCP_READ_TOOL = {
    s: next(k for k, t in _TOOLS.items() if t.server == s and t.effect == "read")
    for s in _MCP_SERVERS
}
_AWS_TOOLS = frozenset(
    (
        "s3_get_object",
        "s3_list_objects",
        "s3_put_object",
        "dynamodb_query",
        "dynamodb_put_item",
        "sqs_send_message",
        "get_aws_secret",
    )
)
_RARE_TOOLS = ("calculator", "translate_text", "generate_chart")


@dataclass(frozen=True)
class _Step:
    options: tuple[str, ...]  # one is chosen at random
    p: float = 1.0  # probability the step happens at all
    reps: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class _Role:
    name: str
    cred: str  # "vault" or "aws": where the task's JIT credential comes from
    steps: tuple[_Step, ...]
    weight: float  # relative share of the fleet
    approval_p: float  # share of tasks a human approves
    policies: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()  # Vault KV paths or Secrets Manager ids it reads
    db: str = "appdb"
    tables: tuple[str, ...] = ("orders",)
    db_creds: str | None = None  # Vault dynamic database role
    buckets: tuple[str, ...] = ()
    write_bucket: str = "acme-agent-scratch"
    record_system: str = "salesforce"
    channels: tuple[str, ...] = ("#agents",)
    queries: tuple[str, ...] = ("status",)


_ROLES: tuple[_Role, ...] = (
    _Role(
        "support-triage",
        "vault",
        (
            _Step(("jira.get_issue", "jira.search_issues"), 0.9),
            _Step(("retrieve_docs",), 0.9, (1, 3)),
            _Step(("confluence.search_pages",), 0.25),
            _Step(("get_secret",), 0.35),
            _Step(("query_db",), 0.6, (1, 2)),
            _Step(("web_search",), 0.2),
            _Step(("jira.add_comment", "jira.add_comment", "create_ticket"), 0.95),
            _Step(("slack_post",), 0.2),
        ),
        weight=3.0,
        approval_p=0.03,
        policies=("default", "support-read"),
        secrets=("secret/data/support/zendesk",),
        db="supportdb",
        tables=("tickets", "orders", "customers"),
        db_creds="database/creds/support-readonly",
        channels=("#support-escalations", "#support"),
        queries=("refund policy damaged item", "reset two factor", "invoice copy request"),
    ),
    _Role(
        "code-reviewer",
        "vault",
        (
            _Step(("get_secret",), 0.7),
            _Step(("github.get_pull_request",)),
            _Step(("spawn_subagent",), 0.08),
            _Step(("github.get_file_contents",), 1.0, (1, 6)),
            _Step(("github.search_code", "read_file"), 0.35),
            _Step(("web_search",), 0.25),
            _Step(("github.create_review_comment",), 0.95, (1, 4)),
            _Step(("slack_post",), 0.15),
        ),
        weight=2.0,
        approval_p=0.02,
        policies=("default", "ci-read"),
        secrets=("secret/data/ci/github-token", "secret/data/ci/sonar-token"),
        channels=("#code-review",),
        queries=("python asyncio cancel semantics", "CVE-2024-3094 xz", "sqlalchemy 2.0 migration"),
    ),
    _Role(
        "data-analyst",
        "aws",
        (
            _Step(("retrieve_docs",), 0.5),
            _Step(("s3_list_objects",), 0.6),
            _Step(("s3_get_object",), 1.0, (1, 4)),
            _Step(("query_db", "postgres.query"), 0.8, (1, 3)),
            _Step(("dynamodb_query",), 0.25),
            _Step(("generate_chart",), 0.03),
            _Step(("write_file", "s3_put_object"), 0.75),
            _Step(("share_document", "slack_post"), 0.45),
        ),
        weight=2.0,
        approval_p=0.03,
        db="warehouse",
        tables=("events", "orders", "sessions", "marketing_spend"),
        buckets=("acme-analytics-lake", "acme-analytics-lake", "acme-finance-reports"),
        write_bucket="acme-analytics-scratch",
        channels=("#analytics",),
        queries=("weekly active users definition", "churn cohort method"),
    ),
    _Role(
        "devops",
        "aws",
        (
            _Step(("jira.get_issue", "pagerduty.get_incident", "sentry.get_issue_details"), 0.8),
            _Step(("delegate_task",), 0.05),
            _Step(("github.get_file_contents",), 0.9, (1, 3)),
            _Step(("filesystem.list_directory", "filesystem.read_text_file"), 0.5),
            _Step(("get_aws_secret",), 0.5),
            _Step(("http_get",), 0.5),
            _Step(("s3_get_object",), 0.3),
            _Step(("http_post", "sqs_send_message", "github.create_pull_request"), 0.75),
            _Step(("slack_post",), 0.5),
        ),
        weight=1.5,
        approval_p=0.35,
        secrets=("prod/deploy/registry-token", "prod/db/analytics-ro"),
        buckets=("acme-deploy-artifacts",),
        write_bucket="acme-deploy-artifacts",
        channels=("#deploys", "#incidents"),
        queries=("kubernetes crashloopbackoff oom", "terraform state lock"),
    ),
    _Role(
        "finance-ops",
        "vault",
        (
            _Step(("query_db",), 1.0, (1, 3)),
            _Step(("get_secret",), 0.6),
            _Step(("http_get",), 0.4),
            _Step(("calculator",), 0.1),
            _Step(("update_record",), 0.6),
            _Step(("put_secret", "create_ticket"), 0.15),
            _Step(("send_email",), 0.4),
        ),
        weight=1.0,
        approval_p=0.35,
        policies=("default", "finance-ops"),
        secrets=("secret/data/payments/api", "secret/data/finance/erp"),
        db="ledger",
        tables=("invoices", "ledger_entries", "payment_methods", "vendors"),
        db_creds="database/creds/finance-readonly",
        record_system="netsuite",
        channels=("#finance-ops",),
        queries=("ifrs 15 revenue recognition", "vat reverse charge eu"),
    ),
    _Role(
        "sales-outreach",
        "vault",
        (
            _Step(("web_search",), 1.0, (1, 3)),
            _Step(("hubspot.search_contacts",), 0.9, (1, 2)),
            _Step(("retrieve_docs",), 0.5),
            _Step(("translate_text",), 0.02),
            _Step(("send_email",), 0.9, (1, 3)),
            _Step(("hubspot.update_contact",), 0.7),
        ),
        weight=1.5,
        approval_p=0.02,
        policies=("default", "sales"),
        record_system="hubspot",
        channels=("#sales",),
        queries=("northwind traders funding", "contoso head of data", "fabrikam expansion"),
    ),
)

_INTERNAL_DOMAIN = "acme.example"
_EXTERNAL_MAIL = ("gmail.com", "proton.me", "outlook.com", "mail.ru")
_EXFIL_URLS = (
    "https://webhook.site/{id}",
    "https://pastebin.com/api/api_post.php",
    "https://transfer.sh/upload/{id}",
    "https://collector.data-sync.io/v1/ingest/{id}",
)
_SENSITIVE = {
    "vault_secret": "secret/data/payments/api",
    "table": "customers",
    "bucket": "acme-customer-exports",
    "aws_secret": "prod/payments/stripe-live-key",
}
_APPROVERS = ("m.chen@acme.example", "s.okafor@acme.example", "l.garcia@acme.example")
_AGENT_NAMES = (
    "atlas",
    "beacon",
    "cobalt",
    "delta",
    "ember",
    "falcon",
    "granite",
    "harbor",
    "iris",
    "juniper",
    "kestrel",
    "lumen",
    "meridian",
    "nova",
    "orbit",
    "pylon",
    "quartz",
    "raven",
    "sierra",
    "tundra",
)
_MODELS = ("gpt-4o-2024-08-06", "claude-sonnet-4-5", "gemini-2.5-pro", "gpt-4.1-mini")
_LEAK_NETS = ("203.0.113.", "198.51.100.", "192.0.2.")
_LEAK_UAS = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016 exe/x86_64.ubuntu.22 prompt/off",
    "curl/8.5.0",
    "python-requests/2.31.0",
)
_DENIED_VAULT = "1 error occurred:\n\t* permission denied\n\n"

# For ANOMALY_SCENARIOS. Tools the shipped catalog classes as egress (a send, a post, a share).
_EGRESS_TOOLS = frozenset(
    ("send_email", "slack_post", "http_post", "share_document", "sqs_send_message")
)
# Reads that are sensitive by nature, or whose arguments may be (a payments URL, "AWS_SECRET").
_SECRET_READS = frozenset(("get_secret", "get_aws_secret", "http_get", "github.search_code"))
# Words that make chainwatch's classifier call a read sensitive (sql/classify_actions.sql).
_SENSITIVE_WORDS = (
    "secret",
    "password",
    "credential",
    "customer",
    "pii",
    "payroll",
    "salary",
    "ssn",
    "finance",
    "bank",
    "payment",
    "medical",
    "confidential",
    "private",
)
# External endpoints of slow exfiltration campaigns: bland names, outside the organisation.
_DRIP_HOSTS = (
    "api.metricsync.io",
    "hooks.statusrelay.net",
    "ingest.logbridge.app",
    "sync.notes-backup.com",
)
_ROLE_TOOLS = {r.name: frozenset(k for s in r.steps for k in s.options) for r in _ROLES}
# Every read tool some role uses, plus the rare benign ones: what an odd combination draws from.
_READ_POOL = tuple(
    dict.fromkeys(
        [
            *(
                k
                for r in _ROLES
                for s in r.steps
                for k in s.options
                if _TOOLS[k].effect == "read" and k not in _SECRET_READS
            ),
            *_RARE_TOOLS,
        ]
    )
)


def _plain(names: tuple[str, ...]) -> tuple[str, ...]:
    """The names (tables, buckets) that carry no sensitive word."""
    return tuple(n for n in dict.fromkeys(names) if not any(w in n for w in _SENSITIVE_WORDS))


def _typical_reads(role: _Role) -> float:
    """Expected read tool calls in one ordinary task of the role."""
    total = 0.0
    for step in role.steps:
        share = sum(_TOOLS[k].effect == "read" for k in step.options) / len(step.options)
        total += step.p * (step.reps[0] + step.reps[1]) / 2 * share
    return total


# --------------------------------------------------------------------------------------------
# Time formatting without datetime objects on the hot path.


class _Clock:
    def __init__(self) -> None:
        self._days: dict[int, tuple[str, date]] = {}

    def _day(self, d: int) -> tuple[str, date]:
        hit = self._days.get(d)
        if hit is None:
            day = date(1970, 1, 1) + timedelta(days=d)
            hit = self._days[d] = (day.isoformat(), day)
        return hit

    def day_str(self, t: int) -> str:
        return self._day(t // _DAY)[0]

    def iso(self, t: int, digits: int = 6) -> str:
        """RFC 3339 in UTC with 6 (Vault), 3 (native) or 0 (CloudTrail) fraction digits."""
        d, r = divmod(t, _DAY)
        sec, us = divmod(r, _S)
        h, rem = divmod(sec, 3600)
        m, s = divmod(rem, 60)
        base = f"{self._day(d)[0]}T{h:02d}:{m:02d}:{s:02d}"
        if digits == 6:
            return f"{base}.{us:06d}Z"
        if digits == 3:
            return f"{base}.{us // 1000:03d}Z"
        return base + "Z"

    def aws_human(self, t: int, comma: bool) -> str:
        """CloudTrail's non-ISO dates: 'Oct 2, 2019 11:12:29 PM' or 'Nov 30, 2024, 8:43:17 PM'."""
        d, r = divmod(t, _DAY)
        day = self._day(d)[1]
        sec = r // _S
        h, rem = divmod(sec, 3600)
        m, s = divmod(rem, 60)
        sep = ", " if comma else " "
        hour12 = h % 12 or 12
        ampm = "PM" if h >= 12 else "AM"
        return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}{sep}{hour12}:{m:02d}:{s:02d} {ampm}"


# --------------------------------------------------------------------------------------------
# Output: per-kind, per-day files fed in time order from a heap.


class _DayFile:
    """One output file; lines are batched because many small writes are the slow part."""

    def __init__(self, path: Path, kind: int, compress: bool) -> None:
        self.kind = kind
        self._raw = open(path, "wb")
        # mtime=0 and no file name in the gzip header keep the bytes identical run to run.
        self._stream: BinaryIO = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
            if compress
            else self._raw
        )
        self._buf: list[str] = ['{"Records":['] if kind == _CLOUDTRAIL else []
        self._size = 0
        self._first = True

    def write(self, line: str) -> None:
        buf = self._buf
        if self.kind == _CLOUDTRAIL:
            buf.append("\n" if self._first else ",\n")
            self._first = False
        buf.append(line)
        if self.kind != _CLOUDTRAIL:
            buf.append("\n")
        self._size += len(line)
        if self._size > _WRITE_BATCH:
            self._drain()

    def _drain(self) -> None:
        self._stream.write("".join(self._buf).encode("utf-8"))
        self._buf.clear()
        self._size = 0

    def close(self) -> None:
        if self.kind == _CLOUDTRAIL:
            self._buf.append("\n]}\n")
        self._drain()
        self._stream.close()
        self._raw.close()


class _Sinks:
    """Writes lines in time order per kind, one file per UTC day.

    Every line is pushed with a time at or after the start of the task being generated, and tasks
    are generated in start order; so a line can be written once the next task starts after it.
    """

    def __init__(self, out: Path, gzip_cloudtrail: bool) -> None:
        self._out = out
        self._clock = _Clock()
        self._gzip = gzip_cloudtrail
        self._heap: list[tuple[int, int, int, str]] = []
        self._seq = 0
        self._current: list[_DayFile | None] = [None, None, None, None]
        self._current_day = [-1, -1, -1, -1]
        self.files: list[str] = []
        self._made: set[tuple[int, int]] = set()
        for sub, _ in _KIND_PATHS:
            (out / sub).mkdir(parents=True, exist_ok=True)

    def push(self, kind: int, t: int, line: str) -> None:
        heapq.heappush(self._heap, (t, self._seq, kind, line))
        self._seq += 1

    def flush(self, until: int | None = None) -> None:
        heap = self._heap
        pop = heapq.heappop
        while heap and (until is None or heap[0][0] < until):
            t, _, kind, line = pop(heap)
            day = t // _DAY
            if day != self._current_day[kind]:
                self._open(kind, day)
            self._current[kind].write(line)  # type: ignore[union-attr]

    def _path(self, kind: int, day: int) -> Path:
        sub, pattern = _KIND_PATHS[kind]
        name = pattern.format(day=self._clock.day_str(day * _DAY))
        if kind == _CLOUDTRAIL and self._gzip:
            name += ".gz"
        return self._out / sub / name

    def _open(self, kind: int, day: int) -> None:
        current = self._current[kind]
        if current is not None:
            current.close()
        path = self._path(kind, day)
        self._current[kind] = _DayFile(path, kind, self._gzip and kind == _CLOUDTRAIL)
        self._current_day[kind] = day
        self._made.add((kind, day))
        self.files.append(path.relative_to(self._out).as_posix())

    def close(self, days: range) -> None:
        """Flush everything and make sure every kind has a (possibly empty) file for each day."""
        self.flush()
        for kind in range(4):
            current = self._current[kind]
            if current is not None:
                current.close()
                self._current[kind] = None
            for day in days:
                if (kind, day) not in self._made:
                    path = self._path(kind, day)
                    _DayFile(path, kind, self._gzip and kind == _CLOUDTRAIL).close()
                    self.files.append(path.relative_to(self._out).as_posix())


class _NullSinks(_Sinks):
    """Discards everything: used to measure the average task size before the real run."""

    def __init__(self) -> None:
        self.files = []

    def push(self, kind: int, t: int, line: str) -> None:
        pass

    def flush(self, until: int | None = None) -> None:
        pass


# --------------------------------------------------------------------------------------------
# Fleet state.


@dataclass
class _Agent:
    agent_id: str
    name: str
    role: _Role
    service: str
    version: str
    ips: tuple[str, ...]
    user_agent: str  # JSON-encoded
    entity_id: str
    instance_id: str
    mcp: tuple[str, ...]
    model: str
    iam_user: str | None = None
    legacy_key: _Cred | None = None
    legacy_until: int = 0
    runtime_day: int = -1
    runtime_identity: str = ""
    resource_json: str = ""  # OTLP resource block, pre-rendered
    root_attrs_json: str = ""  # the root span attributes that never change, pre-rendered

    def __post_init__(self) -> None:
        resource = [
            _sattr("service.name", self.service),
            _sattr("service.version", self.version),
            _sattr("service.instance.id", self.instance_id),
        ]
        self.resource_json = '{"attributes":[' + ",".join(resource) + "]}"
        servers = _dumps({"arrayValue": {"values": [{"stringValue": m} for m in self.mcp]}})
        self.root_attrs_json = ",".join(
            [
                _sattr("gen_ai.operation.name", "invoke_agent"),
                _sattr("gen_ai.agent.id", self.agent_id),
                _sattr("gen_ai.agent.name", self.name),
                _sattr("gen_ai.agent.version", self.version),
                _sattr("gen_ai.request.model", self.model),
                '{"key":"chainwatch.agent.mcp_servers","value":' + servers + "}",
            ]
        )


@dataclass
class _Cred:
    ns: str  # "vault" or "aws"
    source_id: str  # HMAC'd Vault client token, or the ASIA/AKIA access key id
    owner: _Agent
    task_id: str | None
    issued: int
    expires: int
    accessor: str = ""  # Vault: HMAC'd accessor
    auth_json: str = ""  # Vault: the request entries' "auth" block, serialised once
    identity_json: str = ""  # AWS: the "userIdentity" block, serialised once


@dataclass
class _Task:
    task_id: str
    agent: _Agent
    start: int
    now: int
    trace_id: str
    root_id: str
    spans: list[str]  # rendered execute_tool spans
    tag_spans: bool
    slow: float = 1.0  # think-time multiplier (long tasks)
    cred: _Cred | None = None
    borrowed: _Cred | None = None  # another task's credential used on purpose (scenarios)
    leases: list[str] = field(default_factory=list)
    mcp_sessions: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    role: _Role | None = None  # whose plan and resources, when not the agent's own (role_drift)


@dataclass
class _Followup:
    """A task scheduled by a scenario instance, run when its start time comes."""

    agent: _Agent
    cred: _Cred
    mode: str  # "reuse": uses cred instead of its own; "share": its own plus cred


@dataclass
class _Drift:
    """An agent's role drift (role_drift): since when, and how likely its next task drifts."""

    role: _Role  # whose plan the drifted tasks run
    since: int
    first: int  # arrival index when it began
    p_max: float  # the chance a task drifts, reached at the end of the run
    credit: float  # summed chances not yet spent on a drifted task


@dataclass
class _Anomaly:
    """One task of an ANOMALY_SCENARIOS instance, run now or when its start time comes."""

    kind: str
    agent: _Agent
    note: str
    role: _Role | None = None  # role_drift: the role whose plan the task runs
    egress: tuple[str, dict[str, Any]] | None = None  # slow_exfiltration: the campaign's send


class _Simulator:
    """The fleet, its RNG and counters; generates one task at a time into the sinks."""

    def __init__(
        self, seed: int, n_agents: int, start: date, sinks: _Sinks, labels: TextIO | None
    ) -> None:
        self.rng = random.Random(seed)
        self._rand = self.rng.random
        self.clock = _Clock()
        self.sinks = sinks
        self.labels = labels
        self.t0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * _S
        self._salt = hashlib.sha256(f"chainwatch-sim-audit-salt-{seed}".encode()).digest()
        self.account = str(self.rng.randrange(10**11, 10**12))
        self.tool_actions = self.vault_requests = self.vault_entries = 0
        self.cloudtrail_records = self.task_events = self.tasks = 0
        self.scenarios: dict[str, int] = {}
        self.run_end = 2**62  # set by simulate(); after-effects of scenarios stay before it
        self._task_seq = 0
        self._assumed = self._assume_denied = 0
        self._scheduled: list[tuple[int, int, _Followup | _Anomaly]] = []
        self._sched_seq = 0
        self._role_ids = {r.name: "AROA" + self._upper(17) for r in _ROLES}
        self._approle_ids = {r.name: self._hmac(self._uuid()) for r in _ROLES}
        self.agents = [self._make_agent(i) for i in range(1, n_agents + 1)]
        self._cum_weights: list[float] = []
        total = 0.0
        for a in self.agents:
            total += a.role.weight
            self._cum_weights.append(total)

    # ---- small RNG helpers -----------------------------------------------------------------

    def _ri(self, lo: int, hi: int) -> int:
        return lo + int(self._rand() * (hi - lo + 1))

    def _pick(self, seq: tuple | list) -> Any:
        return seq[int(self._rand() * len(seq))]

    def _hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def _chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def _b62(self, n: int) -> str:
        """n letters and digits (base64 with its two symbols mapped to letters: fast)."""
        raw = base64.b64encode(self.rng.randbytes((n * 3 + 3) // 4))
        return raw[:n].translate(_B64_TO_ALNUM).decode()

    def _upper(self, n: int) -> str:
        """n characters of A-Z and 2-7, the alphabet of AWS access key ids."""
        return base64.b32encode(self.rng.randbytes((n * 5 + 7) // 8))[:n].decode()

    def _uuid(self) -> str:
        h = self._hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _hmac(self, raw: str) -> str:
        return "hmac-sha256:" + hmac.new(self._salt, raw.encode(), hashlib.sha256).hexdigest()

    # ---- fleet -------------------------------------------------------------------------------

    def _make_agent(self, i: int) -> _Agent:
        # Roles are dealt round-robin first so small fleets still cover every role.
        role = (
            _ROLES[i - 1]
            if i <= len(_ROLES)
            else self.rng.choices(_ROLES, weights=[r.weight for r in _ROLES])[0]
        )
        subnet = 20 + _ROLES.index(role)
        ips = tuple(
            f"10.{subnet}.{self._ri(0, 255)}.{self._ri(2, 254)}" for _ in range(self._ri(1, 3))
        )
        py = self._pick(("3.11.9", "3.12.4"))
        boto = self._pick(("1.34.131", "1.35.24"))
        ua = (
            f"Boto3/{boto} md/Botocore#{boto} ua/2.0 os/linux#6.1.0 md/arch#x86_64 "
            f"lang/python#{py} md/pyimpl#CPython cfg/retry-mode#standard Botocore/{boto}"
        )
        servers = {t.server for s in role.steps for k in s.options if (t := _TOOLS[k]).server}
        return _Agent(
            agent_id=f"agent-{i:03d}",
            name=f"{role.name}-{_AGENT_NAMES[(i - 1) % len(_AGENT_NAMES)]}"
            + (f"-{i}" if i > len(_AGENT_NAMES) else ""),
            role=role,
            service=f"{role.name}-agent",
            version=f"1.{self._ri(0, 9)}.{self._ri(0, 20)}",
            ips=ips,
            user_agent=_dumps(ua),
            entity_id=self._uuid(),
            instance_id="i-0" + self._hex(16),
            mcp=tuple(sorted(servers)),
            model=self._pick(_MODELS),
        )

    def _pick_agent(self) -> _Agent:
        x = self._rand() * self._cum_weights[-1]
        lo, hi = 0, len(self._cum_weights) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._cum_weights[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        return self.agents[lo]

    def setup_legacy_keys(self, run_end: int) -> None:
        """A few agent IAM users with long-lived AKIA keys: created, used, some deleted."""
        aws_agents = [a for a in self.agents if a.role.cred == "aws"][:2]
        for n, agent in enumerate(aws_agents):
            agent.iam_user = f"svc-{agent.agent_id}"
            created = self.t0 + self._ri(1, 5) * _HOUR + self._ri(0, 3599) * _S
            key = "AKIA" + self._upper(16)
            identity = _dumps(
                {
                    "type": "IAMUser",
                    "principalId": "AIDA" + self._upper(17),
                    "arn": f"arn:aws:iam::{self.account}:user/{agent.iam_user}",
                    "accountId": self.account,
                    "accessKeyId": key,
                    "userName": agent.iam_user,
                }
            )
            agent.legacy_key = _Cred(
                "aws", key, agent, None, created, 2**62, identity_json=identity
            )
            agent.legacy_until = 2**62
            response = {
                "accessKey": {
                    "accessKeyId": key,
                    "createDate": self.clock.aws_human(created, comma=self._rand() < 0.5),
                    "status": "Active",
                    "userName": agent.iam_user,
                }
            }
            self._admin_call(created, "CreateAccessKey", {"userName": agent.iam_user}, response)
            if n == 0:  # the first key is rotated out near the end of the run; the second stays
                off = max(created + _HOUR, run_end - self._ri(3, 8) * _HOUR)
                agent.legacy_until = off
                params = {"userName": agent.iam_user, "accessKeyId": key}
                self._admin_call(off, "UpdateAccessKey", {**params, "status": "Inactive"}, None)
                self._admin_call(off + 20 * _MIN, "DeleteAccessKey", params, None)

    def _admin_call(
        self, t: int, name: str, params: dict[str, Any], response: dict[str, Any] | None
    ) -> None:
        """An IAM call by the platform administrator, from the console."""
        self._ct(
            t,
            self._admin_identity(),
            "iam.amazonaws.com",
            name,
            params,
            response,
            "198.51.100.77",
            '"console.amazonaws.com"',
            read_only=False,
            management=True,
        )

    def _admin_identity(self) -> str:
        return _dumps(
            {
                "type": "IAMUser",
                "principalId": "AIDAPLATFORMADMIN0001",
                "arn": f"arn:aws:iam::{self.account}:user/platform-admin",
                "accountId": self.account,
                "accessKeyId": "ASIAPLATFORMADMIN001",
                "userName": "platform-admin",
                "sessionContext": {
                    "attributes": {
                        "creationDate": "2026-01-05T08:00:00Z",
                        "mfaAuthenticated": "true",
                    }
                },
            }
        )

    def _runtime_identity(self, agent: _Agent, t: int) -> str:
        """The agent runtime's own instance-role session, rotated daily, which calls AssumeRole."""
        day = t // _DAY
        if agent.runtime_day != day:
            agent.runtime_day = day
            role = "agent-runtime"
            agent.runtime_identity = _dumps(
                {
                    "type": "AssumedRole",
                    "principalId": f"AROARUNTIME{agent.agent_id[-3:]}EXAMPLE:{agent.instance_id}",
                    "arn": f"arn:aws:sts::{self.account}:assumed-role/{role}/{agent.instance_id}",
                    "accountId": self.account,
                    "accessKeyId": "ASIA" + self._upper(16),
                    "sessionContext": {
                        "sessionIssuer": {
                            "type": "Role",
                            "principalId": f"AROARUNTIME{agent.agent_id[-3:]}EXAMPLE",
                            "arn": f"arn:aws:iam::{self.account}:role/{role}",
                            "accountId": self.account,
                            "userName": role,
                        },
                        "attributes": {
                            "creationDate": self.clock.iso(day * _DAY, 0),
                            "mfaAuthenticated": "false",
                        },
                    },
                }
            )
        return agent.runtime_identity

    # ---- emitters ------------------------------------------------------------------------

    def _vault(
        self,
        t: int,
        cred: _Cred | None,
        ip: str,
        operation: str,
        path: str,
        data: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        denied: bool = False,
    ) -> int:
        """One Vault request and its response; returns the response time."""
        mount_type, mount_point = _vault_mount(path)
        data_json = f',"data":{_dumps(data)}' if data else ""
        req_json = (
            f'{{"id":"{self._uuid()}","operation":"{operation}","mount_type":"{mount_type}",'
            f'"mount_point":"{mount_point}","client_token":"{cred.source_id if cred else ""}",'
            f'"client_token_accessor":"{cred.accessor if cred else ""}",'
            f'"namespace":{{"id":"root"}},"path":"{path}"{data_json},'
            f'"remote_address":"{ip}","remote_port":{self._ri(32768, 60999)}}}'
        )
        auth = cred.auth_json if cred else '{"token_type":"default"}'
        clock = self.clock
        err = ',"error":"permission denied"' if denied else ""
        self.sinks.push(
            _VAULT,
            t,
            f'{{"time":"{clock.iso(t)}","type":"request","auth":{auth},"request":{req_json}{err}}}',
        )
        t2 = t + self._ri(300, 25000)
        if denied:
            tail = f',"error":{_dumps(_DENIED_VAULT)}'
        else:
            body = f'{{"mount_type":"{mount_type}","mount_point":"{mount_point}"'
            body += "," + _dumps(response)[1:] if response else "}"
            tail = f',"response":{body}'
        self.sinks.push(
            _VAULT,
            t2,
            f'{{"time":"{clock.iso(t2)}","type":"response","auth":{auth},"request":{req_json}{tail}}}',
        )
        self.vault_requests += 1
        self.vault_entries += 2
        return t2

    def _ct(
        self,
        t: int,
        identity: str,
        source: str,
        name: str,
        params: dict[str, Any] | None,
        response: dict[str, Any] | None,
        ip: str,
        user_agent: str,
        *,
        region: str = "us-east-1",
        read_only: bool = True,
        management: bool = False,
        resources: list[dict[str, str]] | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """One CloudTrail record, assembled from pre-serialised parts."""
        err = f',"errorCode":"{error[0]}","errorMessage":{_dumps(error[1])}' if error else ""
        if source == "s3.amazonaws.com":
            request_id = self._upper(16)
        else:
            request_id = self._uuid()
        res = f',"resources":{_dumps(resources)}' if resources else ""
        line = (
            f'{{"eventVersion":"{"1.09" if management else "1.10"}","userIdentity":{identity},'
            f'"eventTime":"{self.clock.iso(t, 0)}","eventSource":"{source}","eventName":"{name}",'
            f'"awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":{user_agent}{err},'
            f'"requestParameters":{_dumps(params)},"responseElements":{_dumps(response)},'
            f'"requestID":"{request_id}","eventID":"{self._uuid()}",'
            f'"readOnly":{"true" if read_only else "false"}{res},"eventType":"AwsApiCall",'
            f'"managementEvent":{"true" if management else "false"},'
            f'"recipientAccountId":"{self.account}",'
            f'"eventCategory":"{"Management" if management else "Data"}"}}'
        )
        self.sinks.push(_CLOUDTRAIL, t, line)
        self.cloudtrail_records += 1

    def _native(self, t: int, event: str, task: _Task, **extra: Any) -> None:
        rec = {
            "record_type": "task",
            "event_id": self._uuid(),
            "ts": self.clock.iso(t, 3),
            "event": event,
            "task_id": task.task_id,
            "agent_id": task.agent.agent_id,
        }
        rec.update(extra)
        self.sinks.push(_NATIVE, t, _dumps(rec))
        self.task_events += 1

    def _label(self, scenario: str, task: _Task, cred: _Cred | None, note: str) -> None:
        self.scenarios[scenario] = self.scenarios.get(scenario, 0) + 1
        if self.labels is None:
            return
        rec = {
            "scenario": scenario,
            "task_id": task.task_id,
            "agent_id": task.agent.agent_id,
            "credential_source_id": cred.source_id if cred else None,
            "credential_namespace": cred.ns if cred else None,
            "note": note,
        }
        self.labels.write(_dumps(rec) + "\n")

    # ---- credentials -------------------------------------------------------------------------

    def _vault_login(self, task: _Task, t: int, ttl_s: int) -> _Cred:
        agent = task.agent
        raw_token = "hvs." + self._b62(24)  # never written: only its HMAC is
        token = self._hmac(raw_token)
        accessor = self._hmac(self._b62(24))
        policies = list(agent.role.policies)
        metadata = {
            "agent_id": agent.agent_id,
            "role_name": agent.role.name,
            "task_id": task.task_id,
        }
        issue_time = self.clock.iso(t, 0)
        new_auth = {
            "client_token": token,
            "accessor": accessor,
            "display_name": "approle",
            "policies": policies,
            "token_policies": policies,
            "metadata": metadata,
            "entity_id": agent.entity_id,
            "token_type": "service",
            "token_ttl": ttl_s,
            "token_issue_time": issue_time,
        }
        t2 = self._vault(
            t,
            None,
            agent.ips[0],
            "update",
            "auth/approle/login",
            data={
                "role_id": self._approle_ids[agent.role.name],
                "secret_id": self._hmac(self._hex(36)),
            },
            response={"auth": new_auth},
        )
        auth_json = _dumps(new_auth)  # later requests carry the same block
        cred = _Cred("vault", token, agent, task.task_id, t, t + ttl_s * _S, accessor, auth_json)
        task.now = t2
        return cred

    def _assume_role(self, task: _Task, t: int, duration_s: int) -> _Cred:
        agent = task.agent
        role = f"agent-{agent.role.name}"
        session = f"{agent.agent_id}@{task.task_id}"
        role_arn = f"arn:aws:iam::{self.account}:role/{role}"
        params: dict[str, Any] = {
            "roleArn": role_arn,
            "roleSessionName": session,
            "durationSeconds": duration_s,
        }
        if self._rand() < 0.2:
            params["tags"] = [{"key": "chainwatch:task-id", "value": task.task_id}]
        caller = self._runtime_identity(agent, t)
        resources = [{"accountId": self.account, "type": "AWS::IAM::Role", "ARN": role_arn}]
        ip = self._pick(agent.ips)
        self._assumed += 1
        # A transient denial (the runtime retries a moment later): rare, but in every run.
        if self._rand() < 0.008 or (self._assumed == 12 and not self._assume_denied):
            self._assume_denied += 1
            self._ct(
                t,
                caller,
                "sts.amazonaws.com",
                "AssumeRole",
                params,
                None,
                ip,
                agent.user_agent,
                management=True,
                resources=resources,
                error=(
                    "AccessDenied",
                    f"User: {_arn_of(caller)} is not authorized to perform: "
                    f"sts:AssumeRole on resource: {role_arn}",
                ),
            )
            t += self._ri(1, 4) * _S
        key = "ASIA" + self._upper(16)
        expires = t + duration_s * _S
        assumed_arn = f"arn:aws:sts::{self.account}:assumed-role/{role}/{session}"
        role_id = self._role_ids[agent.role.name]
        response = {
            "credentials": {
                "accessKeyId": key,
                "sessionToken": self._session_token(),
                "expiration": self.clock.aws_human(expires, comma=self._rand() < 0.5),
            },
            "assumedRoleUser": {"assumedRoleId": f"{role_id}:{session}", "arn": assumed_arn},
        }
        self._ct(
            t,
            caller,
            "sts.amazonaws.com",
            "AssumeRole",
            params,
            response,
            ip,
            agent.user_agent,
            management=True,
            resources=resources,
        )
        identity = _dumps(
            {
                "type": "AssumedRole",
                "principalId": f"{role_id}:{session}",
                "arn": assumed_arn,
                "accountId": self.account,
                "accessKeyId": key,
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": role_id,
                        "arn": role_arn,
                        "accountId": self.account,
                        "userName": role,
                    },
                    "attributes": {
                        "creationDate": self.clock.iso(t, 0),
                        "mfaAuthenticated": "false",
                    },
                },
            }
        )
        cred = _Cred("aws", key, agent, task.task_id, t, expires, identity_json=identity)
        task.now = t + self._ri(50, 400) * 1000
        return cred

    def _session_token(self) -> str:
        # Shaped like a real STS session token: base64 of a protobuf-ish blob. Fake, not a secret.
        blob = self.rng.randbytes(self._ri(270, 330))
        return "IQoJb3JpZ2luX2Vj" + base64.b64encode(blob).decode()

    def _issue(self, task: _Task, ttl_s: int, long_lived: bool = False) -> _Cred:
        """The task's JIT credential, by role; long_lived for scenarios that keep it."""
        agent = task.agent
        t = task.now + self._ri(20, 900) * 1000
        if agent.role.cred == "vault":
            return self._vault_login(task, t, ttl_s)
        if (
            not long_lived
            and agent.legacy_key is not None
            and agent.legacy_key.issued < t < agent.legacy_until
            and self._rand() < 0.2
        ):
            return agent.legacy_key
        return self._assume_role(task, t, 43200 if long_lived else ttl_s)

    def _refresh(self, task: _Task) -> None:
        """Long tasks renew their Vault token or assume the role again before it expires."""
        cred = task.cred
        if cred is None or cred.task_id != task.task_id or task.now < cred.expires - 2 * _MIN:
            return
        ttl_s = (cred.expires - cred.issued) // _S
        if cred.ns == "vault":
            t2 = self._vault(
                task.now,
                cred,
                self._pick(task.agent.ips),
                "update",
                "auth/token/renew-self",
                response={
                    "auth": {
                        "client_token": cred.source_id,
                        "accessor": cred.accessor,
                        "token_ttl": ttl_s,
                        "renewable": True,
                    }
                },
            )
            cred.issued, cred.expires = task.now, task.now + ttl_s * _S
            task.now = t2
        else:
            task.cred = self._assume_role(task, task.now, ttl_s)

    # ---- tools -------------------------------------------------------------------------------

    def _args(self, task: _Task, key: str, opts: dict[str, Any]) -> dict[str, Any]:
        """Arguments for one tool call; opts may force sensitive or external targets."""
        role = task.role or task.agent.role
        pick, ri = self._pick, self._ri
        name = _TOOLS[key].name
        if "args" in opts:
            return opts["args"]
        if key in ("web_search",):
            return {"query": pick(role.queries), "max_results": 10}
        if key == "retrieve_docs":
            return {"query": pick(role.queries), "index": f"kb-{role.name}", "top_k": ri(3, 8)}
        if key in ("read_file", "filesystem.read_text_file"):
            return {
                "path": f"/workspace/{role.name}/{pick(('notes', 'src', 'runbooks'))}/{ri(1, 400)}.md"
            }
        if key in ("write_file", "filesystem.write_file"):
            return {
                "path": f"/workspace/{role.name}/out/report-{ri(1, 9999)}.md",
                "bytes": ri(200, 90000),
            }
        if key == "filesystem.list_directory":
            return {"path": f"/workspace/{role.name}"}
        if key in ("query_db", "postgres.query"):
            table = (
                _SENSITIVE["table"]
                if opts.get("sensitive")
                else pick(opts.get("tables") or role.tables)
            )
            where = f" WHERE id = {ri(1000, 99999)}" if self._rand() < 0.6 else " LIMIT 500"
            # Text for the span's arguments; never executed.
            return {"database": role.db, "sql": f"SELECT * FROM {table}{where}"}  # noqa: S608
        if key == "update_record":
            system = opts.get("system", role.record_system)
            return {
                "system": system,
                "object": pick(("Account", "Invoice", "Case")),
                "record_id": f"{ri(10**7, 10**8)}",
                "fields": {"status": pick(("open", "reconciled", "closed"))},
            }
        if key == "create_ticket":
            return {
                "queue": pick(("support", "billing", "platform")),
                "title": "Follow-up from agent",
                "priority": pick(("low", "normal", "high")),
            }
        if key == "send_email":
            if opts.get("external"):
                to = (
                    f"{self._chars('abcdefghijklmnopqrstuvwxyz', ri(5, 10))}@{pick(_EXTERNAL_MAIL)}"
                )
            elif role.name == "sales-outreach":
                to = f"{pick(('jane', 'omar', 'li', 'maria'))}@{pick(('northwind', 'contoso', 'fabrikam'))}.example.com"
            else:
                to = f"{role.name.split('-')[0]}-team@{_INTERNAL_DOMAIN}"
            args: dict[str, Any] = {"to": [to], "subject": pick(("Summary", "Follow-up", "Report"))}
            if opts.get("external"):
                args["attachments"] = [f"{_SENSITIVE['table']}-export.csv"]
            return args
        if key == "slack_post":
            return {"channel": pick(role.channels), "text_length": ri(40, 900)}
        if key == "http_get":
            return {
                "url": pick(
                    (
                        f"https://status.internal.{_INTERNAL_DOMAIN}/api/health",
                        "https://api.github.com/repos/acme/platform/releases",
                        f"https://payments.internal.{_INTERNAL_DOMAIN}/v2/balance",
                    )
                )
            }
        if key == "http_post":
            if opts.get("external"):
                url = pick(_EXFIL_URLS).format(id=self._hex(12))
                return {"url": url, "body_bytes": ri(20000, 900000), "content_type": "text/csv"}
            return {
                "url": f"https://deploy.internal.{_INTERNAL_DOMAIN}/api/v1/releases",
                "body_bytes": ri(100, 4000),
                "content_type": "application/json",
            }
        if key == "share_document":
            return {
                "doc_id": self._hex(12),
                "share_with": f"analytics@{_INTERNAL_DOMAIN}",
                "role": "reader",
            }
        if key == "spawn_subagent":
            return {
                "agent": pick(("test-runner", "summarizer", "researcher")),
                "goal": opts.get("goal", "subtask"),
            }
        if key == "delegate_task":
            return {
                "to_agent": f"agent-{ri(1, max(1, len(self.agents))):03d}",
                "task": opts.get("goal", "follow-up"),
            }
        if key == "get_secret":
            path = (
                _SENSITIVE["vault_secret"]
                if opts.get("sensitive")
                else opts.get("path") or pick(role.secrets or ("secret/data/shared/config",))
            )
            return {"path": path}
        if key == "put_secret":
            return {"path": f"secret/data/{role.name}/state", "keys": ["checkpoint"]}
        if key in ("s3_get_object", "s3_list_objects", "s3_put_object"):
            if key == "s3_put_object":
                bucket = role.write_bucket
            elif opts.get("sensitive"):
                bucket = _SENSITIVE["bucket"]
            else:
                bucket = opts.get("bucket") or pick(
                    opts.get("buckets") or role.buckets or ("acme-analytics-lake",)
                )
            if key == "s3_list_objects":
                return {"bucket": bucket, "prefix": f"{pick(('events', 'exports', 'builds'))}/"}
            if bucket == _SENSITIVE["bucket"]:
                obj = f"exports/customers-2026-{ri(1, 10):02d}.csv"
            else:
                obj = f"{pick(('events', 'daily', 'builds'))}/part-{ri(0, 9999):05d}.parquet"
            return {"bucket": bucket, "key": obj}
        if key == "dynamodb_query":
            return {"table": pick(("feature-flags", "experiments")), "key": f"exp-{ri(1, 300)}"}
        if key == "dynamodb_put_item":
            return {"table": "agent-state", "key": f"task-{ri(1, 10**6)}"}
        if key == "sqs_send_message":
            return {
                "queue_url": f"https://sqs.us-east-1.amazonaws.com/{self.account}/deploy-events",
                "message_bytes": ri(100, 3000),
            }
        if key == "get_aws_secret":
            return {
                "secret_id": _SENSITIVE["aws_secret"]
                if opts.get("sensitive")
                else pick(role.secrets or ("prod/shared/config",))
            }
        if key.startswith("github."):
            args = {"owner": "acme", "repo": pick(("platform", "web", "billing"))}
            if name == "get_file_contents":
                args["path"] = pick(("src/api/handlers.py", "deploy/values.yaml", "README.md"))
            elif name == "search_code":
                args["q"] = pick(("retry_policy", "AWS_SECRET", "def handle_refund"))
            elif name == "create_pull_request":
                args |= {
                    "title": "Automated fix",
                    "head": f"agent/fix-{ri(1, 9999)}",
                    "base": "main",
                }
            else:
                args["pull_number"] = ri(100, 4000)
                if name == "create_review_comment":
                    args["body_chars"] = ri(40, 1200)
            return args
        if key.startswith(("jira.", "linear.")):
            args = {"issue_key": f"{pick(('SUP', 'OPS', 'FIN'))}-{ri(100, 9999)}"}
            if name == "search_issues":
                args = {
                    "jql": "project = SUP AND status = Open ORDER BY created DESC",
                    "max_results": 20,
                }
            elif name in ("add_comment", "create_issue"):
                args["body_chars"] = ri(40, 2000)
            return args
        if key.startswith("hubspot."):
            if name == "update_contact":
                return {
                    "contact_id": str(ri(10**6, 10**7)),
                    "properties": {"lifecyclestage": "lead"},
                }
            return {"query": pick(("lifecycle:lead", "company:northwind", "owner:me")), "limit": 25}
        if key.startswith("pagerduty."):
            return {"incident_id": "P" + self._upper(6)}
        if key.startswith("sentry."):
            return {"issue_id": str(ri(10**9, 10**10)), "organization": "acme"}
        if key.startswith("confluence."):
            return {"cql": f'text ~ "{pick(role.queries)}"', "space": pick(("SUP", "ENG", "FIN"))}
        if key.startswith("slack."):
            return {"channel": pick(role.channels), "limit": 50}
        if key.startswith("gdrive."):
            return {"query": pick(role.queries), "page_size": 10}
        if key.startswith("notion."):
            return {"parent_id": self._hex(32), "title": "Agent notes"}
        if key.startswith("salesforce."):
            return {"soql": "SELECT Id, Name FROM Account WHERE LastModifiedDate = TODAY"}
        if key == "calculator":
            return {"expression": f"{ri(1, 9999)} * 1.{ri(1, 25):02d}"}
        if key == "translate_text":
            return {"target_language": pick(("de", "fr", "ja")), "chars": ri(100, 3000)}
        return {"query": name.replace("_", " ")}

    def _tool(self, task: _Task, key: str, opts: dict[str, Any] | None = None) -> bool:
        """One tool call: its span, and the Vault / CloudTrail records it causes. True if it worked."""
        opts = opts or {}
        tool = _TOOLS[key]
        agent = task.agent
        self._refresh(task)
        gap = self._ri(2_000_000, 40_000_000)  # the model thinking between calls
        task.now += int(gap * task.slow) + opts.get("wait", 0)
        start = task.now
        lo, hi = tool.latency_ms
        end = start + self._ri(lo * 1000, hi * 1000)
        args = self._args(task, key, opts)
        error: str | None = None
        status_msg = ""
        cred = task.borrowed if opts.get("borrowed") else task.cred
        ip = self._pick(agent.ips)

        if (
            cred is not None
            and cred.ns == "vault"
            and key in ("get_secret", "put_secret", "query_db")
        ):
            request = self._vault_request_for(task, key, args, borrowed=bool(opts.get("borrowed")))
            if request is not None:
                op, path, data, response = request
                denied = self._rand() < 0.02
                self._vault(
                    start + self._ri(1, 5) * 1000,
                    cred,
                    ip,
                    op,
                    path,
                    data=data,
                    response=response,
                    denied=denied,
                )
                if denied:
                    error, status_msg = "PermissionDenied", "vault: permission denied"
                elif key == "query_db":
                    task.leases.append(response["secret"]["lease_id"])
        elif key in _AWS_TOOLS and cred is not None and cred.ns == "aws":
            error, status_msg = self._aws_call(
                cred, start + self._ri(5, 40) * 1000, key, args, ip, agent.user_agent
            )

        if opts.get("fail"):
            error, status_msg = "ToolExecutionError", "tool raised an exception"
        elif error is None and self._rand() < 0.02:
            error = self._pick(
                ("TimeoutError", "RateLimitError", "HTTPError", "ToolExecutionError")
            )
            status_msg = {
                "TimeoutError": "tool call timed out after 30s",
                "RateLimitError": "429 Too Many Requests",
                "HTTPError": "502 Bad Gateway",
                "ToolExecutionError": "tool raised an exception",
            }[error]
        self._span(task, tool, start, end, args, error, status_msg, retry=opts.get("retry", 0))
        task.now = end
        retryable = error and error != "PermissionDenied" and not opts.get("fail")
        if retryable and opts.get("retry", 0) < 2 and self._rand() < 0.7:
            retry_opts = dict(
                opts, args=args, retry=opts.get("retry", 0) + 1, wait=self._ri(1, 8) * _S
            )
            return self._tool(task, key, retry_opts)
        return error is None

    def _vault_request_for(
        self, task: _Task, key: str, args: dict[str, Any], borrowed: bool
    ) -> tuple[str, str, dict[str, Any] | None, dict[str, Any]] | None:
        """The Vault request a tool call makes: (operation, path, data, response), if any."""
        if key == "get_secret":
            path = args["path"]
            data = {
                "data": {"api_key": self._hmac(path)},
                "metadata": {"created_time": self._hmac(path + "/t"), "version": 3},
            }
            return "read", path, None, {"data": data}
        if key == "put_secret":
            body = {"data": {"checkpoint": self._hmac(self._hex(16))}}
            response = {
                "data": {"created_time": self._hmac(self._hex(8)), "version": self._ri(2, 90)}
            }
            return "update", args["path"], body, response
        db_role = (task.role or task.agent.role).db_creds
        if db_role is None or (task.leases and not borrowed):
            return None  # no dynamic creds, or the tool cached its lease for the rest of the task
        response = {
            "secret": {"lease_id": f"{db_role}/{self._b62(24)}"},
            "data": {"username": self._hmac(self._hex(8)), "password": self._hmac(self._hex(20))},
        }
        return "read", db_role, None, response

    def _aws_call(
        self, cred: _Cred, t: int, key: str, args: dict[str, Any], ip: str, ua: str
    ) -> tuple[str | None, str]:
        """The CloudTrail records one AWS tool call makes."""
        denied = self._rand() < 0.02
        region = "us-east-1"
        if key.startswith("s3_"):
            bucket = args["bucket"]
            host = f"{bucket}.s3.{region}.amazonaws.com"
            name = {
                "s3_get_object": "GetObject",
                "s3_list_objects": "ListObjects",
                "s3_put_object": "PutObject",
            }[key]
            if name == "ListObjects":
                params = {
                    "bucketName": bucket,
                    "Host": host,
                    "list-type": "2",
                    "prefix": args["prefix"],
                }
                resources = [{"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
            else:
                params = {"bucketName": bucket, "Host": host, "key": args["key"]}
                resources = [
                    {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{args['key']}"},
                    {
                        "accountId": self.account,
                        "type": "AWS::S3::Bucket",
                        "ARN": f"arn:aws:s3:::{bucket}",
                    },
                ]
                if name == "GetObject" and self._rand() < 0.2:
                    self._ct(
                        t,
                        cred.identity_json,
                        "s3.amazonaws.com",
                        "HeadObject",
                        params,
                        None,
                        ip,
                        ua,
                        resources=resources,
                    )
                    t += self._ri(5, 30) * 1000
            err = ("AccessDenied", "Access Denied") if denied else None
            self._ct(
                t,
                cred.identity_json,
                "s3.amazonaws.com",
                name,
                params,
                None,
                ip,
                ua,
                read_only=name != "PutObject",
                resources=resources,
                error=err,
            )
            return ("AccessDenied", "S3: Access Denied") if denied else (None, "")
        if key.startswith("dynamodb_"):
            name = "Query" if key == "dynamodb_query" else "PutItem"
            params = {"tableName": args["table"], "key": {"pk": args["key"]}}
            source, action = "dynamodb.amazonaws.com", f"dynamodb:{name}"
            resource = f"arn:aws:dynamodb:{region}:{self.account}:table/{args['table']}"
        elif key == "sqs_send_message":
            name, params = "SendMessage", {"queueUrl": args["queue_url"]}
            source, action = "sqs.amazonaws.com", "sqs:SendMessage"
            resource = f"arn:aws:sqs:{region}:{self.account}:deploy-events"
        else:
            name, params = "GetSecretValue", {"secretId": args["secret_id"]}
            source, action = "secretsmanager.amazonaws.com", "secretsmanager:GetSecretValue"
            resource = f"arn:aws:secretsmanager:{region}:{self.account}:secret:{args['secret_id']}-{self._b62(6)}"
        err = None
        if denied:
            err = (
                "AccessDenied" if name == "SendMessage" else "AccessDeniedException",
                f"User: {_arn_of(cred.identity_json)} is not authorized to perform: {action} on resource: {resource} "
                "because no identity-based policy allows the action",
            )
        self._ct(
            t,
            cred.identity_json,
            source,
            name,
            params,
            None,
            ip,
            ua,
            read_only=name in ("Query", "GetSecretValue"),
            management=name == "GetSecretValue",
            error=err,
        )
        return (err[0], f"{name}: access denied") if err else (None, "")

    def _span(
        self,
        task: _Task,
        tool: _Tool,
        start: int,
        end: int,
        args: dict[str, Any],
        error: str | None,
        status_msg: str,
        retry: int = 0,
    ) -> None:
        attrs = [tool.attrs_json, _sattr("gen_ai.tool.call.id", "call_" + self._b62(24))]
        if self._rand() < 0.15:
            value = '{"kvlistValue":' + _dumps(_kvlist(args)) + "}"
        else:
            value = '{"stringValue":' + _dumps(_dumps(args)) + "}"
        attrs.append('{"key":"gen_ai.tool.call.arguments","value":' + value + "}")
        if tool.server:
            session = task.mcp_sessions.get(tool.server)
            if session is None:
                session = task.mcp_sessions[tool.server] = self._hex(32)
            attrs.append(_sattr("mcp.session.id", session))
            rpc_id = _intval_json(self._ri(2, 400), self._rand() < 0.3)
            attrs.append('{"key":"jsonrpc.request.id","value":' + rpc_id + "}")
        if task.tag_spans:
            attrs.append(_sattr("gen_ai.agent.id", task.agent.agent_id))
            attrs.append(_sattr("chainwatch.task.id", task.task_id))
        if retry:
            attempt = _intval_json(retry, self._rand() < 0.3)
            attrs.append('{"key":"chainwatch.retry","value":{"boolValue":true}}')
            attrs.append('{"key":"chainwatch.retry.attempt","value":' + attempt + "}")
        if error:
            attrs.append(_sattr("error.type", error))
            status = f',"status":{{"code":2,"message":{_dumps(status_msg)}}}'
        else:
            status = ',"status":{"code":1}' if self._rand() < 0.3 else ""
        kind = 3 if tool.server or tool.effect == "egress" else 1
        task.spans.append(
            f'{{"traceId":"{task.trace_id}","spanId":"{self._hex(16)}",'
            f'"parentSpanId":"{task.root_id}","name":"execute_tool {tool.name}","kind":{kind},'
            f'"startTimeUnixNano":{_nanos(start, self._rand() < 0.04)},'
            f'"endTimeUnixNano":{_nanos(end, self._rand() < 0.04)},'
            f'"attributes":[{",".join(attrs)}]{status}}}'
        )
        self.tool_actions += 1

    # ---- tasks -------------------------------------------------------------------------------

    def _plan(self, role: _Role) -> list[tuple[str, dict[str, Any]]]:
        plan: list[tuple[str, dict[str, Any]]] = []
        for step in role.steps:
            if step.p < 1.0 and self._rand() >= step.p:
                continue
            for _ in range(self._ri(*step.reps)):
                plan.append((self._pick(step.options), {}))
        if self._rand() < 0.005:  # an unusual but benign tool
            plan.insert(self._ri(0, len(plan)), (self._pick(_RARE_TOOLS), {}))
        return plan

    def _new_task(self, agent: _Agent, start: int, long_ok: bool) -> _Task:
        self._task_seq += 1
        task_id = f"task-{self.clock.day_str(start).replace('-', '')}-{self._task_seq:06d}"
        return _Task(
            task_id=task_id,
            agent=agent,
            start=start,
            now=start,
            trace_id=self._hex(32),
            root_id=self._hex(16),
            spans=[],
            tag_spans=self._rand() < 0.1,
            slow=self._pick((8.0, 15.0, 30.0)) if long_ok and self._rand() < 0.005 else 1.0,
        )

    def run_task(
        self,
        agent: _Agent,
        start: int,
        scenario: str | None = None,
        followup: _Followup | None = None,
        anomaly: _Anomaly | None = None,
    ) -> None:
        """Generate one task end to end and push all its lines."""
        # Rare long tasks, but not late in the run (nothing may spill past its last day).
        long_ok = followup is None and anomaly is None and start < self.run_end - 8 * _HOUR
        task = self._new_task(agent, start, long_ok)
        role = agent.role  # the credential's; an anomaly may run another role's plan
        self.tasks += 1
        self._native(start, "start", task)
        if anomaly is None:
            plan = self._plan(role)
        else:
            task.role = anomaly.role
            plan = self._anomaly_plan(task, anomaly)
        keep = scenario in (
            "credential_outlived_task",
            "credential_reused_by_other_task",
            "credential_shared_across_agents",
            "leaked_credential_new_ip",
            "approval_retained_access",
        )
        if scenario:
            plan = self._inject(task, scenario, plan)

        ttl_s = self._pick((900, 1200, 1800, 2700, 3600))
        if keep:
            ttl_s = self._ri(8, 72) * 3600 if role.cred == "vault" else 43200
        if task.slow > 1.0 and role.cred == "vault" and not keep:
            ttl_s = 1800  # long tasks renew instead
        if followup is not None and followup.mode == "reuse":
            task.cred = followup.cred  # the agent kept the earlier task's credential
            task.now += self._ri(20, 900) * 1000
        else:
            task.cred = self._issue(task, ttl_s, long_lived=keep)
        if followup is not None:
            # Calls that surely go through the other task's credential (whatever the plan holds).
            task.borrowed = followup.cred
            for _ in range(self._ri(2, 3)):
                plan.insert(self._ri(0, len(plan)), self._borrowed_step(followup.cred))

        # Failure / cancellation point.
        status = "completed"
        stop_at = len(plan)
        roll = self._rand()
        if scenario is None and followup is None and anomaly is None and plan:
            if roll < 0.04:
                status, stop_at = "failed", self._ri(0, len(plan) - 1)
            elif roll < 0.05:
                status, stop_at = "cancelled", self._ri(0, len(plan) - 1)

        # Approval before the first write: scope covers what follows and outlives the task.
        approval_at = -1
        if scenario == "approval_retained_access":
            approval_at = next(i for i, (_, o) in enumerate(plan) if o.get("approval"))
        elif scenario is None and anomaly is None and self._rand() < role.approval_p:
            writes = [i for i, (k, _) in enumerate(plan) if _TOOLS[k].effect in ("write", "egress")]
            if writes:
                approval_at = writes[0]

        for i, (key, opts) in enumerate(plan):
            if i == stop_at:
                if status == "failed":
                    self._tool(task, key, {**opts, "fail": True})
                break
            if i == approval_at:
                task.now += self._ri(30, 600) * _S  # waiting for the human
                if scenario == "approval_retained_access":
                    scope = [_TOOLS[key].name]
                    expires = task.now + self._ri(3, 8) * _MIN
                    if i + 1 < len(plan):  # what follows happens after the approval expired
                        wait = expires - task.now + self._ri(1, 10) * _MIN
                        plan[i + 1][1]["wait"] = wait
                else:
                    scope = list(dict.fromkeys(_TOOLS[k].name for k, _ in plan[i:]))
                    expires = task.now + self._ri(60, 180) * _MIN * int(task.slow)
                self._native(
                    task.now,
                    "approval",
                    task,
                    approved_by=self._pick(_APPROVERS),
                    approved_scope=scope,
                    approval_expires_at=self.clock.iso(expires, 0),
                )
            ok = self._tool(task, key, opts)
            if (
                not ok
                and scenario is None
                and followup is None
                and anomaly is None
                and self._rand() < 0.03
            ):
                status = "failed"
                break
        if status != "completed":
            task.error_type = task.error_type or (
                "Cancelled" if status == "cancelled" else "ToolError"
            )

        # Task end: JIT hygiene, unless the scenario keeps the credential.
        task.now += self._ri(500, 4000) * 1000
        cred = task.cred
        reused = followup is not None and followup.mode == "reuse"
        if cred is not None and not keep and not reused and cred.ns == "vault":
            ip = self._pick(agent.ips)
            for lease in task.leases:
                if self._rand() < 0.5:
                    task.now = self._vault(
                        task.now, cred, ip, "update", f"sys/leases/revoke/{lease}"
                    )
            if anomaly is not None or self._rand() < 0.92:  # anomaly tasks never forget
                task.now = self._vault(task.now, cred, ip, "update", "auth/token/revoke-self")
            else:
                # Forgetting to revoke leaves the token valid until its TTL runs out: that is the
                # outlived-task finding too, so it is labelled (its leases end with it).
                self._label(
                    "credential_outlived_task",
                    task,
                    cred,
                    "not revoked at task end (forgotten); expires on its own TTL",
                )
        end = task.now + self._ri(50, 500) * 1000
        self._push_trace(task, end, status)
        self._native(end, "end", task, status=status)

        if scenario:
            self._after(task, scenario, end)
        if anomaly is not None:
            self._label(anomaly.kind, task, None, anomaly.note)

    def _borrowed_step(self, cred: _Cred) -> tuple[str, dict[str, Any]]:
        owner_role = cred.owner.role
        if cred.ns == "vault":
            path = self._pick(owner_role.secrets or ("secret/data/shared/config",))
            return ("get_secret", {"borrowed": True, "path": path})
        bucket = self._pick(owner_role.buckets or ("acme-analytics-lake",))
        return ("s3_get_object", {"borrowed": True, "bucket": bucket})

    def _sensitive_read(self, role: _Role) -> tuple[str, dict[str, Any]]:
        if role.cred == "vault":
            return self._pick(
                (("get_secret", {"sensitive": True}), ("query_db", {"sensitive": True}))
            )
        return self._pick(
            (
                ("s3_get_object", {"sensitive": True}),
                ("get_aws_secret", {"sensitive": True}),
                ("query_db", {"sensitive": True}),
            )
        )

    def _inject(
        self, task: _Task, scenario: str, plan: list[tuple[str, dict[str, Any]]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Change a task's plan so that it contains the scenario's action chain."""
        role = task.agent.role
        plan = [(k, dict(o)) for k, o in plan]
        if scenario in (
            "read_write_delegate",
            "approval_retained_access",
            "sensitive_read_then_egress",
        ):
            # Keep the chain of interest from also writing to many systems by accident.
            plan = [s for s in plan if s[0] not in ("slack_post", "share_document")]
        if scenario == "sensitive_read_then_egress":
            egress = (
                ("send_email", {"external": True})
                if self._rand() < 0.5
                else ("http_post", {"external": True})
            )
            pos = self._ri(0, len(plan))
            plan[pos:pos] = [self._sensitive_read(role), egress]
        elif scenario == "read_write_delegate":
            read = self._sensitive_read(role) if self._rand() < 0.5 else ("read_file", {})
            write = self._pick(
                (("write_file", {}), ("update_record", {}), ("filesystem.write_file", {}))
            )
            delegate = (
                self._pick(("spawn_subagent", "delegate_task")),
                {"goal": "act on the written result"},
            )
            plan = [s for s in plan if _TOOLS[s[0]].effect != "delegate"]
            plan += [read, write, delegate]
        elif scenario == "cross_system_writes":
            writes = [
                ("write_file", {}),
                ("update_record", {"system": "salesforce"}),
                ("jira.create_issue", {}),
                ("github.create_pull_request", {}),
                ("http_post", {}),
                ("notion.create_page", {}),
                ("create_ticket", {}),
            ]
            writes.append(("put_secret", {}) if role.cred == "vault" else ("s3_put_object", {}))
            self.rng.shuffle(writes)
            plan += writes[: self._ri(3, 5)]
        elif scenario == "connector_sprawl":
            servers = list(_MCP_SERVERS)
            self.rng.shuffle(servers)
            for server in servers[: self._ri(5, 8)]:
                plan.insert(self._ri(0, len(plan)), (_MCP_READ_TOOL[server], {}))
        elif scenario == "approval_retained_access":
            first = ("query_db", {"approval": True})
            after = [("update_record", {}), self._sensitive_read(role), ("query_db", {})]
            plan += [first, *after[: self._ri(2, 3)]]
        return plan

    # ---- anomaly tasks (ANOMALY_SCENARIOS) ------------------------------------------------

    def _anomaly_plan(self, task: _Task, anomaly: _Anomaly) -> list[tuple[str, dict[str, Any]]]:
        """The plan of one anomaly task (see ANOMALY_SCENARIOS); fills in the label's note."""
        role = task.agent.role
        kind = anomaly.kind
        if kind == "read_burst":
            plan = [s for s in self._plan(role) if s[0] not in _EGRESS_TOOLS]
            typical = _typical_reads(role)
            extra = min(45, max(15, round(typical * (4.0 + 7.0 * self._rand()))))
            servers = {_TOOLS[k].server for k, _ in plan} - {None}
            for _ in range(extra):
                plan.insert(self._ri(0, len(plan)), self._read_step(role, servers))
            anomaly.note = (
                f"{extra} extra reads of the role's own tools (its tasks average "
                f"{typical:.1f}); no egress, no approval"
            )
            return plan
        if kind == "unusual_tool_combination":
            combo = self._odd_combination(role)
            anomaly.note = "read tools no role uses together: " + ", ".join(combo)
            return [(k, {}) for k in combo]
        if kind == "off_hours_bulk_access":
            servers: set[str | None] = set()
            plan = [self._read_step(role, servers, i) for i in range(self._ri(8, 20))]
            anomaly.note = (
                f"{len(plan)} reads over distinct resources, starting "
                f"{self.clock.iso(task.start, 0)[11:16]} UTC; no egress"
            )
            return plan
        if kind == "slow_exfiltration":
            assert anomaly.egress is not None
            plan = [q for step in self._plan(role) if (q := _quiet(role, step)) is not None]
            plan.insert(self._ri(0, len(plan)), (anomaly.egress[0], dict(anomaly.egress[1])))
            return plan
        other = anomaly.role  # role_drift
        assert other is not None
        plan = [s for s in self._plan(other) if s[0] not in _EGRESS_TOOLS]
        own = _ROLE_TOOLS[role.name]
        if all(k in own for k, _ in plan):  # it must show: one tool the agent's role never uses
            foreign = sorted(_ROLE_TOOLS[other.name] - own - _EGRESS_TOOLS)
            plan.insert(self._ri(0, len(plan)), (self._pick(foreign), {}))
        return plan

    def _read_step(
        self, role: _Role, servers: set[str | None], i: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        """One read with the role's own tools on its non-sensitive resources; i-th of a sweep.

        servers holds the task's MCP servers so far: a fifth is never added (connector_sprawl).
        """
        keys, weights = _own_reads(role)
        key = self.rng.choices(keys, weights)[0]
        server = _TOOLS[key].server
        if server is not None and server not in servers:
            if len(servers) >= 4:
                allowed = [
                    (k, w)
                    for k, w in zip(keys, weights, strict=True)
                    if _TOOLS[k].server in servers or _TOOLS[k].server is None
                ]
                key = self.rng.choices([k for k, _ in allowed], [w for _, w in allowed])[0]
            else:
                servers.add(server)
        if key in ("query_db", "postgres.query"):
            tables = _plain(role.tables)
            return key, {"tables": tables if i is None else (tables[i % len(tables)],)}
        if key.startswith("s3_"):
            return key, {"buckets": _plain(role.buckets)}
        return key, {}

    def _odd_combination(self, role: _Role) -> list[str]:
        """3-5 read tools of other roles that no role uses together, on at most 4 MCP servers."""
        own = _ROLE_TOOLS[role.name]
        # AWS tools only where the task's credential can call AWS (else no CloudTrail would back them).
        pool = [
            k for k in _READ_POOL if k not in own and (role.cred == "aws" or k not in _AWS_TOOLS)
        ]
        for _ in range(200):
            combo = self.rng.sample(pool, self._ri(3, 5))
            servers = {_TOOLS[k].server for k in combo} - {None}
            if len(servers) <= 4 and not any(set(combo) <= t for t in _ROLE_TOOLS.values()):
                break
        return combo

    def _after(self, task: _Task, scenario: str, end: int) -> None:
        """Label the instance and emit what happens after the task: misuse, follow-up tasks."""
        cred = task.cred
        agent = task.agent
        if scenario == "credential_outlived_task":
            note = "not revoked at task end; TTL of hours"
            if cred is not None and self._rand() < 0.7:
                delay = self._ri(20, 240) * _MIN
                self._misuse(cred, end, delay, self._ri(1, 4), agent.ips, agent.user_agent)
                note += "; used again after the task ended"
            self._label(scenario, task, cred, note)
        elif scenario == "credential_reused_by_other_task":
            assert cred is not None
            start = min(end + self._ri(10, 180) * _MIN, self._last_followup)
            self._schedule(max(start, end + _MIN), _Followup(agent, cred, "reuse"))
            self._label(
                scenario, task, cred, "a later task of the same agent reuses this credential"
            )
        elif scenario == "credential_shared_across_agents":
            assert cred is not None
            others = [a for a in self.agents if a is not agent and a.role.cred == cred.ns]
            other = self._pick(others or [a for a in self.agents if a is not agent])
            # May overlap the task itself: both agents hold the credential at once.
            start = min(task.start + self._ri(2, 120) * _MIN, self._last_followup)
            self._schedule(max(start, task.start + _MIN), _Followup(other, cred, "share"))
            self._label(scenario, task, cred, f"also used by {other.agent_id}")
        elif scenario == "leaked_credential_new_ip":
            assert cred is not None
            ip = self._pick(_LEAK_NETS) + str(self._ri(2, 254))
            delay, ua = self._ri(10, 360) * _MIN, _dumps(self._pick(_LEAK_UAS))
            self._misuse(cred, end, delay, self._ri(2, 6), (ip,), ua, leaked=True)
            self._label(scenario, task, cred, f"used from {ip} after the task ended")
        elif scenario == "approval_retained_access":
            self._label(
                scenario,
                task,
                cred,
                "actions after approval expiry and outside scope; credential kept",
            )
        else:
            notes = {
                "sensitive_read_then_egress": "sensitive read followed by external send",
                "read_write_delegate": "read, then write, then delegation",
                "cross_system_writes": "writes to 3 or more systems",
                "connector_sprawl": "5 or more MCP servers in one task",
            }
            self._label(scenario, task, None, notes[scenario])

    def _misuse(
        self,
        cred: _Cred,
        after: int,
        delay: int,
        n: int,
        ips: tuple[str, ...],
        user_agent: str,
        leaked: bool = False,
    ) -> None:
        """n uses of a kept credential, outside any task (no spans), starting delay after `after`.

        By its owner or by an attacker. They fall before the credential expires and the run ends,
        squeezed closer to `after` when needed; the first one always happens.
        """
        limit = min(cred.expires, self.run_end) - _MIN
        t = after + delay
        if t >= limit:
            t = after + max(_S, (limit - after) // 2)
        for i in range(n):
            if t >= limit and i:
                break
            ip = self._pick(ips)
            if cred.ns == "vault":
                self._vault_misuse(cred, t, ip, i if leaked else -1)
            else:
                self._aws_misuse(cred, t, ip, user_agent, i if leaked else -1)
            t += min(self._ri(5, 900) * _S, max(_S, (limit - t) // n))

    def _vault_misuse(self, cred: _Cred, t: int, ip: str, step: int) -> None:
        """One out-of-task Vault request; step >= 0 is an attacker's step-th move."""
        if step == 0:  # what is this token allowed to do?
            self._vault(
                t,
                cred,
                ip,
                "read",
                "auth/token/lookup-self",
                response={"data": {"id": cred.source_id, "policies": ["default"]}},
            )
            return
        if step == 1:
            self._vault(t, cred, ip, "list", "secret/metadata/", denied=True)
            return
        roles = cred.owner.role.secrets or ("secret/data/shared/config",)
        path = _SENSITIVE["vault_secret"] if step > 0 else self._pick(roles)
        self._vault(
            t, cred, ip, "read", path, response={"data": {"data": {"api_key": self._hmac(path)}}}
        )

    def _aws_misuse(self, cred: _Cred, t: int, ip: str, ua: str, step: int) -> None:
        """One out-of-task AWS call; step >= 0 is an attacker's step-th move."""
        ident = cred.identity_json
        if step == 0:
            self._ct(
                t,
                ident,
                "sts.amazonaws.com",
                "GetCallerIdentity",
                None,
                None,
                ip,
                ua,
                management=True,
            )
            return
        if step == 1:
            message = (
                f"User: {_arn_of(ident)} is not authorized to perform: iam:ListUsers on resource: "
                f"arn:aws:iam::{self.account}:user/ because no identity-based policy allows the action"
            )
            self._ct(
                t,
                ident,
                "iam.amazonaws.com",
                "ListUsers",
                None,
                None,
                ip,
                ua,
                management=True,
                error=("AccessDenied", message),
            )
            return
        if step > 0:
            bucket, key = _SENSITIVE["bucket"], f"exports/customers-2026-{self._ri(1, 10):02d}.csv"
        else:
            bucket = self._pick(cred.owner.role.buckets or ("acme-analytics-lake",))
            key = f"daily/part-{self._ri(0, 9999):05d}.parquet"
        params = {"bucketName": bucket, "Host": f"{bucket}.s3.us-east-1.amazonaws.com", "key": key}
        resources = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"}]
        self._ct(
            t, ident, "s3.amazonaws.com", "GetObject", params, None, ip, ua, resources=resources
        )

    @property
    def _last_followup(self) -> int:
        return self.run_end - 45 * _MIN

    def _schedule(self, start: int, followup: _Followup | _Anomaly) -> None:
        self._sched_seq += 1
        heapq.heappush(self._scheduled, (start, self._sched_seq, followup))

    def _push_trace(self, task: _Task, end: int, status: str) -> None:
        """The task's OTLP export: one document holding the root span and its tool spans."""
        agent = task.agent
        numeric = self._rand() < 0.15  # this exporter writes intValue as JSON numbers
        tokens_in = _intval_json(self._ri(800, 60000), numeric)
        tokens_out = _intval_json(self._ri(100, 6000), numeric)
        attrs = [
            agent.root_attrs_json,
            _sattr("gen_ai.conversation.id", "conv_" + self._hex(20)),
            _sattr("chainwatch.task.id", task.task_id),
            f'{{"key":"gen_ai.request.temperature","value":{{"doubleValue":{self._pick((0.0, 0.2, 0.7))}}}}}',
            f'{{"key":"gen_ai.usage.input_tokens","value":{tokens_in}}}',
            f'{{"key":"gen_ai.usage.output_tokens","value":{tokens_out}}}',
            f'{{"key":"chainwatch.task.interactive","value":{{"boolValue":{_dumps(self._rand() < 0.2)}}}}}',
        ]
        if status != "completed":
            attrs.append(_sattr("error.type", task.error_type or status))
            status_json = f'{{"code":2,"message":"task {status}"}}'
        else:
            status_json = '{"code":1}'
        root = (
            f'{{"traceId":"{task.trace_id}","spanId":"{task.root_id}",'
            f'"name":"invoke_agent {agent.name}","kind":1,'
            f'"startTimeUnixNano":{_nanos(task.start, self._rand() < 0.04)},'
            f'"endTimeUnixNano":{_nanos(end, self._rand() < 0.04)},'
            f'"attributes":[{",".join(attrs)}],"status":{status_json}}}'
        )
        spans = ",".join([root, *task.spans])
        doc = (
            f'{{"resourceSpans":[{{"resource":{agent.resource_json},"scopeSpans":[{{"scope":'
            f'{{"name":"chainwatch-sim","version":"1"}},"spans":[{spans}]}}]}}]}}'
        )
        self.sinks.push(_OTLP, task.start, doc)


class _Anomalies:
    """Chooses the arrivals that become ANOMALY_SCENARIOS tasks, and schedules the later ones.

    Counts are planned, not drawn, so every run gets its share: about ANOMALY_RATE of the
    expected tasks, split evenly over the types, and at least one instance of each.
    read_burst and unusual_tool_combination turn arrivals at planned indices (one early, the
    rest anywhere) into the anomaly task. off_hours_bulk_access tasks are scheduled up front in
    the run's nights, 00:00-04:59 UTC (the first in the first night), for a random agent each.
    slow_exfiltration turns an arrival into a campaign's first task and schedules the others;
    role_drift makes the arrival's agent drift from then on; both start in the first half of
    the run. An agent runs at most one campaign or drift.
    """

    def __init__(self, sim: _Simulator, n_est: float) -> None:
        self.sim = sim
        self.n_est = n_est
        per_type = max(1, round(n_est * ANOMALY_RATE / len(ANOMALY_SCENARIOS)))
        early = [
            "read_burst",
            "unusual_tool_combination",
            *["slow_exfiltration"] * math.ceil(per_type / 8),  # 6-15 tasks each
            *["role_drift"] * math.ceil(per_type / 12),  # 8-16 drifted tasks each, expected
        ]
        sim.rng.shuffle(early)
        span = max(len(early), int(0.5 * n_est))
        planned = [(int((k + 0.5) * span / len(early)), a) for k, a in enumerate(early)]
        for kind in ("read_burst", "unusual_tool_combination"):
            planned += [(int(sim._rand() * 0.95 * n_est), kind) for _ in range(per_type - 1)]
        self.planned = sorted(planned, reverse=True)  # earliest last: pop() takes it
        self.drifting: dict[str, _Drift] = {}
        self.busy: set[str] = set()  # agents running a campaign or drifting
        self.campaigns = 0
        nights = (sim.run_end - sim.t0) // _DAY  # the run starts at 00:00 UTC
        for k in range(per_type):
            night = sim.t0 + (sim._ri(0, nights - 1) if k else 0) * _DAY
            anomaly = _Anomaly("off_hours_bulk_access", sim._pick_agent(), "")
            sim._schedule(night + sim._ri(5, 299) * _MIN, anomaly)

    def at_arrival(self, index: int, agent: _Agent, t: int) -> _Anomaly | None:
        """The anomaly task the index-th ordinary arrival becomes, if any."""
        sim = self.sim
        free = agent.agent_id not in self.busy or len(sim.agents) == 1
        if self.planned and self.planned[-1][0] <= index and free:
            kind = self.planned.pop()[1]
            if kind == "slow_exfiltration":
                return self._campaign(agent, t)
            if kind == "role_drift":
                return self._start_drift(agent, t, index)
            return _Anomaly(kind, agent, "")
        drift = self.drifting.get(agent.agent_id)
        if drift is not None:
            # The chance rises with the arrivals since the drift began. Systematic sampling (a
            # drifted task each time the summed chances pass a whole number) keeps the count
            # close to its expectation, where a coin per task would scatter it.
            progress = (index - drift.first) / max(1.0, self.n_est - drift.first)
            drift.credit += drift.p_max * min(1.0, progress)
            if drift.credit >= 1.0:
                drift.credit -= 1.0
                return self._drifted(agent, drift.role, drift.since)
        return None

    def _campaign(self, agent: _Agent, t: int) -> _Anomaly:
        """A slow exfiltration campaign: its first task now, the others scheduled over the run."""
        sim = self.sim
        self.busy.add(agent.agent_id)
        self.campaigns += 1
        lo, hi = t + 30 * _MIN, sim._last_followup
        n = sim._ri(6, 15)
        times = sorted(self._working_time(lo, hi) for _ in range(n - 1)) if hi > lo else []
        if sim._rand() < 0.5:
            dest = (
                f"https://{sim._pick(_DRIP_HOSTS)}/v1/{sim._pick(('events', 'sync'))}/{sim._hex(8)}"
            )
        else:
            name = sim._chars("abcdefghijklmnopqrstuvwxyz", sim._ri(5, 9))
            dest = f"{name}.{sim._ri(10, 99)}@{sim._pick(_EXTERNAL_MAIL)}"
        tasks = []
        for k in range(1, len(times) + 2):
            if dest.startswith("https://"):
                args = {
                    "url": dest,
                    "body_bytes": sim._ri(300, 6000),
                    "content_type": "application/json",
                }
                send = ("http_post", {"args": args})
            else:
                subject = sim._pick(("Notes", "Daily digest", "Sync"))
                send = ("send_email", {"args": {"to": [dest], "subject": subject}})
            seen = "new for the agent" if k == 1 else "used by the campaign before"
            note = (
                f"campaign exfil-{self.campaigns}, task {k} of {len(times) + 1}: one small send "
                f"to {dest} ({seen}); no sensitive read"
            )
            tasks.append(_Anomaly("slow_exfiltration", agent, note, egress=send))
        for when, task in zip(times, tasks[1:], strict=True):
            sim._schedule(when, task)
        return tasks[0]

    def _working_time(self, lo: int, hi: int) -> int:
        """A time in [lo, hi), busier in working hours like the arrivals."""
        sim = self.sim
        for _ in range(50):
            t = lo + int(sim._rand() * (hi - lo))
            if sim._rand() < _HOUR_WEIGHTS[t % _DAY // _HOUR]:
                break
        return t

    def _start_drift(self, agent: _Agent, t: int, index: int) -> _Anomaly:
        """The agent drifts to another role (same kind of credential) from now on."""
        sim = self.sim
        role = sim._pick([r for r in _ROLES if r is not agent.role and r.cred == agent.role.cred])
        # Its share of the tasks still to come; the rising chance then yields about `target`.
        remaining = max(1.0, (self.n_est - index) * agent.role.weight / sim._cum_weights[-1])
        target = sim._ri(8, 16)
        p_max = min(0.9, 2 * (target - 1) / remaining)
        self.drifting[agent.agent_id] = _Drift(role, t, index, p_max, sim._rand())
        self.busy.add(agent.agent_id)
        return self._drifted(agent, role, t)

    def _drifted(self, agent: _Agent, role: _Role, since: int) -> _Anomaly:
        note = (
            f"runs the {role.name} plan, not its own {agent.role.name}; drifting since "
            f"{self.sim.clock.iso(since, 0)}"
        )
        return _Anomaly("role_drift", agent, note, role=role)


# --------------------------------------------------------------------------------------------
# Small pure helpers.


@cache
def _own_reads(role: _Role) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The role's own non-sensitive read tools, and how often an ordinary task calls each."""
    weights: dict[str, float] = {}
    for step in role.steps:
        for k in step.options:
            if _TOOLS[k].effect != "read" or k in _SECRET_READS:
                continue
            if k in ("query_db", "postgres.query") and not _plain(role.tables):
                continue
            if k.startswith("s3_") and not _plain(role.buckets):
                continue
            mean = step.p * (step.reps[0] + step.reps[1]) / 2 / len(step.options)
            weights[k] = weights.get(k, 0.0) + mean
    return tuple(weights), tuple(weights.values())


def _quiet(role: _Role, step: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """A plan step without egress or sensitive reads (slow exfiltration): kept, narrowed or None."""
    key, opts = step
    if key in _EGRESS_TOOLS or key in _SECRET_READS:
        return None
    if key in ("query_db", "postgres.query"):
        if key == "query_db" and role.cred == "vault" and role.db_creds:
            return None  # its dynamic database credential is a sensitive Vault read
        tables = _plain(role.tables)
        return (key, {**opts, "tables": tables}) if tables else None
    if key in ("s3_get_object", "s3_list_objects"):
        buckets = _plain(role.buckets)
        return (key, {**opts, "buckets": buckets}) if buckets else None
    return step


def _vault_mount(path: str) -> tuple[str, str]:
    if path.startswith("secret/"):
        return "kv", "secret/"
    if path.startswith("database/"):
        return "database", "database/"
    if path.startswith("auth/token/"):
        return "token", "auth/token/"
    if path.startswith("auth/approle/"):
        return "approle", "auth/approle/"
    if path.startswith("sys/"):
        return "system", "sys/"
    return "kv", path.split("/", 1)[0] + "/"


def _arn_of(identity_json: str) -> str:
    return json.loads(identity_json)["arn"]


def _nanos(t_us: int, as_number: bool) -> str:
    """A unix-nano timestamp as JSON: usually a string, as OTLP/JSON says; sometimes a number."""
    ns = t_us * 1000 + (t_us * 7919) % 1000  # sub-microsecond digits, deterministic
    return str(ns) if as_number else f'"{ns}"'


def _intval_json(v: int, as_number: bool) -> str:
    """An OTLP intValue as JSON: a string (proto3 JSON for int64) or, from some exporters, a number."""
    return f'{{"intValue":{v}}}' if as_number else f'{{"intValue":"{v}"}}'


def _anyvalue(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_anyvalue(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": _kvlist(v)}
    return {"stringValue": str(v)}


def _kvlist(d: dict[str, Any]) -> dict[str, Any]:
    return {"values": [{"key": k, "value": _anyvalue(v)} for k, v in d.items()]}


def _arrivals(sim: _Simulator, n_tasks: float, days: int) -> Iterator[int]:
    """Task start times, in order: a Poisson process shaped by hour of day and weekday."""
    day_weights = [
        _WEEKEND_WEIGHT
        if (date(1970, 1, 1) + timedelta(days=sim.t0 // _DAY + d)).weekday() >= 5
        else 1.0
        for d in range(days)
    ]
    total_day, total_hour = sum(day_weights), sum(_HOUR_WEIGHTS)
    rng = sim.rng
    for d in range(days):
        per_day = n_tasks * day_weights[d] / total_day
        for h in range(24):
            rate = per_day * _HOUR_WEIGHTS[h] / total_hour  # expected tasks in this hour
            base = sim.t0 + d * _DAY + h * _HOUR
            if base >= sim.run_end - _HOUR:
                return  # the last hour stays quiet so that every task ends inside the run
            x = rng.expovariate(rate)
            while x < 1.0:
                yield base + int(x * _HOUR)
                x += rng.expovariate(rate)


def _estimate_task_size(seed: int, agents: int, start: date) -> float:
    """Average actions per ordinary task, measured on a throw-away pilot fleet."""
    pilot = _Simulator(seed, agents, start, _NullSinks(), None)
    n = 400
    for i in range(n):
        pilot.run_task(pilot._pick_agent(), pilot.t0 + i * _MIN)
    total = pilot.tool_actions + pilot.vault_requests + pilot.cloudtrail_records
    return max(1.0, total / n)


def simulate(
    out_dir: str | Path,
    *,
    seed: int = 7,
    agents: int = 20,
    days: int = 3,
    actions: int = 5000,
    start: date = date(2026, 11, 1),
    gzip_cloudtrail: bool = False,
    anomalies: bool = False,
) -> SimulationSummary:
    """Write a simulated agent fleet's logs under ``out_dir``; same arguments, same bytes.

    ``actions`` is the approximate number of agent actions (tool spans + CloudTrail records +
    Vault requests); tasks are generated until it is spent or the ``days`` run out. Files are
    streamed: memory does not grow with ``actions``. ``anomalies`` adds ANOMALY_SCENARIOS
    (labelled like the scenarios); without it the output is what it was before they existed.
    """
    if agents < 1 or days < 1 or actions < 1:
        raise ValueError("agents, days and actions must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_task = _estimate_task_size(seed, agents, start)
    n_est = actions / per_task

    sinks = _Sinks(out, gzip_cloudtrail)
    with open(out / "labels.jsonl", "w", encoding="utf-8", newline="\n") as labels:
        sim = _Simulator(seed, agents, start, sinks, labels)
        sim.run_end = sim.t0 + days * _DAY
        sim.setup_legacy_keys(sim.run_end)
        feasible = [s for s in SCENARIOS if agents > 1 or s != "credential_shared_across_agents"]
        # One forced instance of each scenario, spread over the first tasks (or 80 % of the run).
        span = 190 if n_est < 400 else int(0.8 * n_est)
        order = list(feasible)
        sim.rng.shuffle(order)
        forced = {int((k + 0.5) * span / len(order)): s for k, s in enumerate(order)}
        planner = _Anomalies(sim, n_est) if anomalies else None

        arrivals = _arrivals(sim, n_est * 1.05, days)
        nxt = next(arrivals, None)
        index = 0
        scheduled = sim._scheduled
        while True:
            budget_left = sim.tool_actions + sim.vault_requests + sim.cloudtrail_records < actions
            due = scheduled[0][0] if scheduled else None
            if due is not None and (not budget_left or nxt is None or due <= nxt):
                # Follow-ups of labelled instances always run, even past the budget.
                t, _, followup = heapq.heappop(scheduled)
                sinks.flush(t)
                if isinstance(followup, _Anomaly):
                    sim.run_task(followup.agent, t, anomaly=followup)
                else:
                    sim.run_task(followup.agent, t, followup=followup)
                continue
            if not budget_left or nxt is None:
                break
            sinks.flush(nxt)
            scenario = forced.get(index)
            if scenario is None and sim._rand() < INJECT_RATE:
                scenario = sim._pick(feasible)
            agent = sim._pick_agent()
            anomaly = None
            if planner is not None and scenario is None:
                anomaly = planner.at_arrival(index, agent, nxt)
            sim.run_task(agent, nxt, scenario, anomaly=anomaly)
            index += 1
            nxt = next(arrivals, None)
        first_day = sim.t0 // _DAY
        sinks.close(range(first_day, first_day + days))

    start_arg = f" --start {start.isoformat()}" if start != date(2026, 11, 1) else ""
    gz = ", CloudTrail gzipped" if gzip_cloudtrail else ""
    anomalies_arg = " --anomalies" if anomalies else ""
    (out / "README.md").write_text(
        f"Generated by `chainwatch simulate --out <this directory> --seed {seed} --agents {agents} "
        f"--days {days} --actions {actions}{start_arg}{anomalies_arg}` "
        f"(start {start.isoformat()}{gz}).\n",
        encoding="utf-8",
    )
    files = sorted({*sinks.files, "labels.jsonl", "README.md"})
    return SimulationSummary(
        out_dir=out,
        files=tuple(files),
        tasks=sim.tasks,
        tool_actions=sim.tool_actions,
        vault_requests=sim.vault_requests,
        vault_entries=sim.vault_entries,
        cloudtrail_records=sim.cloudtrail_records,
        task_events=sim.task_events,
        scenarios=dict(sorted(sim.scenarios.items())),
    )
