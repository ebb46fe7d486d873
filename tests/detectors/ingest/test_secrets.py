"""Secrets fed in through every format never reach the warehouse."""

from __future__ import annotations

import json
from pathlib import Path

from detectors.core.warehouse import connect
from tests.conftest import Ingester, write_json, write_lines

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
STS_TOKEN = "FwoGZXIvYXdzEBAaDHk3bE9vT1NFQ1JFVFNFU1NJT05UT0tFTg=="
ASIA_KEY = "ASIAQWERTYUIOPASDFGH"
AKIA_KEY = "AKIAZXCVBNMLKJHGFDSA"
VAULT_TOKEN = "hvs.CAESIJ7hVm3kqbNJ2dS0t0pSecretToken"
BEARER = "Bearer abcDEF123.ghiJKL456.mnoPQR789"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretkeymaterial\n-----END RSA PRIVATE KEY-----"
PASSWORD = "hunter2-correct-horse"
K8S_TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNlY3JldA"

SECRETS = [
    AWS_SECRET,
    STS_TOKEN,
    ASIA_KEY,
    AKIA_KEY,
    VAULT_TOKEN,
    BEARER.split()[1],
    GITHUB,
    SLACK,
    "secretkeymaterial",
    PASSWORD,
    K8S_TOKEN,
]


def _inputs(tmp: Path) -> list[Path]:
    cloudtrail = write_json(
        tmp / "ct.json",
        {
            "Records": [
                {
                    "eventTime": "2026-11-01T10:00:00Z",
                    "eventSource": "sts.amazonaws.com",
                    "eventName": "AssumeRole",
                    "eventID": "s1",
                    "userIdentity": {"type": "IAMUser", "accessKeyId": AKIA_KEY, "userName": "bot"},
                    "requestParameters": {
                        "roleArn": "arn:aws:iam::1:role/R",
                        "roleSessionName": "a@task-1",
                    },
                    "responseElements": {
                        "credentials": {
                            "accessKeyId": ASIA_KEY,
                            "sessionToken": STS_TOKEN,
                            "secretAccessKey": AWS_SECRET,
                            "expiration": "Nov 1, 2026, 11:00:00 AM",
                        }
                    },
                },
                {
                    "eventTime": "2026-11-01T10:01:00Z",
                    "eventSource": "secretsmanager.amazonaws.com",
                    "eventName": "PutSecretValue",
                    "eventID": "s2",
                    "userIdentity": {"type": "AssumedRole", "accessKeyId": ASIA_KEY},
                    "requestParameters": {
                        "secretId": "db",
                        "secretString": f'{{"password":"{PASSWORD}"}}',
                        "note": f"key {AKIA_KEY} {AWS_SECRET}",
                    },
                },
            ]
        },
    )
    vault = write_lines(
        tmp / "vault.log",
        [
            {
                "time": "2026-11-01T10:00:00Z",
                "type": "response",
                "auth": {"client_token": "hmac-sha256:abc"},
                "request": {
                    "id": "v1",
                    "operation": "read",
                    "path": f"auth/token/lookup/{VAULT_TOKEN}",
                    "data": {"token": VAULT_TOKEN},
                },
                "response": {},
            },
        ],
    )
    args = json.dumps(
        {
            "url": "https://api.example.net/x?access_token=" + PASSWORD,
            "header": BEARER,
            "note": f"{GITHUB} {SLACK}",
            "key": PRIVATE_KEY,
        }
    )
    otlp = write_lines(
        tmp / "otlp.jsonl",
        [
            {
                "resourceSpans": [
                    {
                        "resource": {"attributes": []},
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": "0af7651916cd43dd8448eb211c80319c",
                                        "spanId": "b7ad6b7169203331",
                                        "name": "execute_tool http_post",
                                        "startTimeUnixNano": "1761991200000000000",
                                        "attributes": [
                                            {
                                                "key": "gen_ai.operation.name",
                                                "value": {"stringValue": "execute_tool"},
                                            },
                                            {
                                                "key": "gen_ai.tool.name",
                                                "value": {"stringValue": "http_post"},
                                            },
                                            {
                                                "key": "gen_ai.tool.call.arguments",
                                                "value": {"stringValue": args},
                                            },
                                        ],
                                    }
                                ]
                            }
                        ],
                    }
                ]
            }
        ],
    )
    native = write_lines(
        tmp / "native.jsonl",
        [
            {
                "record_type": "action",
                "ts": "2026-11-01T10:00:00Z",
                "agent_id": "a",
                "tool": "send_email",
                "arguments": {"to": "x@example.com", "body": f"password={PASSWORD} {PRIVATE_KEY}"},
                "destination": f"https://hooks.example.org/?token={PASSWORD}",
            },
            {
                "record_type": "credential",
                "ts": "2026-11-01T10:00:00Z",
                "event": "issue",
                "credential_ref": VAULT_TOKEN,
                "credential_kind": "vault_token",
            },
            # Malformed lines still reach rejected_events: their text must be redacted too.
            '{"record_type": "action", "password": "' + PASSWORD + '", "token": "' + SLACK + '", ',
            f"not json at all {AKIA_KEY} {BEARER} {GITHUB}",
        ],
    )
    k8s = write_lines(
        tmp / "k8s.jsonl",
        [
            {
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "auditID": "k1",
                "stage": "ResponseComplete",
                "verb": "create",
                "user": {"username": "system:node:n1"},
                "objectRef": {
                    "resource": "serviceaccounts",
                    "subresource": "token",
                    "namespace": "agents",
                    "name": "bot",
                },
                "responseStatus": {"code": 201},
                "responseObject": {
                    "status": {"token": K8S_TOKEN, "expirationTimestamp": "2026-11-01T11:00:00Z"}
                },
                "requestReceivedTimestamp": "2026-11-01T10:00:00Z",
                "stageTimestamp": "2026-11-01T10:00:00Z",
                "annotations": {"authentication.kubernetes.io/issued-credential-id": "JTI=1"},
            },
        ],
    )
    return [cloudtrail, vault, otlp, native, k8s]


