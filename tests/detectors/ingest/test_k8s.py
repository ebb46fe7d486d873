"""Kubernetes audit ingest: TokenRequest issuance, credential-id linking, stages, EventList
documents, outcomes and rejects.

Events are written by hand in the audit.k8s.io/v1 shape (FORMATS.md): a TokenRequest is
`create` on `serviceaccounts/token`; its annotation
`authentication.kubernetes.io/issued-credential-id` matches later requests'
`user.extra["authentication.kubernetes.io/credential-id"]`.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from tests.conftest import Ingester, counts

JTI = "JTI=6a2f0c1e-8b3d-4f57-9e21-0d4c7b5a9f13"
POD = "researcher-task-42"  # default k8s_pod_pattern: agent "researcher", task "task-42"
NAMESPACE = "agents"
SA = "agent-runner"
SA_USER = f"system:serviceaccount:{NAMESPACE}:{SA}"
# The issued token (a JWT) in responseObject.status.token: must never be stored.
ISSUED_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3Qta2lkIn0"
    ".eyJhdWQiOlsidmF1bHQiXSwiZXhwIjoxNzE3MjQ2ODA3LCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWdlbnRzOmFnZW50LXJ1bm5lciJ9"
    ".c2lnbmF0dXJlLW5vdC1yZWFsLWJ1dC1sb25nLWVub3VnaA"
)


def event(
    audit_id: str,
    verb: str,
    *,
    stage: str = "ResponseComplete",
    user: dict | None = None,
    object_ref: dict | None = None,
    code: int = 200,
    received: str = "2024-06-01T12:00:00.000000Z",
    stage_ts: str | None = None,
    level: str = "Metadata",
    annotations: dict | None = None,
    status: dict | None = None,
    **extra,
) -> dict:
    ref = object_ref or {}
    uri = "/api/v1/namespaces/{}/{}{}".format(
        ref.get("namespace", "default"),
        ref.get("resource", ""),
        "/" + ref["name"] if "name" in ref else "",
    )
    ev = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": audit_id,
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": user
        or {"username": "system:node:node-a", "groups": ["system:nodes", "system:authenticated"]},
        "sourceIPs": ["10.0.0.12"],
        "userAgent": "kubelet/v1.30.2 (linux/amd64) kubernetes/3c0f7c5",
        "objectRef": ref,
        "requestReceivedTimestamp": received,
        "stageTimestamp": stage_ts or received,
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
        | (annotations or {}),
    }
    if stage != "RequestReceived":
        ev["responseStatus"] = status or {"metadata": {}, "code": code}
    ev.update(extra)
    return ev


def token_request(
    audit_id: str = "a1f4c3e2-0001-4c8e-9d7b-3e2f1a0b9c8d",
    *,
    pod: str = POD,
    jti: str | None = JTI,
    expiration_seconds: int = 3607,
    expiration: str = "2024-06-01T13:00:07Z",
    stage: str = "ResponseComplete",
    code: int = 201,
) -> dict:
    spec = {
        "audiences": ["https://kubernetes.default.svc.cluster.local", "vault"],
        "expirationSeconds": expiration_seconds,
        "boundObjectRef": {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": pod,
            "uid": "4d3c2b1a-0f9e-8d7c-6b5a-493827161504",
        },
    }
    annotations = {"authentication.kubernetes.io/issued-credential-id": jti} if jti else {}
    extra = {
        "requestObject": {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": {"token": "", "expirationTimestamp": None},
        }
    }
    if stage != "RequestReceived":
        extra["responseObject"] = {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": SA,
                "namespace": NAMESPACE,
                "creationTimestamp": "2024-06-01T12:00:00Z",
            },
            "spec": spec,
            "status": {"token": ISSUED_TOKEN, "expirationTimestamp": expiration},
        }
    return event(
        audit_id,
        "create",
        stage=stage,
        level="RequestResponse",
        object_ref={
            "resource": "serviceaccounts",
            "namespace": NAMESPACE,
            "name": SA,
            "apiVersion": "v1",
            "subresource": "token",
        },
        code=code,
        received="2024-06-01T12:00:00.000000Z",
        stage_ts="2024-06-01T12:00:00.250000Z"
        if stage != "RequestReceived"
        else "2024-06-01T12:00:00.000000Z",
        annotations=annotations if stage != "RequestReceived" else {},
        **extra,
    )


def sa_user(*, jti: str | None = JTI, pod: str | None = POD) -> dict:
    extra = {"authentication.kubernetes.io/node-name": ["node-a"]}
    if jti is not None:
        extra["authentication.kubernetes.io/credential-id"] = [jti]
    if pod is not None:
        extra["authentication.kubernetes.io/pod-name"] = [pod]
        extra["authentication.kubernetes.io/pod-uid"] = ["4d3c2b1a-0f9e-8d7c-6b5a-493827161504"]
    return {
        "username": SA_USER,
        "uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        "groups": [
            "system:serviceaccounts",
            f"system:serviceaccounts:{NAMESPACE}",
            "system:authenticated",
        ],
        "extra": extra,
    }


def secret_get(
    audit_id: str,
    *,
    user: dict | None = None,
    code: int = 200,
    at: str = "2024-06-01T12:10:00.000000Z",
    name: str = "db-password",
    status: dict | None = None,
) -> dict:
    return event(
        audit_id,
        "get",
        user=user or sa_user(),
        object_ref={
            "resource": "secrets",
            "namespace": NAMESPACE,
            "name": name,
            "apiVersion": "v1",
        },
        code=code,
        received=at,
        stage_ts=at.replace(".000000Z", ".004000Z"),
        status=status,
    )


def actions(ingest: Ingester) -> dict[str, dict]:
    return {a["event_id"]: a for a in ingest.rows("SELECT * FROM agent_actions")}


# ---------------------------------------------------------------- TokenRequest


def test_token_request_issues_a_service_account_token(ingest: Ingester):
    report = ingest.lines("audit.log", [token_request()])
    assert counts(report) == [(1, 1, 0, 0)]
    assert report.files[0].source_format == "k8s"
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert issue["credential_id"] == ingest.cred_id("k8s", JTI)
    # requested by the kubelet (system:node:node-a) for a pod
    assert issue["credential_kind"] == "k8s_kubelet_token"
    assert issue["principal"] == SA_USER
    # the request time (requestReceivedTimestamp), not the completion stage (12:00:00.25)
    assert issue["ts"] == issue["issued_at"] == datetime(2024, 6, 1, 12, 0, 0)
    assert issue["expires_at"] == datetime(2024, 6, 1, 13, 0, 7)
    assert issue["ttl_s"] == 3607
    assert issue["scopes"] == ["https://kubernetes.default.svc.cluster.local", "vault"]
    assert (issue["agent_id"], issue["task_id"], issue["task_source"]) == (
        "researcher",
        "task-42",
        "k8s_bound_pod",
    )
    assert issue["source_ip"] == "10.0.0.12"
    assert issue["event_id"] == "k8s:a1f4c3e2-0001-4c8e-9d7b-3e2f1a0b9c8d"
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert (
        act["tool"],
        act["system"],
        act["action_class"],
        act["classified_by"],
        act["destination"],
    ) == (
        "create serviceaccounts/token",
        "kubernetes",
        "credential",
        "source",
        f"{NAMESPACE}/serviceaccounts/{SA}",
    )
    assert act["outcome"] == "ok"


def test_expiry_from_expiration_seconds_when_response_has_no_timestamp(ingest: Ingester):
    """At Request level there is no responseObject: expiry is the event time + expirationSeconds."""
    ev = token_request()
    ev.pop("responseObject")
    ev.pop("requestObject")
    ev["level"] = "Request"
    ev["requestObject"] = {
        "kind": "TokenRequest",
        "spec": {
            "audiences": ["vault"],
            "expirationSeconds": 600,
            "boundObjectRef": {"kind": "Pod", "name": POD},
        },
    }
    ingest.lines("audit.log", [ev])
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert issue["ttl_s"] == 600
    assert issue["expires_at"] == datetime(2024, 6, 1, 12, 10, 0)
    assert issue["scopes"] == ["vault"]


def test_pod_name_not_matching_the_pattern_gives_no_task(ingest: Ingester):
    ingest.lines("audit.log", [token_request(pod="coredns-7db6d8ff4d-x2k9p")])
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert (issue["task_id"], issue["task_source"]) == (None, None)
    assert issue["agent_id"] == SA  # falls back to the service account name


def test_pod_pattern_setting(ingest: Ingester):
    pattern = r"^agent-(?P<agent_id>[a-z]+)-(?P<task_id>[0-9]+)$"
    ingest.lines("audit.log", [token_request(pod="agent-triage-1234")], k8s_pod_pattern=pattern)
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert (issue["agent_id"], issue["task_id"]) == ("triage", "1234")


def test_failed_token_request_issues_nothing(ingest: Ingester):
    ev = token_request(code=403)
    ev.pop("responseObject")
    ev["responseStatus"] = {
        "metadata": {},
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": 'serviceaccounts "agent-runner" is forbidden',
    }
    ev["annotations"] = {
        "authorization.k8s.io/decision": "forbid",
        "authorization.k8s.io/reason": "",
    }
    ingest.lines("audit.log", [ev])
    assert ingest.one("SELECT count(*) FROM credential_events WHERE event_type = 'issue'") == 0
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert (act["outcome"], act["error_type"]) == ("denied", "Forbidden")


def test_later_requests_use_the_token_and_link_to_its_task(ingest: Ingester):
    events = [
        token_request(),
        secret_get("b2e5d4f3-0002-4c8e-9d7b-3e2f1a0b9c8d"),
        event(
            "c3f6e5a4-0003-4c8e-9d7b-3e2f1a0b9c8d",
            "list",
            user=sa_user(),
            object_ref={"resource": "pods", "namespace": NAMESPACE, "apiVersion": "v1"},
            received="2024-06-01T12:11:00.000000Z",
        ),
    ]
    report = ingest.lines("audit.log", events)
    assert counts(report) == [(3, 3, 0, 0)]
    cred = ingest.cred_id("k8s", JTI)
    uses = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'use' ORDER BY ts")
    assert [(u["event_id"], u["credential_id"], u["credential_kind"]) for u in uses] == [
        ("k8s:b2e5d4f3-0002-4c8e-9d7b-3e2f1a0b9c8d", cred, "k8s_sa_token"),
        ("k8s:c3f6e5a4-0003-4c8e-9d7b-3e2f1a0b9c8d", cred, "k8s_sa_token"),
    ]
    assert {(u["task_id"], u["agent_id"], u["principal"]) for u in uses} == {
        ("task-42", "researcher", SA_USER)
    }
    acts = actions(ingest)
    get = acts["k8s:b2e5d4f3-0002-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (get["credential_id"], get["task_id"], get["agent_id"]) == (
        cred,
        "task-42",
        "researcher",
    )
    assert (get["tool"], get["action_class"], get["sensitivity"], get["destination"]) == (
        "get secrets",
        "read",
        "high",
        f"{NAMESPACE}/secrets/db-password",
    )
    listed = acts["k8s:c3f6e5a4-0003-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (listed["tool"], listed["action_class"], listed["credential_id"]) == (
        "list pods",
        "read",
        cred,
    )
    # the TokenRequest was made by the kubelet, not with the token it mints
    assert acts["k8s:a1f4c3e2-0001-4c8e-9d7b-3e2f1a0b9c8d"]["credential_id"] is None
    assert ingest.one("SELECT credentials_issued FROM tasks WHERE task_id = 'task-42'") == 1


def test_credential_id_alone_links_to_the_task_even_when_the_issue_comes_later(ingest: Ingester):
    """A request carrying only the credential id inherits the task of the token's issue event."""
    ingest.lines(
        "day1.log", [secret_get("d4a7f6b5-0004-4c8e-9d7b-3e2f1a0b9c8d", user=sa_user(pod=None))]
    )
    before = actions(ingest)["k8s:d4a7f6b5-0004-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (before["credential_id"], before["task_id"], before["agent_id"]) == (
        ingest.cred_id("k8s", JTI),
        None,
        SA,
    )
    ingest.lines("day2.log", [token_request()])
    after = actions(ingest)["k8s:d4a7f6b5-0004-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (after["task_id"], after["task_source"]) == ("task-42", "credential")
    [use] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'use'")
    assert (use["task_id"], use["task_source"]) == ("task-42", "credential")


def test_request_without_credential_id_is_not_a_use(ingest: Ingester):
    legacy = sa_user(jti=None, pod=None)
    ingest.lines(
        "audit.log",
        [token_request(), secret_get("e5b8a7c6-0005-4c8e-9d7b-3e2f1a0b9c8d", user=legacy)],
    )
    assert ingest.one("SELECT count(*) FROM credential_events WHERE event_type = 'use'") == 0
    act = actions(ingest)["k8s:e5b8a7c6-0005-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (act["credential_id"], act["task_id"], act["agent_id"]) == (None, None, SA)


def test_cluster_without_issued_credential_id_uses_the_audit_id(ingest: Ingester):
    ev = token_request(jti=None)
    ingest.lines("audit.log", [ev])
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert issue["credential_id"] == ingest.cred_id("k8s-audit", ev["auditID"])


def test_issued_token_value_is_never_stored(ingest: Ingester):
    bad = token_request("f6c9b8d7-0006-4c8e-9d7b-3e2f1a0b9c8d")
    bad.pop("verb")  # rejected: its text is kept in rejected_events, redacted
    ingest.lines(
        "audit.log", [token_request(), secret_get("a7d0c9e8-0007-4c8e-9d7b-3e2f1a0b9c8d"), bad]
    )
    assert ingest.one("SELECT count(*) FROM rejected_events") == 1
    text = ingest.stored_text()
    assert ISSUED_TOKEN not in text
    assert ISSUED_TOKEN.split(".")[1] not in text
    assert ingest.cred_id("k8s", JTI) in text


# ---------------------------------------------------------------- stages, documents, outcomes


def test_request_received_and_response_complete_make_one_action(ingest: Ingester):
    received = token_request(stage="RequestReceived")
    complete = token_request()
    report = ingest.lines("audit.log", [received, complete])
    assert counts(report) == [(2, 1, 0, 1)]
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert (act["outcome"], act["source_line"]) == ("ok", 2)
    assert ingest.one("SELECT count(*) FROM credential_events WHERE event_type = 'issue'") == 1


def test_response_complete_first_still_wins(ingest: Ingester):
    aid = "b8e1d0f9-0008-4c8e-9d7b-3e2f1a0b9c8d"
    complete = secret_get(aid)
    received = dict(
        complete, stage="RequestReceived", stageTimestamp=complete["requestReceivedTimestamp"]
    )
    received.pop("responseStatus")
    report = ingest.lines("audit.log", [complete, received])
    assert counts(report) == [(2, 1, 0, 1)]
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert (act["outcome"], act["source_line"]) == ("ok", 1)


def test_request_received_alone_has_unknown_outcome(ingest: Ingester):
    ev = secret_get("c9f2e1a0-0009-4c8e-9d7b-3e2f1a0b9c8d")
    ev["stage"] = "RequestReceived"
    ev.pop("responseStatus")
    ingest.lines("audit.log", [ev])
    assert actions(ingest)["k8s:c9f2e1a0-0009-4c8e-9d7b-3e2f1a0b9c8d"]["outcome"] == "unknown"


def test_event_list_document(ingest: Ingester):
    doc = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": [
            token_request(),
            secret_get("d0a3f2b1-0010-4c8e-9d7b-3e2f1a0b9c8d"),
            "not an event",
        ],
    }
    report = ingest.document("audit-export.json", doc)
    assert counts(report) == [(3, 2, 1, 0)]
    assert report.files[0].source_format == "k8s"
    rows = ingest.rows(
        "SELECT event_id, source_line, source_record FROM agent_actions ORDER BY source_record"
    )
    assert [(r["source_line"], r["source_record"]) for r in rows] == [(1, 0), (1, 1)]
    [rej] = ingest.rows("SELECT reason, source_record FROM rejected_events")
    assert (rej["reason"], rej["source_record"]) == ("record is not a JSON object (got string)", 2)
    act = actions(ingest)["k8s:d0a3f2b1-0010-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (act["credential_id"], act["task_id"]) == (ingest.cred_id("k8s", JTI), "task-42")


@pytest.mark.parametrize(
    ("code", "reason", "outcome"),
    [
        (403, "Forbidden", "denied"),
        (401, "Unauthorized", "denied"),
        (404, "NotFound", "error"),
        (500, "InternalError", "error"),
        (200, None, "ok"),
    ],
)
def test_response_codes(ingest: Ingester, code, reason, outcome):
    status = {"metadata": {}, "code": code}
    if reason:
        status |= {
            "status": "Failure",
            "reason": reason,
            "message": f'secrets "db-password" {reason}',
        }
    ingest.lines("audit.log", [secret_get("e1b4a3c2-0011-4c8e-9d7b-3e2f1a0b9c8d", status=status)])
    act = actions(ingest)["k8s:e1b4a3c2-0011-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (act["outcome"], act["error_type"]) == (outcome, reason)
    [use] = ingest.rows("SELECT outcome FROM credential_events WHERE event_type = 'use'")
    assert use["outcome"] == outcome


# ---------------------------------------------------------------- rejects


def test_bad_events_are_rejected_with_reasons(ingest: Ingester):
    good = secret_get("f2c5b4d3-0012-4c8e-9d7b-3e2f1a0b9c8d")
    no_audit_id = {k: v for k, v in good.items() if k != "auditID"}
    no_verb = {
        k: v for k, v in secret_get("a3d6c5e4-0013-4c8e-9d7b-3e2f1a0b9c8d").items() if k != "verb"
    }
    number_verb = secret_get("b4e7d6f5-0014-4c8e-9d7b-3e2f1a0b9c8d") | {"verb": 7}
    no_time = {
        k: v
        for k, v in secret_get("c5f8e7a6-0015-4c8e-9d7b-3e2f1a0b9c8d").items()
        if k not in ("stageTimestamp", "requestReceivedTimestamp")
    }
    bad_time = secret_get("d6a9f8b7-0016-4c8e-9d7b-3e2f1a0b9c8d") | {"stageTimestamp": "noon"}
    report = ingest.lines(
        "audit.log", [good, no_audit_id, no_verb, number_verb, no_time, bad_time, 42]
    )
    assert counts(report) == [(7, 1, 6, 0)]
    rows = ingest.rows("SELECT source_line, reason FROM rejected_events ORDER BY source_line")
    assert [(r["source_line"], r["reason"]) for r in rows] == [
        (2, "missing required field auditID"),
        (3, "missing required field verb"),
        (4, "wrong type for verb: expected string, got number"),
        (5, "missing required field requestReceivedTimestamp"),
        # the reason names the field that holds the bad value
        (6, 'unparseable timestamp in stageTimestamp: "noon"'),
        (7, "record is not a JSON object (got number)"),
    ]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 1


# ---------------------------------------------------------------- managed clusters: AKS and GKE

AKS_CLUSTER = (
    "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/AGENTS"
    "/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-AGENTS"
)


def aks(ev: dict, category: str = "kube-audit") -> dict:
    """An AKS diagnostic-log record (Event Hub / storage export): the Event as a JSON string."""
    return {
        "time": ev.get("stageTimestamp"),
        "resourceId": AKS_CLUSTER,
        "category": category,
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "properties": {
            "log": json.dumps(ev),
            "stream": "stdout",
            "pod": "kube-apiserver-6d5c8f7b9-xk2lp",
        },
    }


def gke(
    operation_id: str,
    method: str,
    resource_name: str,
    *,
    principal: str = SA_USER,
    caller_ip: str = "10.128.0.7",
    at: str = "2024-06-01T12:10:00.000000Z",
    status: dict | None = None,
    request: dict | None = None,
    response: dict | None = None,
    labels: dict | None = None,
) -> dict:
    """A GKE Cloud Logging entry of a Kubernetes API call (Cloud Audit Logs AuditLog payload)."""
    payload = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": principal},
        "authorizationInfo": [{"granted": True, "permission": method, "resource": resource_name}],
        "methodName": method,
        "requestMetadata": {
            "callerIp": caller_ip,
            "callerSuppliedUserAgent": "kubelet/v1.30.2-gke.1 (linux/amd64) kubernetes/3c0f7c5",
        },
        "resourceName": resource_name,
        "serviceName": "k8s.io",
        "status": status or {},
    }
    if request is not None:
        payload["request"] = request
    if response is not None:
        payload["response"] = response
    return {
        "protoPayload": payload,
        "insertId": f"ins-{operation_id[:8]}",
        "resource": {
            "type": "k8s_cluster",
            "labels": {
                "project_id": "acme-agents",
                "location": "europe-west1",
                "cluster_name": "agents-1",
            },
        },
        "timestamp": at,
        "severity": "NOTICE",
        "labels": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
        | (labels or {}),
        "logName": "projects/acme-agents/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {"id": operation_id, "producer": "k8s.io", "first": True, "last": True},
        "receiveTimestamp": "2024-06-01T12:10:01.123456Z",
    }


def test_aks_diagnostic_records_are_read_like_plain_events(ingest: Ingester):
    lines = [aks(token_request()), aks(secret_get("b2e5d4f3-0002-4c8e-9d7b-3e2f1a0b9c8d"))]
    lines[1]["category"] = "kube-audit-admin"
    report = ingest.lines("aks.json", lines)
    assert report.files[0].source_format == "k8s"
    assert counts(report) == [(2, 2, 0, 0)]
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert (issue["credential_id"], issue["ttl_s"], issue["principal"], issue["task_id"]) == (
        ingest.cred_id("k8s", JTI),
        3607,
        SA_USER,
        "task-42",
    )
    get = actions(ingest)["k8s:b2e5d4f3-0002-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (get["tool"], get["destination"], get["source_ip"], get["credential_id"]) == (
        "get secrets",
        f"{NAMESPACE}/secrets/db-password",
        "10.0.0.12",
        ingest.cred_id("k8s", JTI),
    )
    assert get["ts"] == datetime(2024, 6, 1, 12, 10)
    assert ISSUED_TOKEN.split(".")[1] not in ingest.stored_text()


def test_aks_records_export_document(ingest: Ingester):
    doc = {
        "records": [
            aks(token_request()),
            aks(secret_get("b2e5d4f3-0002-4c8e-9d7b-3e2f1a0b9c8d")),
            {"category": "kube-audit", "properties": {"log": "{not json"}},
            {"category": "kube-audit", "properties": {"lg": "{}"}},
        ]
    }
    report = ingest.document("PT1H.json", doc)
    assert report.files[0].source_format == "k8s"
    assert counts(report) == [(4, 2, 2, 0)]
    rows = ingest.rows("SELECT source_record, reason FROM rejected_events ORDER BY source_record")
    assert [(r["source_record"], r["reason"]) for r in rows] == [
        (2, "invalid value for properties.log: not a JSON audit Event"),
        (3, "missing required field properties.log"),
    ]
    assert sorted(a["source_record"] for a in actions(ingest).values()) == [0, 1]


def test_gke_cloud_logging_entries_are_read_like_plain_events(ingest: Ingester):
    token_op = "a1f4c3e2-0001-4c8e-9d7b-3e2f1a0b9c8d"
    issued = token_request()
    entries = [
        gke(
            token_op,
            "io.k8s.core.v1.serviceaccounts.token.create",
            f"core/v1/namespaces/{NAMESPACE}/serviceaccounts/{SA}/token",
            principal="system:node:gke-agents-1-pool-1-9f8e7d6c-x1y2",
            at="2024-06-01T12:00:00.000000Z",
            request=issued["requestObject"],
            response=issued["responseObject"],
            labels={"authentication.kubernetes.io/issued-credential-id": JTI},
        ),
        gke(
            "b2e5d4f3-0002-4c8e-9d7b-3e2f1a0b9c8d",
            "io.k8s.core.v1.secrets.get",
            f"core/v1/namespaces/{NAMESPACE}/secrets/db-password",
            caller_ip="34.77.1.2",
            status={"code": 7, "message": "PERMISSION_DENIED"},
        ),
        gke(
            "c3f6e5a4-0003-4c8e-9d7b-3e2f1a0b9c8d",
            "io.k8s.apps.v1.deployments.list",
            f"apps/v1/namespaces/{NAMESPACE}/deployments",
        ),
    ]
    report = ingest.lines("gke.json", entries)
    assert report.files[0].source_format == "k8s"
    assert counts(report) == [(3, 3, 0, 0)]
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert (issue["credential_id"], issue["credential_kind"], issue["principal"]) == (
        ingest.cred_id("k8s", JTI),
        "k8s_kubelet_token",
        SA_USER,
    )
    assert (issue["issued_at"], issue["expires_at"], issue["ttl_s"]) == (
        datetime(2024, 6, 1, 12, 0),
        datetime(2024, 6, 1, 13, 0, 7),
        3607,
    )
    assert (issue["agent_id"], issue["task_id"], issue["source_ip"]) == (
        "researcher",
        "task-42",
        "10.128.0.7",
    )
    acts = actions(ingest)
    token = acts[f"k8s:{token_op}"]
    assert (token["tool"], token["action_class"], token["destination"], token["outcome"]) == (
        "create serviceaccounts/token",
        "credential",
        f"{NAMESPACE}/serviceaccounts/{SA}",
        "ok",
    )
    get = acts["k8s:b2e5d4f3-0002-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (get["tool"], get["agent_id"], get["source_ip"]) == ("get secrets", SA, "34.77.1.2")
    assert (get["outcome"], get["error_type"], get["ts"]) == (
        "denied",
        "Forbidden",
        datetime(2024, 6, 1, 12, 10),
    )
    listed = acts["k8s:c3f6e5a4-0003-4c8e-9d7b-3e2f1a0b9c8d"]
    assert (listed["tool"], listed["system"], listed["destination"]) == (
        "list deployments",
        "kubernetes:apps",
        f"{NAMESPACE}/deployments",
    )
    assert ISSUED_TOKEN.split(".")[1] not in ingest.stored_text()


def test_gke_entry_of_another_google_service_is_rejected(ingest: Ingester):
    other = gke("d4a7f6b5-0004", "v1.compute.instances.insert", "projects/p/zones/z/instances/i")
    other["protoPayload"]["serviceName"] = "compute.googleapis.com"
    no_method = gke("e5b8a7c6-0005", "io.k8s.core.v1.pods.get", "core/v1/namespaces/a/pods/p")
    no_method["protoPayload"].pop("methodName")
    ok = gke("f6c9b8d7-0006", "io.k8s.core.v1.pods.get", "core/v1/namespaces/a/pods/p")
    report = ingest.lines("gke.json", [ok, other, no_method], fmt="k8s")
    assert counts(report) == [(3, 1, 2, 0)]
    assert [r["reason"] for r in ingest.rows("SELECT reason FROM rejected_events ORDER BY 1")] == [
        "invalid value for protoPayload.methodName: v1.compute.instances.insert"
        " (not a Kubernetes API call)",
        "missing required field protoPayload.methodName",
    ]


# ---------------------------------------------------------------- one request, its stages, auditID


def test_ts_is_the_request_time_not_the_completion_stage(ingest: Ingester):
    ev = secret_get("a0b1c2d3-0017-4c8e-9d7b-3e2f1a0b9c8d")
    ev["stageTimestamp"] = "2024-06-01T12:10:05.000000Z"
    ingest.lines("audit.log", [ev])
    [act] = ingest.rows("SELECT ts FROM agent_actions")
    [use] = ingest.rows("SELECT ts FROM credential_events")
    assert act["ts"] == use["ts"] == datetime(2024, 6, 1, 12, 10)


AID = "d1e2f3a4-0018-4c8e-9d7b-3e2f1a0b9c8d"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"verb": "list"}, id="verb"),
        pytest.param({"name": "other-secret"}, id="objectRef.name"),
        pytest.param({"user": sa_user(jti="JTI=other", pod="other-task-7")}, id="user"),
        pytest.param({"at": "2024-06-01T12:10:00.000001Z"}, id="request-time-1us-later"),
    ],
)
def test_a_different_request_reusing_the_audit_id_is_not_a_duplicate(ingest: Ingester, change):
    first = secret_get(AID)
    kwargs = {k: v for k, v in change.items() if k != "verb"}
    second = secret_get(AID, **kwargs)
    if "verb" in change:
        second["verb"] = change["verb"]
    # both stages of the second request: they are one event
    received = dict(second, stage="RequestReceived")
    received.pop("responseStatus")
    report = ingest.lines("audit.log", [first, received, second])
    assert counts(report) == [(3, 2, 0, 1)]
    ids = sorted(a["event_id"] for a in ingest.rows("SELECT event_id FROM agent_actions"))
    assert ids[0] == f"k8s:{AID}" and ids[1].startswith(f"k8s:{AID}#")
    # in a later run, the same two requests again are duplicates; a third one is not
    third = secret_get(AID, name="third-secret")
    again = ingest.lines("again.log", [second, first, third])
    assert counts(again) == [(3, 1, 0, 2)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 3


def test_stages_of_one_request_across_runs_are_one_event(ingest: Ingester):
    complete = secret_get(AID)
    received = dict(
        complete, stage="RequestReceived", stageTimestamp=complete["requestReceivedTimestamp"]
    )
    received.pop("responseStatus")
    assert counts(ingest.lines("one.log", [received])) == [(1, 1, 0, 0)]
    ingest.lines("two.log", [complete])
    [act] = ingest.rows("SELECT event_id, outcome, source_file FROM agent_actions")
    assert (act["event_id"], act["outcome"]) == (f"k8s:{AID}", "ok")
    assert act["source_file"].endswith("two.log")
    assert ingest.one("SELECT sum(loaded), sum(duplicates) FROM ingest_files") == 1


def test_the_same_request_in_two_clusters_is_two_events(ingest: Ingester):
    ev = secret_get(AID)
    other = aks(ev)
    other["resourceId"] = AKS_CLUSTER.replace("AKS-AGENTS", "AKS-OTHER")
    report = ingest.lines("aks.json", [aks(ev), other, aks(ev)])
    assert counts(report) == [(3, 2, 0, 1)]


# ---------------------------------------------------------------- kubelet tokens, X.509 ids


def jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'kid': 'test-kid'})}.{part(claims)}.c2lnbmF0dXJlLW5vdC1yZWFs"


