"""Fleet state: agents, credentials, tasks, and what scenario instances schedule for later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chainwatch.harness.simulate.catalog import _Role
from chainwatch.harness.simulate.encoding import _dumps, _sattr


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