def _text_columns(con) -> list[tuple[str, str]]:
    return con.execute(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_catalog = current_database() AND table_schema = 'main'
             AND (data_type = 'VARCHAR' OR data_type = 'VARCHAR[]')"""
    ).fetchall()


def test_no_secret_reaches_any_table_or_the_database_file(ingest: Ingester, tmp_path: Path):
    report = ingest.files(*_inputs(tmp_path / "in"))
    assert not report.errors
    assert report.total("loaded") >= 7 and report.total("rejected") == 2
    con = ingest.con
    for table, column in _text_columns(con):
        for secret in SECRETS:
            hits = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE contains(CAST("{column}" AS VARCHAR), ?)',  # noqa: S608 - names from information_schema
                [secret],
            ).fetchone()[0]
            assert hits == 0, f"{secret[:12]}... found in {table}.{column}"
    # The redactions are visible where the secrets were.
    args = con.execute("SELECT string_agg(args, ' ') FROM agent_actions").fetchone()[0]
    assert (
        "[REDACTED:private_key]" in args
        and "[REDACTED:github_token]" in args
        and "[REDACTED:bearer]" in args
    )
    raw = con.execute("SELECT string_agg(raw_text, ' ') FROM rejected_events").fetchone()[0]
    assert "[REDACTED" in raw
    con.execute("CHECKPOINT")
    db_path = ingest.settings.db_path
    con.close()
    blob = db_path.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in blob
    # Reopen so the fixture can close cleanly.
    ingest.con = connect(db_path)


def test_credential_ids_are_keyed_hashes_that_change_with_the_key(
    ingest: Ingester, tmp_path: Path, settings
):
    ingest.files(*_inputs(tmp_path / "in"))
    stored = ingest.one(
        "SELECT credential_id FROM credential_events WHERE event_type = 'issue' AND credential_kind = 'sts_session'"
    )
    assert stored == ingest.cred_id("aws", ASIA_KEY)
    other_db = tmp_path / "other.duckdb"
    other = connect(other_db)
    from detectors.ingest.pipeline import ingest_paths

    ingest_paths(
        other,
        _inputs(tmp_path / "in2"),
        settings.with_overrides(db_path=other_db, hash_key="another-key"),
    )
    other_id = other.execute(
        "SELECT credential_id FROM credential_events WHERE event_type = 'issue' AND credential_kind = 'sts_session'"
    ).fetchone()[0]
    assert other_id != stored and other_id.startswith("cred_")