def test_kubelet_token_extended_by_the_api_server_has_its_real_lifetime(ingest: Ingester):
    """The kubelet asks for 3607 s; the API server extends the token to a year, which only the
    token's exp claim shows (status.expirationTimestamp repeats the requested expiry)."""
    extended = datetime(2025, 6, 1, 12, 0, 7)
    claims = {
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "exp": int(extended.replace(tzinfo=UTC).timestamp()),
        "iat": 1717243200,
        "sub": SA_USER,
        "kubernetes.io": {"pod": {"name": POD}},
    }
    token = jwt(claims)
    assert len(token.split(".")[1]) % 4 != 0  # base64url without padding: decoded with it
    ev = token_request()
    ev["responseObject"]["status"]["token"] = token
    ingest.lines("audit.log", [ev])
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert issue["credential_kind"] == "k8s_kubelet_token"
    assert (issue["expires_at"], issue["ttl_s"]) == (extended, 365 * 86400 + 7)
    text = ingest.stored_text()
    assert token not in text and token.split(".")[1] not in text


@pytest.mark.parametrize(
    ("requester", "bound_kind", "kind"),
    [
        ("system:node:node-a", "Pod", "k8s_kubelet_token"),
        ("system:node:node-a", "Secret", "k8s_sa_token"),
        ("system:serviceaccount:ci:deployer", "Pod", "k8s_sa_token"),
        ("system:nodes", "Pod", "k8s_sa_token"),
    ],
)
def test_kubelet_token_kind(ingest: Ingester, requester, bound_kind, kind):
    ev = token_request()
    ev["user"] = {"username": requester}
    ev["requestObject"]["spec"]["boundObjectRef"]["kind"] = bound_kind
    ingest.lines("audit.log", [ev])
    assert ingest.one("SELECT credential_kind FROM credential_events") == kind


