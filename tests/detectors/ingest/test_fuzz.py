"""Hostile and broken input, fuzzed (hypothesis): every parser keeps its promises on any input.

For every generated input, per format (OTLP, Vault, CloudTrail, Kubernetes, native JSON lines /
CSV / Parquet, and folders mixing them with junk):

1. ingest never raises: unreadable or unrecognised files are file errors naming the file, and
   the run goes on;
2. conservation: every record lands in exactly one place (``conservation_violations`` is empty,
   each file's report has ``records == loaded + rejected + duplicates``, and the report agrees
   with the warehouse);
3. every reject has a documented, specific reason (docs/schema.md, ``rejected_events``) naming a
   field the parser reads, or the problem; its raw text is bounded by ``reject_text_chars`` and
   redacted: no planted secret (AWS key id, Vault token, GitHub token) is stored anywhere.

Hypothesis and function-scoped fixtures do not mix: each example builds its own temporary
warehouse (``warehouse()``). Budgets are small (the whole file runs in about a minute and a half);
``CHAINWATCH_FUZZ_SCALE=20`` multiplies every example count for a longer hunt. The regression
tests at the end pin what the fuzzing found.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import csv
import gzip
import hashlib
import io
import json
import os
import re
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.core.settings import load_settings
from detectors.core.warehouse import connect
from detectors.ingest.formats import FORMATS
from detectors.ingest.pipeline import IngestReport, expand_paths
from detectors.ingest.quality import conservation_violations
from tests.conftest import TEST_KEY, Ingester

SCALE = float(os.environ.get("CHAINWATCH_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


FUZZ = settings(
    max_examples=examples(25),
    deadline=None,
    database=None,  # nothing written into the shared checkout; failures print their blob
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
FEW = settings(FUZZ, max_examples=examples(15))
SMALL = settings(FUZZ, max_examples=examples(12))

TS_MIN, TS_MAX = datetime(1990, 1, 1), datetime(2200, 1, 1)  # what the parsers accept


# --- a fresh warehouse per example -----------------------------------------------------------------


@contextlib.contextmanager
def warehouse(**overrides) -> Iterator[Ingester]:
    """An Ingester on a new warehouse in a temporary folder (input files go under ``root/in``)."""
    with tempfile.TemporaryDirectory(prefix="cw-fuzz-") as tmp:
        root = Path(tmp)
        cfg = load_settings(
            db_path=root / "wh" / "chainwatch.duckdb", hash_key=TEST_KEY, **overrides
        )
        con = connect(cfg.db_path)
        try:
            yield Ingester(con, cfg, root)
        finally:
            con.close()


def write(ing: Ingester, name: str, data: bytes) -> Path:
    path = ing.tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- JSON rendering that Python's json module refuses (duplicate keys, raw numbers) ---------------


class Raw(str):
    """JSON text inserted as it is (numbers Python will not write, invalid escapes)."""


class Pairs(list):
    """A JSON object as (key, value) pairs: a key may repeat."""


DELETE = object()  # a mutation that removes the key


def dump(value) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs):
        return "{" + ",".join(json.dumps(k) + ":" + dump(v) for k, v in value) + "}"
    if isinstance(value, dict):
        return dump(Pairs(value.items()))
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def pretty(value) -> str:
    """A multi-line JSON document (a lone opening bracket on the first line)."""
    text = dump(value)
    return text[0] + "\n" + text[1:-1] + "\n" + text[-1] if text[:1] in "{[" else text


def get_path(obj, path: tuple):
    for key in path:
        obj = obj[key]
    return obj


def set_path(obj, path: tuple, value):
    """A copy of ``obj`` with the value at ``path`` replaced (or removed, for DELETE)."""
    out = copy.deepcopy(obj)
    parent = get_path(out, path[:-1])
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def has_raw(value) -> bool:
    """True when a value holds JSON text a strict parser may refuse (the line is then malformed)."""
    if isinstance(value, Raw):
        return True
    if isinstance(value, dict):
        return any(has_raw(v) for v in value.values())
    if isinstance(value, list):
        return any(has_raw(v) for v in value)
    return False


def all_paths(obj, prefix: tuple = (), depth: int = 12) -> list[tuple]:
    """Every key / index path inside ``obj`` (the fields a parser could read)."""
    out: list[tuple] = []
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    )
    for key, value in items:
        out.append((*prefix, key))
        if depth > 1:
            out.extend(all_paths(value, (*prefix, key), depth - 1))
    return out


# --- values ------------------------------------------------------------------------------------------

UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits

# Secrets as they leak into logs: an AWS access key id, a Vault service token, a GitHub token.
secrets = st.one_of(
    st.text(UPPER_DIGITS, min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.text(ALNUM, min_size=24, max_size=40).map(lambda s: "hvs." + s),
    st.text(ALNUM, min_size=36, max_size=36).map(lambda s: "ghp_" + s),
)

EXTREME_NUMBERS = [
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64,
    10**20,
    10**30,
    -(10**30),
    253402300799,  # 9999-12-31 in epoch seconds
    -62135596800,  # year 1 in epoch seconds
    1714557600,
    1714557600000,
    1714557600000000,
    1714557600000000000,
    9223372036854,  # seconds: the largest interval DuckDB holds
    10**13,
    9223372036854775,  # milliseconds near the largest timestamp
    -9223372036854775,
    -9223372022400000000000,  # nanoseconds: the smallest timestamp
    9223372036854775806000,
    -(2**63) * 1000,
    1.5e18,
    1e308,
    -1e308,
    5e-324,
]
RAW_NUMBERS = [
    Raw("9" * 5000),  # beyond Python's int-parsing limit
    Raw("123456789012345678901234567890"),
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1E+2"),
    Raw("-0"),
    Raw("0.0000000000000000000001"),
]
TIME_STRINGS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01",
    "9999-12-31T23:59:59.999999999Z",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "294247-01-10T04:00:54.775807Z",
    "290309-12-22 (BC) 00:00:00",
    "1969-12-31T23:59:59Z",
    "1989-12-31T23:59:59Z",
    "1990-01-01T00:00:00Z",
    "2199-12-31T23:59:59Z",
    "2200-01-01T00:00:01Z",
    "2024-13-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-05-01T25:00:00Z",
    "2024-05-01T10:00:00+25:00",
    "2024-05-01T10:00:00.12345678901234567890Z",
    "Jan 01, 0001 12:00:00 AM",
    "Dec 31, 9999 11:59:59 PM",
    "infinity",
    "-infinity",
    "epoch",
    "1714557600",
    "-1",
    "18446744073709551616",
    "99999999999999999999999999999999999999999",
    "1e30",
    " 1714557600000000000",
    "0x10",
    "",
    " ",
]
STRINGS = [
    *TIME_STRINGS,
    "null",
    "[]",
    "{}",
    "\u0000",
    "\ufeff",
    "é" * 3,
    "request",
    "response",
    "action",
    "task",
    "credential",
    "issue",
    "start",
    "end",
    "approval",
    "ResponseComplete",
    "RequestReceived",
    "create",
    "AssumeRole",
    "CreateAccessKey",
    "sts.amazonaws.com",
    "iam.amazonaws.com",
    "auth/token/revoke-prefix/",
    "sys/leases/revoke-prefix/",
    "auth/token/renew-self",
    "5b8efff798038103d269b633813fc60c",
    "b7ad6b7100000001",
    "W47/95gDgQPSabYzgTwMDA==",
    "STATUS_CODE_ERROR",
    "x" * 300,
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(EXTREME_NUMBERS),
    st.sampled_from(RAW_NUMBERS),
    st.sampled_from(STRINGS),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
# Lifetimes in seconds, biased to where `timestamp + lifetime` stops fitting.
lifetimes = st.one_of(
    st.integers(min_value=10**12, max_value=2**63 - 1),
    st.integers(min_value=-(2**63), max_value=-(10**12)),
    st.sampled_from(EXTREME_NUMBERS),
)
time_values = st.one_of(
    st.sampled_from(TIME_STRINGS),
    st.sampled_from(EXTREME_NUMBERS),
    st.sampled_from(RAW_NUMBERS),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.isoformat() + "Z"
    ),
)


# --- valid records of every format (hand-written from the formats' specifications) ---------------

TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1714557600  # 2024-05-01 10:00:00 UTC
T0_NS = T0 * 10**9


def hm(label: str) -> str:
    return "hmac-sha256:" + hashlib.sha256(label.encode()).hexdigest()


def kv(key: str, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def otlp_export(secret: str) -> dict:
    b64 = lambda hex_id: base64.b64encode(bytes.fromhex(hex_id)).decode()  # noqa: E731
    spans = [
        {
            "traceId": TRACE,
            "spanId": "b7ad6b7100000001",
            "name": "invoke_agent researcher",
            "kind": 1,
            "startTimeUnixNano": str(T0_NS),
            "endTimeUnixNano": str(T0_NS + 5 * 10**9),
            "attributes": [
                kv("gen_ai.operation.name", "invoke_agent"),
                kv("gen_ai.agent.id", "agent-1"),
                kv("chainwatch.task.id", "task-1"),
                kv("gen_ai.request.model", "model-x"),
            ],
            "status": {"code": 1},
        },
        {
            "traceId": TRACE,
            "spanId": "b7ad6b7100000002",
            "parentSpanId": "b7ad6b7100000001",
            "name": "execute_tool send_email",
            "kind": 3,
            "startTimeUnixNano": str(T0_NS + 10**9),
            "endTimeUnixNano": T0_NS + 2 * 10**9,
            "attributes": [
                kv("gen_ai.operation.name", "execute_tool"),
                kv("gen_ai.tool.name", "send_email"),
                kv(
                    "gen_ai.tool.call.arguments",
                    json.dumps({"to": "a@example.com", "note": secret}),
                ),
                {"key": "http.request.body.size", "value": {"intValue": 2048}},
                kv("client.address", "10.0.0.5"),
                kv("chainwatch.credential.id", "jit-1"),
                kv("mcp.tool.annotations.readOnlyHint", False),
                kv("error.type", "permission_denied"),
            ],
            "status": {"code": "STATUS_CODE_ERROR", "message": "permission denied"},
        },
        {
            "traceId": b64(TRACE),
            "spanId": b64("b7ad6b7100000003"),
            "parentSpanId": b64("b7ad6b7100000001"),
            "name": "tools/call search",
            "startTimeUnixNano": str(T0_NS + 3 * 10**9),
            "endTimeUnixNano": str(T0_NS + 4 * 10**9),
            "attributes": [
                kv("mcp.method.name", "tools/call"),
                kv("mcp.tool.name", "search"),
                kv("mcp.server.name", "web"),
                {
                    "key": "gen_ai.tool.call.arguments",
                    "value": {
                        "kvlistValue": {
                            "values": [
                                {
                                    "key": "q",
                                    "value": {
                                        "arrayValue": {
                                            "values": [{"intValue": "1"}, {"stringValue": secret}]
                                        }
                                    },
                                }
                            ]
                        }
                    },
                },
                kv("messaging.message.body.size", 10),
            ],
        },
    ]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [kv("service.name", "svc-agent")]},
                "scopeSpans": [{"scope": {"name": "fuzz"}, "spans": spans}],
            }
        ]
    }


VAULT_AUTH = {
    "client_token": hm("token"),
    "accessor": hm("accessor"),
    "display_name": "approle",
    "policies": ["default", "agent-read"],
    "token_policies": ["default", "agent-read"],
    "metadata": {"agent_id": "agent-1", "task_id": "task-1"},
    "entity_id": "6f1e5a7c-93b2-4d0e-8f21-5c4b3a291807",
    "token_type": "service",
    "token_ttl": 3600,
    "token_issue_time": "2024-05-01T10:00:00Z",
}


def vault_entry(
    rid: str,
    path: str,
    secret: str,
    *,
    entry_type: str = "response",
    operation: str = "update",
    response: dict | None = None,
    data: dict | None = None,
    error: str | None = None,
) -> dict:
    entry = {
        "time": "2024-05-01T10:00:00.123456789Z",
        "type": entry_type,
        "auth": VAULT_AUTH,
        "request": {
            "id": rid,
            "operation": operation,
            "mount_type": "kv",
            "mount_point": path.split("/")[0] + "/",
            "client_token": hm("token"),
            "path": path,
            "data": {"note": secret, **(data or {})},
            "remote_address": "10.20.0.7",
        },
    }
    if entry_type == "response":
        entry["response"] = response or {"mount_type": "kv"}
    if error is not None:
        entry["error"] = error
    return entry


def vault_entries(secret: str) -> list[dict]:
    issued = dict(VAULT_AUTH, client_token=hm("child"), accessor=hm("child-acc"))
    return [
        vault_entry("r-1", "auth/approle/login", secret, response={"auth": issued}),
        vault_entry("r-2", "secret/data/db", secret, entry_type="request", operation="read"),
        vault_entry(
            "r-3", "auth/token/renew-self", secret, response={"auth": dict(issued, ttl=60)}
        ),
        vault_entry(
            "r-4",
            "database/creds/readonly",
            secret,
            operation="read",
            response={"secret": {"lease_id": "database/creds/readonly/abc"}, "lease_duration": 60},
        ),
        vault_entry(
            "r-5", "auth/token/revoke-accessor", secret, data={"accessor": hm("child-acc")}
        ),
        vault_entry("r-6", "sys/leases/revoke-prefix/database/creds/", secret),
        vault_entry("r-7", "secret/data/x", secret, error="1 error occurred: permission denied"),
    ]


def ct_record(event_id: str, source: str, name: str, secret: str, **extra) -> dict:
    rec = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEROLEID001:agent-1@task-1",
            "arn": "arn:aws:sts::111122223333:assumed-role/AgentRole/agent-1@task-1",
            "accountId": "111122223333",
            "accessKeyId": "ASIAPLANNERSESSION01",
            "sessionContext": {
                "sessionIssuer": {
                    "arn": "arn:aws:iam::111122223333:role/AgentRole",
                    "userName": "AgentRole",
                }
            },
        },
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "Boto3/1.34.0",
        "requestParameters": {"note": secret},
        "responseElements": None,
        "eventID": event_id,
        "recipientAccountId": "111122223333",
    }
    for key, value in extra.items():
        if key == "requestParameters":
            rec[key] = {**rec[key], **value}
        else:
            rec[key] = value
    return rec


def ct_records(secret: str) -> list[dict]:
    return [
        ct_record(
            "e-1",
            "s3.amazonaws.com",
            "PutObject",
            secret,
            requestParameters={"bucketName": "b", "key": "k"},
            additionalEventData={"bytesTransferredIn": 1024},
        ),
        ct_record(
            "e-2",
            "sts.amazonaws.com",
            "AssumeRole",
            secret,
            requestParameters={
                "roleArn": "arn:aws:iam::111122223333:role/AgentRole",
                "roleSessionName": "agent-1@task-1",
                "durationSeconds": 3600,
                "tags": [{"key": "task_id", "value": "task-1"}],
                "policyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
                "policy": '{"Version":"2012-10-17"}',
            },
            responseElements={
                "credentials": {
                    "accessKeyId": "ASIANEWSESSIONKEY001",
                    "sessionToken": secret,
                    "expiration": "May 1, 2024, 11:00:00 AM",
                },
                "assumedRoleUser": {"arn": "arn:aws:sts::111122223333:assumed-role/AgentRole/x"},
            },
        ),
        ct_record(
            "e-3",
            "iam.amazonaws.com",
            "CreateAccessKey",
            secret,
            requestParameters={"userName": "bot"},
            userIdentity={
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEPRINCIPAL",
                "arn": "arn:aws:iam::111122223333:user/orchestrator",
                "userName": "orchestrator",
                "accessKeyId": "AKIA2ORCHESTRATOR001",
            },
            responseElements={
                "accessKey": {
                    "accessKeyId": "AKIANEWLONGLIVEDKEY1",
                    "createDate": "2024-05-01T10:00:00Z",
                    "userName": "bot",
                    "secretAccessKey": secret,
                }
            },
        ),
        ct_record(
            "e-4",
            "iam.amazonaws.com",
            "UpdateAccessKey",
            secret,
            requestParameters={"accessKeyId": "AKIANEWLONGLIVEDKEY1", "status": "Inactive"},
        ),
        ct_record(
            "e-5",
            "signin.amazonaws.com",
            "ConsoleLogin",
            secret,
            responseElements={"ConsoleLogin": "Failure"},
            errorMessage="Failed authentication",
        ),
        ct_record("e-6", "s3.amazonaws.com", "GetObject", secret, errorCode="AccessDenied"),
    ]


def k8s_events(secret: str) -> list[dict]:
    base = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "stage": "ResponseComplete",
        "sourceIPs": ["10.0.0.12"],
        "userAgent": "kubelet/v1.30.2",
        "requestReceivedTimestamp": "2024-06-01T12:00:00.000000Z",
        "stageTimestamp": "2024-06-01T12:00:00.100000Z",
    }
    spec = {
        "audiences": ["vault"],
        "expirationSeconds": 3607,
        "boundObjectRef": {"kind": "Pod", "name": "researcher-task-42"},
    }
    return [
        base
        | {
            "auditID": "a-1",
            "verb": "create",
            "requestURI": "/api/v1/namespaces/agents/serviceaccounts/runner/token",
            "user": {"username": "system:node:node-a"},
            "objectRef": {
                "resource": "serviceaccounts",
                "namespace": "agents",
                "name": "runner",
                "subresource": "token",
            },
            "responseStatus": {"code": 201},
            "requestObject": {"kind": "TokenRequest", "spec": spec},
            "responseObject": {
                "spec": spec,
                "status": {"token": secret, "expirationTimestamp": "2024-06-01T13:00:07Z"},
            },
            "annotations": {"authentication.kubernetes.io/issued-credential-id": "JTI=abc"},
        },
        base
        | {
            "auditID": "a-2",
            "verb": "get",
            "requestURI": "/api/v1/namespaces/agents/secrets/db",
            "user": {
                "username": "system:serviceaccount:agents:runner",
                "extra": {
                    "authentication.kubernetes.io/credential-id": ["JTI=abc"],
                    "authentication.kubernetes.io/pod-name": ["researcher-task-42"],
                },
            },
            "objectRef": {"resource": "secrets", "namespace": "agents", "name": "db"},
            "responseStatus": {"code": 403, "reason": "Forbidden"},
        },
        base | {"auditID": "a-3", "verb": "list", "stage": "RequestReceived", "objectRef": {}},
    ]


def native_records(secret: str) -> list[dict]:
    return [
        {
            "record_type": "task",
            "event_id": "t-s",
            "ts": "2024-05-01T10:00:00Z",
            "event": "start",
            "task_id": "task-1",
            "agent_id": "agent-1",
        },
        {
            "record_type": "credential",
            "event_id": "c-1",
            "ts": "2024-05-01T10:00:01",
            "event": "issue",
            "credential_ref": "jit-1",
            "credential_kind": "native_jit",
            "principal": "svc",
            "agent_id": "agent-1",
            "task_id": "task-1",
            "parent_credential_ref": "jit-0",
            "scopes": ["crm:read"],
            "ttl_s": 900,
            "issued_at": "2024-05-01T10:00:01Z",
            "source_ip": "10.0.0.1",
            "outcome": "ok",
        },
        {
            "record_type": "credential",
            "event_id": "c-2",
            "ts": 1714557700,
            "event": "renew",
            "credential_ref": "jit-1",
            "ttl_s": "600",
            "expires_at": 1714558300000,
        },
        {
            "record_type": "action",
            "event_id": "a-1",
            "ts": 1714557720,
            "agent_id": "agent-1",
            "task_id": "task-1",
            "tool": "send_email",
            "system": "mail",
            "arguments": {"to": "a@example.com", "note": secret},
            "outcome": "ok",
            "error_type": "",
            "duration_ms": 12.5,
            "destination": "a@example.com",
            "action_class": "egress",
            "sensitivity": "medium",
            "external": True,
            "annotations": {"readOnlyHint": False},
            "credential_ref": "jit-1",
            "credential_kind": "native_jit",
            "source_ip": "10.0.0.2",
            "trace_id": TRACE,
            "span_id": "b7ad6b7100000002",
            "parent_span_id": "b7ad6b7100000001",
            "bytes_out": 2048,
        },
        {
            "record_type": "action",
            "ts": "2024-05-01T10:03:00Z",
            "agent_id": "agent-1",
            "tool": "read_file",
            "arguments": json.dumps({"path": "/tmp/x", "token": secret}),
            "bytes_out": "1024",
        },
        {
            "record_type": "task",
            "event_id": "t-a",
            "ts": "2024-05-01T10:01:00Z",
            "event": "approval",
            "task_id": "task-1",
            "approved_by": "alice",
            "approved_scope": ["crm:read"],
            "approval_expires_at": "2024-05-01T12:00:00Z",
        },
        {
            "record_type": "task",
            "event_id": "t-e",
            "ts": "2024-05-01T10:10:00Z",
            "event": "end",
            "task_id": "task-1",
            "status": "completed",
        },
    ]


BASES = {
    "otlp": lambda secret: [otlp_export(secret)],
    "vault": vault_entries,
    "cloudtrail": ct_records,
    "k8s": k8s_events,
    "native": native_records,
}
JSON_FORMATS = tuple(BASES)

# Fields each parser names in its reject reasons (docs/schema.md, "Native formats" and the parsers).
NATIVE_FIELDS = {
    "record_type",
    "ts",
    "agent_id",
    "tool",
    "task_id",
    "outcome",
    "action_class",
    "sensitivity",
    "external",
    "bytes_out",
    "event",
    "credential_ref",
    "credential_kind",
    "ttl_s",
    "expires_at",
    "issued_at",
    "approval_expires_at",
}
FIELDS = {
    "otlp": {
        "resourceSpans",
        "resourceSpans.scopeSpans",
        "resourceSpans.scopeSpans.spans",
        "traceId",
        "spanId",
        "startTimeUnixNano",
    },
    "vault": {"type", "time", "request", "request.id", "request.path"},
    "cloudtrail": {
        "eventTime",
        "eventSource",
        "eventName",
        "eventID",
        "responseElements.credentials.expiration",
        "responseElements.accessKey.createDate",
    },
    "k8s": {"auditID", "verb", "stageTimestamp", "requestReceivedTimestamp"},
    "native": NATIVE_FIELDS,
    "native_csv": NATIVE_FIELDS,
    "native_parquet": NATIVE_FIELDS,
}
ANY = None  # any documented reason of the format
SPANS = ("resourceSpans", 0, "scopeSpans", 0, "spans")  # where the base export keeps its spans


def span_of(path: tuple) -> int | None:
    """The span of the base export a path points into; None for the parts around the spans."""
    return path[5] if len(path) > 5 and path[:5] == SPANS else None


def allowed_fields(fmt: str, path: tuple) -> set[str] | None:
    """Reject reasons a single-field change at ``path`` of a valid record may cause: the field
    itself, or the fields it decides about (``""``: the record is not a JSON object)."""
    root = path[0]
    if fmt == "otlp":
        if span_of(path) is None:  # a part of the export around the spans
            return ANY
        if len(path) == 6:  # the span itself
            return {"", "traceId", "spanId", "startTimeUnixNano"}
        return {path[6]} & FIELDS["otlp"]
    if fmt == "native":
        if root == "record_type":
            return ANY  # another record type requires other fields
        return {root} & NATIVE_FIELDS
    if fmt == "vault":
        return {f for f in FIELDS["vault"] if f.split(".")[0] == root}
    if fmt == "cloudtrail":
        issuance = {
            "responseElements.credentials.expiration",
            "responseElements.accessKey.createDate",
        }
        if root in ("eventSource", "eventName", "errorCode", "responseElements"):
            return ({root} & FIELDS["cloudtrail"]) | issuance
        return {root} & FIELDS["cloudtrail"]
    if fmt == "k8s":
        if root in ("stageTimestamp", "requestReceivedTimestamp"):
            return {"stageTimestamp", "requestReceivedTimestamp"}
        return {root} & FIELDS["k8s"]
    raise AssertionError(fmt)


# --- the properties ----------------------------------------------------------------------------------

_REASONS: list[tuple[str, set[str] | None]] = [
    (r"malformed JSON \(invalid syntax or truncated line\)", None),
    (r"malformed JSON document \(invalid syntax or truncated\)", None),
    (r"invalid UTF-8 byte sequence", None),
    (r"record too large: (?P<size>\d+) bytes exceeds the limit of (?P<limit>\d+) bytes", None),
    (r"empty file: no records", None),
    (
        r"(record|document|span) is not a JSON object \(got (string|number|boolean|array|null)\)",
        None,
    ),
    (r"missing required field (?P<field>[\w.]+)", None),
    (r"empty required field (?P<field>[\w.]+)", None),
    (r"wrong type for (?P<field>[\w.\[\]]+): expected \S.*", None),
    (r"unparseable timestamp in (?P<field>[\w.]+): .*", None),
    (r"timestamp out of range in (?P<field>[\w.]+): .+", None),
    (r"invalid value for (?P<field>[\w.]+): .*", None),
    (r"unknown Vault audit entry type: (?P<type>.*)", {"vault"}),
    (r"not an OTLP trace export: missing (?P<resourceSpans>resourceSpans)", {"otlp"}),
    (r"invalid (?P<field>traceId|spanId): .*", {"otlp"}),
    (r"csv error: \S.*", {"native_csv"}),
    # Structure the parser would otherwise skip: a misspelt or unknown main key.
    (r"no (scopeSpans|spans) in [\w.\[\]]+ \(unexpected keys: .*\)", {"otlp"}),
    (r"misspelt top-level key: \w+ \(expected \w+\)", {"vault"}),
    (
        r"neither a CloudTrail record nor a \{\"Records\": \[\.\.\.\]\} document "
        r"\(top-level keys: .*\)",
        {"cloudtrail"},
    ),
    (r"Records is not an array \(got \w+\)", {"cloudtrail"}),
    (r"unknown field\(s\) .+ \(misspelt\?\)", {"k8s"}),
    (r"missing required field items \(EventList keys: .*\)", {"k8s"}),
]


def reason_field(reason: str, source_format: str, cfg) -> str:
    """The field a documented reject reason names (``""`` when it names the problem only);
    fails on an undocumented, generic or empty reason."""
    assert reason and reason.strip(), "empty reject reason"
    for pattern, formats in _REASONS:
        match = re.fullmatch(pattern, reason, re.S)
        if not match:
            continue
        assert formats is None or source_format in formats, (reason, source_format)
        groups = match.groupdict()
        if "size" in groups:
            assert int(groups["limit"]) in (cfg.max_record_bytes, cfg.max_document_bytes)
            assert int(groups["size"]) > int(groups["limit"]), reason
        if "type" in groups:
            return "type"
        if "resourceSpans" in groups:
            return "resourceSpans"
        # Parts of an OTLP export are named with their position: resourceSpans[0].scopeSpans.
        name = re.sub(r"\[\d+\]", "", groups.get("field") or "")
        assert not name or name in FIELDS[source_format], (
            f"reason names {name!r}, not a field the {source_format} parser reads: {reason!r}"
        )
        return name
    pytest.fail(f"undocumented or generic reject reason: {reason!r} ({source_format})")


@dataclass
class Outcome:
    report: IngestReport
    rejects: dict[tuple[str, int, int], list[str]] = field(default_factory=dict)  # -> fields

    def fields_at(self, path: Path, line: int, record: int) -> list[str] | None:
        return self.rejects.get((str(path), line, record))


def check(
    ing: Ingester, report: IngestReport, planted: tuple[str, ...] = (), *, fresh: bool = True
) -> Outcome:
    """Properties 2 and 3 (property 1 is that ``ingest`` returned at all)."""
    con, cfg = ing.con, ing.settings
    assert conservation_violations(con) == []
    for f in report.files:
        if f.error:
            assert f.source_file in f.error, f"a file error must name the file: {f.error!r}"
            assert (f.records, f.loaded, f.rejected, f.duplicates) == (0, 0, 0, 0)
        else:
            assert f.balanced, f
            assert min(f.records, f.loaded, f.rejected, f.duplicates) >= 0, f
    if fresh:  # one run on a new warehouse: the report and the warehouse agree
        assert report.total("rejected") == ing.one("SELECT count(*) FROM rejected_events")
        assert report.total("loaded") == ing.one(
            "SELECT count(*) FROM ingest_ledger WHERE disposition = 'loaded'"
        )
        assert ing.one("SELECT count(*) FROM ingest_files") == len(
            [f for f in report.files if not f.error]
        )
    assert (
        ing.rows("SELECT event_id FROM ingest_ledger GROUP BY event_id HAVING count(*) > 1") == []
    )
    for col in ing.rows(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_catalog = current_database() AND table_schema = 'main'
             AND data_type LIKE 'TIMESTAMP%'"""
    ):  # an unrepresentable timestamp fails when printed
        ing.one(f'SELECT count("{col["column_name"]}"::VARCHAR) FROM "{col["table_name"]}"')
    outcome = Outcome(report)
    for row in ing.rows(
        """SELECT source_format, source_file, source_line, source_record, reason, raw_text,
                  raw_bytes FROM rejected_events"""
    ):
        name = reason_field(row["reason"], row["source_format"], cfg)
        key = (row["source_file"], row["source_line"], row["source_record"])
        outcome.rejects.setdefault(key, []).append(name)
        assert row["raw_bytes"] is not None and row["raw_bytes"] >= 0, row
        if row["raw_text"] is not None:
            assert len(row["raw_text"]) <= cfg.reject_text_chars, row["reason"]
    if planted:
        stored = ing.stored_text()
        for secret in planted:
            assert secret not in stored, f"planted secret {secret[:8]}... stored unredacted"
    return outcome


