"""The fleet's catalogue: the injected scenarios, tools, MCP servers, roles and the resources
they touch, and pure helpers over them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from chainwatch.harness.simulate.encoding import _sattr

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


@dataclass(frozen=True)
class _Tool:
    name: str  # gen_ai.tool.name
    type: str  # gen_ai.tool.type: function, extension, datastore
    effect: str  # read, write, egress, delegate
    server: str | None = None  # MCP server name
    latency_ms: tuple[int, int] = (50, 800)
    attrs_json: str = ""  # the span attributes that never change, pre-rendered


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