def test_token_without_exp_claim_or_timestamp_keeps_the_requested_lifetime(ingest: Ingester):
    ev = token_request()
    ev["responseObject"]["status"] = {"token": "not-a-jwt"}
    ingest.lines("audit.log", [ev])
    [issue] = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert (issue["ttl_s"], issue["expires_at"]) == (3607, datetime(2024, 6, 1, 13, 0, 7))


def test_x509_credential_ids_are_client_certificates(ingest: Ingester):
    cert = "X509SHA256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    admin = {
        "username": "admin@example.com",
        "groups": ["system:masters", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": [cert]},
    }
    ingest.lines(
        "audit.log",
        [
            secret_get("e2f3a4b5-0019-4c8e-9d7b-3e2f1a0b9c8d", user=admin),
            secret_get("f3a4b5c6-0020-4c8e-9d7b-3e2f1a0b9c8d"),
        ],
    )
    uses = ingest.rows("SELECT credential_id, credential_kind FROM credential_events ORDER BY 2")
    assert [(u["credential_id"], u["credential_kind"]) for u in uses] == [
        (ingest.cred_id("k8s", JTI), "k8s_sa_token"),
        (ingest.cred_id("k8s", cert), "k8s_x509_cert"),
    ]


# ---------------------------------------------------------------- silent loss