def check_ts_in_range(ing: Ingester) -> None:
    """Every loaded event time is one the parsers accept (out-of-range ones are rejected)."""
    for table in ("agent_actions", "credential_events", "task_events", "agent_spans"):
        low, high = ing.con.execute(f"SELECT min(ts), max(ts) FROM {table}").fetchone()
        assert low is None or TS_MIN <= low <= high <= TS_MAX, (table, low, high)


def check_mutants(fmt: str, outcome: Outcome, path: Path, placed: list) -> None:
    """A record changed in one field is rejected only for that field (or one it decides about);
    an unchanged record is never rejected. ``placed``: ((line, record), (path, raw) or None)."""
    for (line, record), mutation in placed:
        fields = outcome.fields_at(path, line, record)
        if fields is None:
            continue
        allowed = set() if mutation is None else allowed_fields(fmt, mutation[0])
        if allowed is ANY:
            continue
        if mutation is not None and mutation[1]:
            allowed = allowed | {""}  # raw JSON text the parser may refuse as malformed
        assert set(fields) <= allowed, (
            f"{fmt} record at line {line}/{record} changed at {mutation} rejected for {fields}"
        )


# --- rendering records into files --------------------------------------------------------------------

LAYOUTS = {
    "otlp": ["lines", "document"],
    "vault": ["lines"],
    "cloudtrail": ["lines", "records", "array", "records_document"],
    "k8s": ["lines", "eventlist"],
    "native": ["lines"],
}