def test_misspelt_main_keys_are_rejected_with_a_reason_not_dropped(ingest: Ingester):
    good = secret_get("a4b5c6d7-0021-4c8e-9d7b-3e2f1a0b9c8d")
    misspelt = secret_get("b5c6d7e8-0022-4c8e-9d7b-3e2f1a0b9c8d")
    misspelt["objectRf"] = misspelt.pop("objectRef")
    # a request with no objectRef at all is a non-resource request (/healthz): loaded
    healthz = event("c6d7e8f9-0023-4c8e-9d7b-3e2f1a0b9c8d", "get", requestURI="/healthz")
    healthz.pop("objectRef")
    report = ingest.lines("audit.log", [good, misspelt, healthz])
    assert counts(report) == [(3, 2, 1, 0)]
    assert ingest.one("SELECT reason FROM rejected_events") == (
        "unknown field(s) objectRf in a Kubernetes audit Event without objectRef (misspelt?)"
    )
    assert actions(ingest)["k8s:c6d7e8f9-0023-4c8e-9d7b-3e2f1a0b9c8d"]["tool"] == "get nonresource"


def test_event_list_with_a_misspelt_items_key_is_rejected(ingest: Ingester):
    doc = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "itemz": [token_request(), secret_get("d7e8f9a0-0024-4c8e-9d7b-3e2f1a0b9c8d")],
    }
    report = ingest.document("audit-export.json", doc)
    assert counts(report) == [(1, 0, 1, 0)]
    assert ingest.one("SELECT reason FROM rejected_events") == (
        "missing required field items (EventList keys: apiVersion, itemz, kind, metadata)"
    )
    assert ISSUED_TOKEN.split(".")[1] not in ingest.stored_text()


def test_the_same_file_again_is_all_duplicates(ingest: Ingester):
    """Plain ids, fingerprinted ids and non-resource requests are recognised on a rerun."""
    healthz = event("e8f9a0b1-0025-4c8e-9d7b-3e2f1a0b9c8d", "get", requestURI="/healthz")
    healthz.pop("objectRef")
    records = [secret_get(AID), secret_get(AID, name="other-secret"), healthz, token_request()]
    assert counts(ingest.lines("audit.log", records)) == [(4, 4, 0, 0)]
    assert counts(ingest.lines("audit.log", records)) == [(4, 0, 0, 4)]
    assert counts(ingest.lines("copy.log", records[::-1])) == [(4, 0, 0, 4)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 4


def test_gke_json_array_as_gcloud_writes_it(ingest: Ingester):
    entries = [
        gke("a9b0c1d2-0026", "io.k8s.core.v1.pods.get", f"core/v1/namespaces/{NAMESPACE}/pods/p1"),
        gke("b0c1d2e3-0027", "io.k8s.core.v1.namespaces.get", "core/v1/namespaces/agents"),
    ]
    report = ingest.document("gke.json", entries)
    assert counts(report) == [(2, 2, 0, 0)]
    acts = actions(ingest)
    assert acts["k8s:a9b0c1d2-0026"]["destination"] == f"{NAMESPACE}/pods/p1"
    assert (acts["k8s:b0c1d2e3-0027"]["tool"], acts["k8s:b0c1d2e3-0027"]["destination"]) == (
        "get namespaces",
        "namespaces/agents",
    )