def render(fmt: str, records: list, layout: str) -> tuple[bytes, list[tuple[int, int]]]:
    """File content and each record's (source_line, source_record)."""
    if layout == "lines":
        text = "\n".join(dump(r) for r in records) + "\n"
        return text.encode(), [(i + 1, 0) for i in range(len(records))]
    if layout == "document":  # one pretty-printed document (OTLP: its spans are the records)
        return pretty(records[0]).encode() + b"\n", [(1, 0)]
    container = {
        "records": {"Records": records},
        "records_document": {"Records": records},
        "array": records,
        "eventlist": {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": records},
    }[layout]
    text = pretty(container) if layout == "records_document" else dump(container)
    return text.encode() + b"\n", [(1, i) for i in range(len(records))]


@st.composite
def mutants(draw, fmt: str, secret: str, values=json_values):
    """A list of records of ``fmt``: valid ones, and ones changed in one field (or one key removed)."""
    bases = BASES[fmt](secret)
    out = []
    for _ in range(draw(st.integers(1, 5 if fmt != "otlp" else 2))):
        base = bases[draw(st.integers(0, len(bases) - 1))]
        if draw(st.integers(0, 4)) == 0:
            out.append((base, None))
            continue
        path = draw(st.sampled_from(all_paths(base)))
        value = draw(st.one_of(st.just(DELETE), values))
        out.append((set_path(base, path, value), (path, has_raw(value))))
    return out


def otlp_record_count(doc) -> int:
    """Records an OTLP export yields: each span, plus one per part of the wrong type that hides
    spans; a document that is no export at all is one record."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
        return 1
    count = 0
    for resource in doc["resourceSpans"]:
        scopes = resource.get("scopeSpans") if isinstance(resource, dict) else []
        if not isinstance(resource, dict) or not isinstance(scopes, list | None):
            count += 1
            continue
        for scope in scopes or []:
            spans = scope.get("spans") if isinstance(scope, dict) else []
            if not isinstance(scope, dict) or not isinstance(spans, list | None):
                count += 1
                continue
            count += len(spans or [])
    return count


def otlp_spans_placed(records: list, placed: list[tuple[int, int]]) -> list:
    """OTLP: the mutation of each export, moved onto the span it changed."""
    out = []
    for (line, _), (_, mutation) in zip(placed, records, strict=True):
        for span in range(3):
            hit = mutation is not None and span_of(mutation[0]) in (None, span)
            out.append(((line, span), mutation if hit else None))
    return out


# --- 1. arbitrary bytes, any format ------------------------------------------------------------------


def gzip_corrupted(data: bytes, cut: int, flip: int) -> bytes:
    blob = bytearray(gzip.compress(data))
    if flip:
        pos = 10 + flip % max(1, len(blob) - 10)
        blob[min(pos, len(blob) - 1)] ^= 0xFF
    return bytes(blob[: max(2, len(blob) - cut)])


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=3000),
        st.text(max_size=500).map(str.encode),
        st.sampled_from(
            [b"{", b"[", b'{"', b"\n\n", b"\xef\xbb\xbf{}", b"PAR1", b"\x1f\x8b", b"\x00"]
        ),
    ),
    wrap=st.sampled_from(["plain", "gzip", "corrupt_gzip", "magic_gzip", "magic_parquet"]),
    cut=st.integers(0, 40),
    flip=st.integers(0, 10_000),
    fmt=st.sampled_from([None, *FORMATS]),
)
def test_arbitrary_bytes_never_break_ingest(data, wrap, cut, flip, fmt):
    content = {
        "plain": data,
        "gzip": gzip.compress(data),
        "corrupt_gzip": gzip_corrupted(data, cut, flip),
        "magic_gzip": b"\x1f\x8b" + data,
        "magic_parquet": b"PAR1" + data,
    }[wrap]
    with warehouse(max_record_bytes=1024, reject_text_chars=64) as ing:
        path = write(ing, "junk.log", content)
        report = ing.files(path, fmt=fmt)
        check(ing, report)
        assert [f.source_file for f in report.files] == [str(path)]


# --- 2. truncated JSON ---------------------------------------------------------------------------------


@FEW
@given(
    fmt=st.sampled_from(JSON_FORMATS),
    layout_pick=st.integers(0, 3),
    secret=secrets,
    cut=st.floats(0, 1, exclude_max=True),
    detect=st.booleans(),
)
def test_truncated_json(fmt, layout_pick, secret, cut, detect):
    records = BASES[fmt](secret)
    layout = LAYOUTS[fmt][layout_pick % len(LAYOUTS[fmt])]
    data, _ = render(fmt, records, layout)
    data = data[: int(len(data) * cut)]
    with warehouse(reject_text_chars=200) as ing:
        path = write(ing, f"cut.{fmt}.json", data)
        report = ing.files(path, fmt=None if detect else fmt)
        check(ing, report, (secret,))
        (rep,) = report.files
        assert rep.error or rep.records >= 1 or data.strip() == b""


# --- 3. wrong types (and removed keys) for every field the parsers read ---------------------------


@pytest.mark.parametrize("fmt", JSON_FORMATS)
@FEW
@given(data=st.data(), secret=secrets)
def test_wrong_types_for_every_field(fmt, data, secret):
    records = data.draw(mutants(fmt, secret))
    layout = data.draw(st.sampled_from(LAYOUTS[fmt]))
    if layout == "document":
        records = records[:1]
    content, placed = render(fmt, [r for r, _ in records], layout)
    with warehouse(reject_text_chars=512) as ing:
        path = write(ing, f"fuzz.{fmt}.json", content)
        report = ing.files(path, fmt=fmt)
        outcome = check(ing, report, (secret,))
        check_ts_in_range(ing)
        located = list(zip(placed, [m for _, m in records], strict=True))
        expected = len(records)
        if fmt == "otlp":
            located = otlp_spans_placed(records, placed)
            expected = sum(otlp_record_count(r) for r, _ in records)
        check_mutants(fmt, outcome, path, located)
        assert report.files[0].records == expected, "records silently dropped or invented"


# --- 4. duplicate keys ---------------------------------------------------------------------------------


def with_duplicate(record, path: tuple, value, first: bool):
    """``record`` with the object at ``path[:-1]`` holding key ``path[-1]`` twice."""
    parent_path, key = path[:-1], path[-1]
    parent = get_path(record, parent_path)
    pairs = Pairs(parent.items())
    index = next(i for i, (k, _) in enumerate(pairs) if k == key)
    pairs.insert(index if first else len(pairs), (key, value))
    if not parent_path:
        return pairs
    return set_path(record, parent_path, pairs)


@FEW
@given(data=st.data(), fmt=st.sampled_from(JSON_FORMATS), secret=secrets, detect=st.booleans())
def test_duplicate_keys(data, fmt, secret, detect):
    records, located = [], []
    for _ in range(data.draw(st.integers(1, 4))):
        bases = BASES[fmt](secret)
        base = data.draw(st.sampled_from(bases))
        keyed = [p for p in all_paths(base) if isinstance(p[-1], str)]
        path = data.draw(st.sampled_from(keyed))
        value = data.draw(st.one_of(json_values, st.just(get_path(base, path))))
        records.append(with_duplicate(base, path, value, data.draw(st.booleans())))
        located.append((path, has_raw(value)))
    content, placed = render(fmt, records, "lines")
    with warehouse() as ing:
        path = write(ing, f"dup.{fmt}.jsonl", content)
        report = ing.files(path, fmt=None if detect else fmt)
        outcome = check(ing, report, (secret,))
        check_ts_in_range(ing)
        if report.files[0].error:
            return
        spots = list(zip(placed, located, strict=True))
        if fmt == "otlp":
            spots = otlp_spans_placed(list(zip(records, located, strict=True)), placed)
        check_mutants(fmt, outcome, path, spots)


# --- 5. timestamps far in the past and future, lifetimes that overflow -----------------------------

TIME_FIELDS = {
    "otlp": [
        ("resourceSpans", 0, "scopeSpans", 0, "spans", 0, "startTimeUnixNano"),
        ("resourceSpans", 0, "scopeSpans", 0, "spans", 1, "startTimeUnixNano"),
        ("resourceSpans", 0, "scopeSpans", 0, "spans", 0, "endTimeUnixNano"),
        ("resourceSpans", 0, "scopeSpans", 0, "spans", 1, "endTimeUnixNano"),
        ("resourceSpans", 0, "scopeSpans", 0, "spans", 2, "endTimeUnixNano"),
    ],
    "vault": [
        ("time",),
        ("response", "auth", "token_issue_time"),
        ("response", "auth", "token_ttl"),
        ("response", "auth", "ttl"),
        ("response", "lease_duration"),
    ],
    "cloudtrail": [
        ("eventTime",),
        ("responseElements", "credentials", "expiration"),
        ("responseElements", "accessKey", "createDate"),
        ("requestParameters", "durationSeconds"),
    ],
    "k8s": [
        ("stageTimestamp",),
        ("requestReceivedTimestamp",),
        ("requestObject", "spec", "expirationSeconds"),
        ("responseObject", "status", "expirationTimestamp"),
    ],
    "native": [("ts",), ("ttl_s",), ("expires_at",), ("issued_at",), ("approval_expires_at",)],
}


LIFETIME_FIELDS = {
    "ttl_s",
    "token_ttl",
    "ttl",
    "lease_duration",
    "durationSeconds",
    "expirationSeconds",
}


@st.composite
def timed_records(draw, fmt: str, secret: str):
    bases = BASES[fmt](secret)
    out = []
    for _ in range(draw(st.integers(1, 4))):
        record = draw(st.sampled_from(bases))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(TIME_FIELDS[fmt]))
            try:
                get_path(record, path[:-1])
            except (KeyError, IndexError, TypeError):
                continue
            if not isinstance(get_path(record, path[:-1]), dict):
                continue
            values = lifetimes if path[-1] in LIFETIME_FIELDS else time_values
            record = set_path(record, path, draw(st.one_of(values, time_values)))
        out.append(record)
    return out


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(JSON_FORMATS), secret=secrets)
def test_timestamps_far_in_the_past_and_future(data, fmt, secret):
    records = data.draw(timed_records(fmt, secret))
    layout = data.draw(st.sampled_from(LAYOUTS[fmt]))
    content, _ = render(fmt, records[:1] if layout == "document" else records, layout)
    with warehouse() as ing:
        path = write(ing, f"time.{fmt}.json", content)
        report = ing.files(path, fmt=fmt)
        outcome = check(ing, report, (secret,))
        check_ts_in_range(ing)
        for fields in outcome.rejects.values():
            assert set(fields) <= FIELDS[fmt] | {""}, fields


# --- 6. deeply nested JSON -----------------------------------------------------------------------------


def nested(depth: int, kind: str, inner: str) -> str:
    if kind == "array":
        return "[" * depth + inner + "]" * depth
    if kind == "object":
        return '{"a":' * depth + inner + "}" * depth
    # OTLP AnyValue nesting: kvlists inside kvlists.
    return '{"kvlistValue":{"values":[{"key":"k","value":' * depth + inner + "}]}}" * depth


NEST_AT = {  # where a deep value goes inside a valid record
    "otlp": ("resourceSpans", 0, "scopeSpans", 0, "spans", 1, "attributes", 2, "value"),
    "vault": ("request", "data"),
    "cloudtrail": ("requestParameters",),
    "k8s": ("requestObject",),
    "native": ("arguments",),
}


@pytest.mark.slow
@SMALL
@given(
    fmt=st.sampled_from(JSON_FORMATS),
    depth=st.one_of(st.just(10_000), st.integers(1, 10_000)),
    kind=st.sampled_from(["array", "object", "anyvalue"]),
    placement=st.sampled_from(["line", "field", "document", "truncated", "second_line"]),
    secret=secrets,
    detect=st.booleans(),
)
def test_deeply_nested_json(fmt, depth, kind, placement, secret, detect):
    inner = json.dumps({"stringValue": secret} if kind == "anyvalue" else secret)
    deep = nested(depth, kind, inner)
    base = BASES[fmt](secret)[0 if fmt != "native" else 3]
    first = dump(base)
    if placement == "line":
        text = deep + "\n" + first + "\n"
    elif placement == "second_line":
        text = first + "\n" + deep + "\n"
    elif placement == "field":
        text = dump(set_path(base, NEST_AT[fmt], Raw(deep))) + "\n"
    elif placement == "document":
        text = deep[: depth // 2] + "\n" + deep[depth // 2 :] + "\n"
    else:
        text = deep[: len(deep) - 1 - depth // 3] + "\n" + first + "\n"
    with warehouse(reject_text_chars=300) as ing:
        path = write(ing, f"deep.{fmt}.json", text.encode())
        report = ing.files(path, fmt=None if detect else fmt)
        check(ing, report, (secret,))
        (rep,) = report.files
        assert rep.error or rep.records >= 1


# --- 7. huge strings, below and above max_record_bytes ----------------------------------------------

HUGE_AT = {  # a free-text field whose stored form is redacted (or not stored at all)
    "otlp": (
        "resourceSpans",
        0,
        "scopeSpans",
        0,
        "spans",
        1,
        "attributes",
        2,
        "value",
        "stringValue",
    ),
    "vault": ("request", "data", "note"),
    "cloudtrail": ("requestParameters", "note"),
    "k8s": ("responseObject", "status", "token"),
    "native": ("arguments", "note"),
}
HUGE_BASE = {
    "otlp": otlp_export,
    "vault": lambda s: vault_entries(s)[0],
    "cloudtrail": lambda s: ct_records(s)[0],
    "k8s": lambda s: k8s_events(s)[0],
    "native": lambda s: native_records(s)[3],
}


@pytest.mark.slow
@SMALL
@given(
    fmt=st.sampled_from(JSON_FORMATS),
    limit=st.sampled_from([512, 4096, 65536]),
    delta=st.one_of(st.integers(-40, 40), st.sampled_from([3_000_000, 5_000_000])),
    keep=st.sampled_from([16, 100, 2048]),
    secret=secrets,
    where=st.floats(0, 1),
    filler=st.sampled_from(["a", "\u00e9", "\u0000", " ", "\\", '\\"']),
    document=st.booleans(),
)
def test_huge_strings_below_and_above_the_limit(
    fmt, limit, delta, keep, secret, where, filler, document
):
    base = HUGE_BASE[fmt](secret)
    empty = len(dump(set_path(base, HUGE_AT[fmt], "")).encode())
    unit = len(json.dumps(filler)) - 2  # bytes per filler character once written as JSON
    body = filler * max(0, (limit + delta - empty) // unit)
    cut = int(len(body) * where)
    body = body[:cut] + " " + secret + " " + body[cut + len(secret) + 2 :]
    record = set_path(base, HUGE_AT[fmt], body)
    text = dump(record)
    size = len(text.encode())
    overrides = {"max_record_bytes": limit, "reject_text_chars": keep}
    if document and fmt in ("otlp", "cloudtrail"):
        text = pretty(record if fmt == "otlp" else {"Records": [record]})
        size = len(text.encode()) + 1  # a document unit keeps its final newline
        overrides["max_document_bytes"] = limit
    with warehouse(**overrides) as ing:
        path = write(ing, f"huge.{fmt}.json", text.encode() + b"\n")
        report = ing.files(path, fmt=fmt)
        check(ing, report, (secret,))
        too_large = ing.rows(
            "SELECT raw_bytes FROM rejected_events WHERE reason LIKE 'record too large%'"
        )
        assert [r["raw_bytes"] for r in too_large] == ([size] if size > limit else []), (
            size,
            limit,
        )


# --- 8. CSV and Parquet --------------------------------------------------------------------------------

CSV_COLUMNS = sorted(NATIVE_FIELDS | {"event_id", "arguments", "scopes", "status", "x", ""})
CSV_HOSTILE_CELLS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['"', '"unterminated', "a,b", '""', "\r", "\n", ";", "|", "\t", "\x00", "\\"]),
    st.sampled_from(["action", "task", "credential", "start", "issue", "agent", "read_file"]),
    st.sampled_from([s for s in TIME_STRINGS if s]),
)
CSV_CLEAN_CELLS = st.one_of(
    st.sampled_from(["action", "task", "credential", "start", "end", "issue", "use", "agent", "t"]),
    st.sampled_from([s for s in TIME_STRINGS if not set(s) & set(',"\r\n;|\t ')]),
    st.text(ALNUM + "-_.:", max_size=10),
)


@st.composite
def csv_files(draw, secret: str):
    """A CSV with a record_type header: either hostile (broken quoting, ragged rows, odd bytes)
    or clean with a secret in the arguments column."""
    columns = ["record_type", *draw(st.lists(st.sampled_from(CSV_COLUMNS), max_size=6))]
    hostile = draw(st.booleans())
    lines = [",".join(columns)]
    for _ in range(draw(st.integers(0, 6))):
        if hostile:
            cells = draw(st.lists(CSV_HOSTILE_CELLS, max_size=len(columns) + 2))
            quote = draw(st.booleans())
            lines.append(",".join('"' + c + '"' if quote else c for c in cells))
        else:
            cells = [
                draw(CSV_CLEAN_CELLS) if c != "arguments" else f"see {secret} here" for c in columns
            ]
            lines.append(",".join(cells))
    data = "\r\n".join(lines) if draw(st.booleans()) else "\n".join(lines)
    raw = data.encode()
    if hostile and draw(st.booleans()):
        pos = draw(st.integers(0, len(raw)))
        raw = raw[:pos] + draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
    return raw, hostile


@FEW
@given(data=st.data(), secret=secrets, compress=st.booleans(), detect=st.booleans())
def test_native_csv(data, secret, compress, detect):
    raw, hostile = data.draw(csv_files(secret))
    with warehouse(reject_text_chars=128) as ing:
        path = write(ing, "native.csv", gzip.compress(raw) if compress else raw)
        report = ing.files(path, fmt=None if detect else "native_csv")
        check(ing, report, () if hostile else (secret,))
        check_ts_in_range(ing)


PARQUET_TS = {
    "string": (pa.string(), st.one_of(st.none(), st.sampled_from(TIME_STRINGS))),
    "int64": (pa.int64(), st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))),
    "float64": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "timestamp": (
        pa.timestamp("us"),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    ),
}
PARQUET_EXTRA = {
    "binary": (pa.binary(), st.binary(max_size=8)),
    "list": (pa.list_(pa.int64()), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)),
    "map": (
        pa.map_(pa.string(), pa.int64()),
        st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2).map(
            lambda d: list(d.items())
        ),
    ),
    "struct": (
        pa.struct([("note", pa.string())]),
        st.fixed_dictionaries({"note": st.text(max_size=5)}),
    ),
    "duration": (pa.duration("s"), st.integers(-(2**40), 2**40)),
    "null": (pa.null(), st.none()),
    "large_string": (pa.large_string(), st.text(max_size=5)),
}


@SMALL
@given(data=st.data(), secret=secrets, detect=st.booleans())
def test_native_parquet(data, secret, detect):
    rows = data.draw(st.integers(0, 5))
    ts_type, ts_values = PARQUET_TS[data.draw(st.sampled_from(sorted(PARQUET_TS)))]
    extra_type, extra_values = PARQUET_EXTRA[data.draw(st.sampled_from(sorted(PARQUET_EXTRA)))]
    pick = lambda strategy: [data.draw(strategy) for _ in range(rows)]  # noqa: E731
    table = pa.table(
        {
            "record_type": pa.array(
                pick(st.one_of(st.none(), st.sampled_from(["action", "task", "credential", "x"]))),
                pa.string(),
            ),
            "ts": pa.array(pick(ts_values), ts_type),
            "event": pa.array(
                pick(st.sampled_from(["start", "end", "issue", "use", None])), pa.string()
            ),
            "task_id": pa.array(
                pick(st.one_of(st.none(), st.text(ALNUM, max_size=4))), pa.string()
            ),
            "agent_id": pa.array(pick(st.sampled_from(["agent-1", "", None])), pa.string()),
            "tool": pa.array(pick(st.sampled_from(["read_file", "", None])), pa.string()),
            "credential_ref": pa.array(pick(st.sampled_from(["jit-1", None])), pa.string()),
            "ttl_s": pa.array(
                pick(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))), pa.int64()
            ),
            "arguments": pa.array([json.dumps({"note": secret})] * rows, pa.string()),
            "extra": pa.array(pick(extra_values), extra_type),
        }
    )
    with warehouse() as ing:
        path = ing.tmp_path / "in" / "native.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(table, path)
        report = ing.files(path, fmt=None if detect else "native_parquet")
        check(ing, report, (secret,))
        check_ts_in_range(ing)
        (rep,) = report.files
        assert rep.error is None, rep.error  # a well-formed Parquet file is always read


# --- 9. mixed formats in one folder, with junk ----------------------------------------------------


def native_csv_text(secret: str) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, ["record_type", "event_id", "ts", "agent_id", "tool", "arguments"])
    writer.writeheader()
    writer.writerow(
        {
            "record_type": "action",
            "event_id": "csv-1",
            "ts": "2024-05-01T10:00:00Z",
            "agent_id": "agent-1",
            "tool": "read_file",
            "arguments": json.dumps({"note": secret}),
        }
    )
    return out.getvalue().encode()


def native_parquet_bytes(secret: str) -> bytes:
    sink = io.BytesIO()
    pq.write_table(
        pa.table(
            {
                "record_type": ["action"],
                "event_id": ["pq-1"],
                "ts": ["2024-05-01T10:00:00Z"],
                "agent_id": ["agent-1"],
                "tool": ["read_file"],
                "arguments": [json.dumps({"note": secret})],
            }
        ),
        sink,
    )
    return sink.getvalue()


GOOD_KINDS = {
    "otlp": lambda s: dump(otlp_export(s)).encode() + b"\n",
    "otlp_document": lambda s: pretty(otlp_export(s)).encode(),
    "vault": lambda s: render("vault", vault_entries(s), "lines")[0],
    "cloudtrail": lambda s: pretty({"Records": ct_records(s)}).encode(),
    "cloudtrail_lines": lambda s: render("cloudtrail", ct_records(s), "lines")[0],
    "k8s": lambda s: render("k8s", k8s_events(s), "lines")[0],
    "k8s_eventlist": lambda s: render("k8s", k8s_events(s), "eventlist")[0],
    "native": lambda s: render("native", native_records(s), "lines")[0],
    "native_csv": native_csv_text,
    "native_parquet": native_parquet_bytes,
    "empty": lambda s: b"",
    "blank_lines": lambda s: b"\n\n  \n",
}
JUNK_KINDS = {
    "unknown_shape": lambda s, b: dump({"hello": s, "n": 1}).encode() + b"\n",
    "text": lambda s, b: b"just some text with " + s.encode() + b"\n",
    "bytes": lambda s, b: b,
    "truncated": lambda s, b: render("cloudtrail", ct_records(s), "lines")[0][: len(b) + 5],
    "corrupt_gzip": lambda s, b: gzip_corrupted(b + s.encode(), 3, len(b)),
    "deep": lambda s, b: nested(3000, "array", json.dumps(s)).encode() + b"\n",
}


@pytest.mark.slow
@SMALL
@given(
    files=st.lists(
        st.tuples(
            st.sampled_from(sorted(GOOD_KINDS) + sorted(JUNK_KINDS)),
            st.sampled_from([".json", ".jsonl", ".log", ".ndjson", ".csv", ".parquet", ".txt", ""]),
            st.booleans(),  # gzip
            st.sampled_from(["", "sub/", "sub/deeper/", ".hidden/", "."]),  # "." : a hidden file
            st.binary(max_size=200),
        ),
        min_size=1,
        max_size=8,
    ),
    secret=secrets,
    batch_bytes=st.sampled_from([1, 2048, 256 * 1024 * 1024]),
)
def test_mixed_formats_in_one_folder(files, secret, batch_bytes):
    with warehouse(ingest_batch_bytes=batch_bytes, reject_text_chars=256) as ing:
        folder = ing.tmp_path / "in"
        folder.mkdir()
        good: set[str] = set()
        for i, (kind, ext, compress, where, junk) in enumerate(files):
            maker = GOOD_KINDS.get(kind)
            content = maker(secret) if maker else JUNK_KINDS[kind](secret, junk)
            if compress and kind != "corrupt_gzip":
                content = gzip.compress(content)
            name = f"{where}{i}-{kind}{ext}" + (".gz" if compress else "")
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            # A gzipped Parquet file is a file error: detection decompresses, read_parquet does not.
            if (
                maker
                and kind not in ("empty", "blank_lines")
                and not (compress and kind == "native_parquet")
            ):
                good.add(str(path))
        expected = [str(p) for p in expand_paths([folder])]
        report = ing.files(folder)
        check(ing, report, (secret,))
        check_ts_in_range(ing)
        assert sorted(f.source_file for f in report.files) == sorted(expected)
        for f in report.files:
            assert "/." not in f.source_file.removeprefix(str(folder))  # hidden: never read
            if f.source_file in good:
                assert f.error is None, f.error
                assert f.records >= 1


# --- 10. request/response and audit stages split across files and runs -----------------------------


@pytest.mark.slow
@settings(FUZZ, max_examples=examples(10))
@given(
    data=st.data(),
    pairs=st.integers(1, 4),
    n_files=st.integers(1, 4),
    runs=st.integers(1, 3),
)
def test_split_request_response_pairs_across_files_and_runs(data, pairs, n_files, runs):
    secret = data.draw(secrets)
    vault, k8s = [], []
    for i in range(pairs):
        error = data.draw(st.sampled_from([None, "permission denied", "internal error"]))
        rid = f"req-{i}"
        vault.append(vault_entry(rid, "secret/data/x", secret, entry_type="request", error=error))
        vault.append(vault_entry(rid, "secret/data/x", secret, error=error))
        event = k8s_events(secret)[1] | {"auditID": f"audit-{i}"}
        for stage in ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"):
            k8s.append(event | {"stage": stage})
    junk = [Raw("{truncated"), Raw("[1, 2]")]
    entries = [("vault", e) for e in vault + junk] + [("k8s", e) for e in k8s + junk]
    order = data.draw(st.permutations(range(len(entries))))
    files: dict[tuple[str, int, int], list] = {}
    for i in order:
        fmt, entry = entries[i]
        target = (fmt, data.draw(st.integers(0, n_files - 1)), data.draw(st.integers(0, runs - 1)))
        files.setdefault(target, []).append(entry)
    with warehouse() as ing:
        for run in range(runs):
            paths = []
            for (fmt, n, r), chunk in sorted(files.items(), key=lambda kv: str(kv[0])):
                if r == run:
                    path = write(ing, f"run{run}/{fmt}-{n}.log", render(fmt, chunk, "lines")[0])
                    paths.append(path)
            if run and data.draw(st.booleans()):
                paths.extend(sorted((ing.tmp_path / "in").glob(f"run{run - 1}/*.log")))  # again
            report = ing.files(*paths, fmt=None)
            check(ing, report, (secret,), fresh=False)
        actions = ing.rows("SELECT event_id, outcome FROM agent_actions")
        ids = [a["event_id"] for a in actions]
        assert sorted(ids) == sorted(
            [f"vault:req-{i}" for i in range(pairs)] + [f"k8s:audit-{i}" for i in range(pairs)]
        )
        # The response (Vault) and ResponseComplete (Kubernetes) win, whatever came first.
        assert {a["outcome"] for a in actions} <= {"ok", "denied", "error"}


# --- regressions: what the fuzzing found ----------------------------------------------------------

NATIVE_OK = {
    "record_type": "action",
    "event_id": "ok-1",
    "ts": "2024-05-01T10:00:00Z",
    "agent_id": "agent-1",
    "tool": "read_file",
}


def corrupt_member() -> bytes:
    """A gzip member whose deflate data is broken: Python raises zlib.error, not an OSError."""
    return gzip_corrupted(b"", 0, 1)


def test_a_corrupt_gzip_is_a_file_error_and_the_run_goes_on(ingest: Ingester, tmp_path: Path):
    """zlib.error escaped both the head read (format detection) and the unit reader."""
    body = dump({**NATIVE_OK, "pad": "x" * 100}).encode() + b"\n"
    broken_head = write_file(tmp_path / "in" / "head.jsonl.gz", corrupt_member())
    broken_later = write_file(  # the first MiB is fine; a second, corrupt member follows
        tmp_path / "in" / "later.jsonl.gz", gzip.compress(body * 20_000) + corrupt_member()
    )
    good = write_file(tmp_path / "in" / "good.jsonl", dump(NATIVE_OK).encode() + b"\n")
    report = ingest.files(broken_head, broken_later, good)
    by_name = {Path(f.source_file).name: f for f in report.files}
    for name in ("head.jsonl.gz", "later.jsonl.gz"):
        assert "cannot read file" in by_name[name].error and name in by_name[name].error
    assert (by_name["good.jsonl"].loaded, by_name["good.jsonl"].error) == (1, None)
    assert conservation_violations(ingest.con) == []


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", [None, "native"])
def test_a_line_nested_too_deeply_for_python_is_a_reject_not_a_crash(ingest: Ingester, fmt):
    """json.loads raised RecursionError while sniffing the file (even with the format given)."""
    deep = "[" * 10_000 + "]" * 10_000
    report = ingest.lines("deep.jsonl", [deep, NATIVE_OK], fmt=fmt)
    assert [(f.records, f.loaded, f.rejected, f.duplicates) for f in report.files] == [(2, 1, 1, 0)]
    assert ingest.one("SELECT reason FROM rejected_events") == (
        "record is not a JSON object (got array)"
    )


@pytest.mark.parametrize("fmt", [None, "native"])
def test_integers_beyond_pythons_digit_limit_keep_one_record_per_line(ingest: Ingester, fmt):
    """json.loads refused them while sniffing, so the lines were read as one pretty-printed
    document: two valid records became one rejected "malformed JSON document"."""
    lines = [dump({**NATIVE_OK, "event_id": f"big-{i}", "n": Raw("9" * 5000)}) for i in (1, 2)]
    report = ingest.lines("big.jsonl", lines, fmt=fmt)
    assert [(f.source_format, f.records, f.loaded, f.rejected) for f in report.files] == [
        ("native", 2, 2, 0)
    ]


def test_a_file_of_only_deeply_nested_json_is_unrecognised_not_a_crash(ingest: Ingester):
    report = ingest.lines("deep.jsonl", ['{"a":' * 10_000 + "1" + "}" * 10_000])
    assert "unrecognised record shape" in report.files[0].error or "not JSON" in (
        report.files[0].error
    )


TTL = 10**13  # seconds: beyond what an interval (and ts + interval) can hold


@pytest.mark.parametrize(
    "fmt, record",
    [
        pytest.param(
            "native",
            {
                "record_type": "credential",
                "ts": "2024-05-01T10:00:00Z",
                "event": "issue",
                "credential_ref": "jit-1",
                "ttl_s": TTL,
            },
            id="native-ttl_s",
        ),
        pytest.param(
            "vault",
            vault_entry(
                "r-1",
                "auth/approle/login",
                "s",
                response={"auth": dict(VAULT_AUTH, client_token=hm("c"), token_ttl=TTL)},
            ),
            id="vault-login-token_ttl",
        ),
        pytest.param(
            "vault",
            vault_entry(
                "r-2", "auth/token/renew-self", "s", response={"auth": dict(VAULT_AUTH, ttl=TTL)}
            ),
            id="vault-renew-ttl",
        ),
        pytest.param(
            "vault",
            vault_entry(
                "r-3",
                "auth/approle/login",
                "s",
                response={
                    "auth": dict(
                        VAULT_AUTH,
                        client_token=hm("c"),
                        token_ttl=10**9,
                        token_issue_time="294247-01-01T00:00:00Z",
                    )
                },
            ),
            id="vault-issue-time-near-the-end-of-time",
        ),
        pytest.param(
            "k8s",
            set_path(
                set_path(k8s_events("s")[0], ("requestObject", "spec", "expirationSeconds"), TTL),
                ("responseObject", "status", "expirationTimestamp"),
                DELETE,
            ),
            id="k8s-expirationSeconds",
        ),
    ],
)
def test_a_lifetime_beyond_the_timestamp_range_loads_with_unknown_expiry(
    ingest: Ingester, fmt, record
):
    """`ts + to_seconds(ttl)` raised an out-of-range error and stopped the whole run."""
    report = ingest.lines("ttl.log", [record], fmt=fmt)
    assert [(f.records, f.loaded, f.rejected) for f in report.files] == [(1, 1, 0)]
    rows = ingest.rows(
        "SELECT ttl_s, expires_at FROM credential_events WHERE event_type IN ('issue', 'renew')"
    )
    assert len(rows) == 1 and rows[0]["expires_at"] is None and rows[0]["ttl_s"] > 0


def test_epoch_numbers_beyond_the_timestamp_range_are_rejected_naming_the_field(
    ingest: Ingester,
):
    """make_timestamp built unrepresentable timestamps: printing one into the reject reason failed
    (ts), or it was stored and failed whenever read (expires_at)."""
    far = -9223372036854775  # epoch milliseconds before the smallest timestamp
    records = [
        {"record_type": "task", "ts": far, "event": "start", "task_id": "t-1"},
        {
            "record_type": "credential",
            "ts": "2024-05-01T10:00:00Z",
            "event": "issue",
            "credential_ref": "jit-1",
            "expires_at": far,
        },
    ]
    report = ingest.lines("far.jsonl", records)
    assert [(f.records, f.loaded, f.rejected) for f in report.files] == [(2, 0, 2)]
    assert sorted(r["reason"] for r in ingest.rows("SELECT reason FROM rejected_events")) == [
        f"unparseable timestamp in expires_at: {far}",
        f"unparseable timestamp in ts: {far}",
    ]


def test_an_otlp_end_time_beyond_the_timestamp_range_loads_without_a_duration(ingest: Ingester):
    """date_diff overflowed (end = the smallest timestamp), or the end was unrepresentable."""
    export = otlp_export("s")
    spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["endTimeUnixNano"] = str(-(2**63) * 1000)  # unrepresentable
    spans[1]["endTimeUnixNano"] = "-9223372022400000000000"  # the smallest timestamp
    spans[2]["endTimeUnixNano"] = "-9223372036854775000000"  # unrepresentable
    report = ingest.lines("trace.jsonl", [export], fmt="otlp")
    assert [(f.records, f.loaded, f.rejected) for f in report.files] == [(3, 3, 0)]
    assert ingest.rows("SELECT duration_ms FROM agent_actions") == [{"duration_ms": None}] * 2
    assert ingest.one("SELECT count(end_ts::VARCHAR) FROM agent_spans") == 0


def test_otlp_parts_of_the_wrong_type_are_rejected_not_silently_dropped(ingest: Ingester):
    """Spans behind a part of the wrong type vanished: not loaded, not rejected, not counted."""
    good = otlp_export("s")["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    doc = {
        "resourceSpans": [
            5,
            {"scopeSpans": "junk"},
            {"scopeSpans": [None, {"spans": good}, {"spans": [good]}, {"spans": None}]},
            {"resource": {}},
        ]
    }
    report = ingest.document("trace.json", doc)
    assert [(f.source_format, f.records, f.loaded, f.rejected) for f in report.files] == [
        ("otlp", 5, 1, 4)
    ]
    rows = ingest.rows("SELECT source_record, reason FROM rejected_events ORDER BY source_record")
    assert rows == [
        {
            "source_record": 1,
            "reason": "wrong type for resourceSpans[0]: expected object, got number",
        },
        {
            "source_record": 2,
            "reason": "wrong type for resourceSpans[1].scopeSpans: expected array, got string",
        },
        {
            "source_record": 3,
            "reason": "wrong type for resourceSpans[2].scopeSpans[0]: expected object, got null",
        },
        {
            "source_record": 4,
            "reason": "wrong type for resourceSpans[2].scopeSpans[1].spans: expected array, got object",
        },
    ]
    # The same document again (another file, so it is parsed): nothing new.
    again = write_file(
        ingest.tmp_path / "in" / "again.json", (json.dumps(doc, indent=2) + "\n\n").encode()
    )
    report = ingest.files(again)
    assert [(f.records, f.loaded, f.rejected, f.duplicates) for f in report.files] == [(5, 0, 0, 5)]
    assert conservation_violations(ingest.con) == []
