"""CloudTrail ingest: file shapes, STS and IAM credential lifecycle, linking, rejects, duplicates,
classification, secrets, and one file shaped like a real account's delivery.

Fixtures are written by hand from the facts in FORMATS.md (non-ISO `expiration` / `createDate`,
`responseElements: null` on failure, keys in `userIdentity.accessKeyId`).
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pytest

from tests.conftest import Ingester, counts

ACCOUNT = "111122223333"
ORCH_KEY = "AKIA2ORCHESTRATOR001"  # long-lived key of the orchestrator IAM user
AGENT_KEY = "ASIAPLANNERSESSION01"  # STS session key issued to an agent
AGENT_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIFakeSessionTokenForTests+Q=="
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/AgentRole"


# ---------------------------------------------------------------- record builders


def iam_user(name: str, key: str | None = None) -> dict:
    ident = {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEPRINCIPAL",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "accountId": ACCOUNT,
        "userName": name,
    }
    if key is not None:
        ident["accessKeyId"] = key
    return ident


def assumed_role(role: str, session: str, key: str) -> dict:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEROLEID001:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "accessKeyId": key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLEID001",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                "accountId": ACCOUNT,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-11-30T19:43:17Z", "mfaAuthenticated": "false"},
        },
    }


def ct(
    event_id: str,
    time: str,
    source: str,
    name: str,
    identity: dict,
    *,
    request: dict | None = None,
    response: dict | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    **extra,
) -> dict:
    rec = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux",
        "requestParameters": request,
        "responseElements": response,
        "requestID": f"req-{event_id}",
        "eventID": event_id,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if error_code is not None:
        rec["errorCode"] = error_code
    if error_message is not None:
        rec["errorMessage"] = error_message
    rec.update(extra)
    return rec


def assume_role(
    event_id: str,
    time: str,
    caller: dict,
    *,
    session: str,
    new_key: str,
    expiration: str,
    role_arn: str = ROLE_ARN,
    duration: int | None = 3600,
    tags: list[dict] | None = None,
    token: str = AGENT_TOKEN,
) -> dict:
    request = {"roleArn": role_arn, "roleSessionName": session}
    if duration is not None:
        request["durationSeconds"] = duration
    if tags is not None:
        request["tags"] = tags
    role = role_arn.rsplit("/", 1)[1]
    response = {
        "credentials": {"accessKeyId": new_key, "sessionToken": token, "expiration": expiration},
        "assumedRoleUser": {
            "assumedRoleId": f"AROAEXAMPLEROLEID001:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        },
    }
    return ct(
        event_id,
        time,
        "sts.amazonaws.com",
        "AssumeRole",
        caller,
        request=request,
        response=response,
    )


def s3_call(
    event_id: str, time: str, name: str, identity: dict, bucket: str, key: str | None
) -> dict:
    request = {"bucketName": bucket, "Host": f"{bucket}.s3.us-east-1.amazonaws.com"}
    if key is not None:
        request["key"] = key
    return ct(
        event_id,
        time,
        "s3.amazonaws.com",
        name,
        identity,
        request=request,
        managementEvent=False,
        eventCategory="Data",
    )


def issue_of(ingest: Ingester, cred: str) -> dict:
    rows = ingest.rows(
        "SELECT * FROM credential_events WHERE event_type = 'issue' AND credential_id = ?", [cred]
    )
    assert len(rows) == 1, rows
    return rows[0]


def action(ingest: Ingester, event_id: str) -> dict:
    rows = ingest.rows("SELECT * FROM agent_actions WHERE event_id = ?", [f"ct:{event_id}"])
    assert len(rows) == 1, rows
    return rows[0]


# A small session: orchestrator assumes AgentRole for planner@task-1, the agent reads an object.
def session_records() -> list[dict]:
    return [
        assume_role(
            "e-issue",
            "2024-11-30T19:43:17Z",
            iam_user("orchestrator", ORCH_KEY),
            session="planner@task-1",
            new_key=AGENT_KEY,
            expiration="Nov 30, 2024, 8:43:17 PM",
        ),
        s3_call(
            "e-read",
            "2024-11-30T19:50:00Z",
            "GetObject",
            assumed_role("AgentRole", "planner@task-1", AGENT_KEY),
            "reports",
            "q3/summary.csv",
        ),
    ]


def assert_session_loaded(ingest: Ingester) -> None:
    cred = ingest.cred_id("aws", AGENT_KEY)
    issue = issue_of(ingest, cred)
    assert issue["expires_at"] == datetime(2024, 11, 30, 20, 43, 17)
    assert (issue["task_id"], issue["agent_id"]) == ("task-1", "planner")
    use = action(ingest, "e-read")
    assert (use["credential_id"], use["task_id"], use["tool"]) == (cred, "task-1", "GetObject")


# ---------------------------------------------------------------- file shapes


def test_records_document_pretty_printed(ingest: Ingester):
    report = ingest.document("ct-pretty.json", {"Records": session_records()})
    assert counts(report) == [(2, 2, 0, 0)]
    assert report.files[0].source_format == "cloudtrail"
    assert_session_loaded(ingest)
    rows = ingest.rows(
        "SELECT source_line, source_record FROM agent_actions ORDER BY source_record"
    )
    assert rows == [{"source_line": 1, "source_record": 0}, {"source_line": 1, "source_record": 1}]


def test_records_document_on_one_line(ingest: Ingester):
    report = ingest.lines("ct-oneline.json", [{"Records": session_records()}])
    assert counts(report) == [(2, 2, 0, 0)]
    assert_session_loaded(ingest)


def test_json_array_of_records(ingest: Ingester):
    report = ingest.document("ct-array.json", session_records())
    assert counts(report) == [(2, 2, 0, 0)]
    assert_session_loaded(ingest)


def test_json_array_on_one_line(ingest: Ingester):
    report = ingest.lines("ct-array-line.json", [session_records()])
    assert counts(report) == [(2, 2, 0, 0)]
    assert_session_loaded(ingest)


def test_json_lines_of_records(ingest: Ingester):
    report = ingest.lines("ct.jsonl", session_records())
    assert counts(report) == [(2, 2, 0, 0)]
    assert_session_loaded(ingest)
    lines = ingest.rows("SELECT source_line FROM agent_actions ORDER BY source_line")
    assert [r["source_line"] for r in lines] == [1, 2]


def test_gzipped_json_lines(ingest: Ingester):
    report = ingest.lines("ct.jsonl.gz", session_records(), compress=True)
    assert counts(report) == [(2, 2, 0, 0)]
    assert_session_loaded(ingest)


def test_gzipped_records_document(ingest: Ingester):
    path = ingest.tmp_path / "in" / f"{ACCOUNT}_CloudTrail_us-east-1_20241130T2000Z_a1b2.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": session_records()}).encode()))
    report = ingest.files(path)
    assert counts(report) == [(2, 2, 0, 0)]
    assert_session_loaded(ingest)


def test_empty_records_array_loads_nothing(ingest: Ingester):
    report = ingest.document("ct-empty.json", {"Records": []})
    assert counts(report) == [(0, 0, 0, 0)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 0


# ---------------------------------------------------------------- STS issuance


@pytest.mark.parametrize(
    ("event_time", "expiration", "duration", "expires", "ttl"),
    [
        # the older form, no comma after the year; durationSeconds given
        (
            "2019-10-02T22:12:29Z",
            "Oct 2, 2019 11:12:29 PM",
            3600,
            datetime(2019, 10, 2, 23, 12, 29),
            3600,
        ),
        # the newer form with a comma after the year; no durationSeconds: ttl from the expiry
        (
            "2024-11-30T19:43:17Z",
            "Nov 30, 2024, 8:43:17 PM",
            None,
            datetime(2024, 11, 30, 20, 43, 17),
            3600,
        ),
        # 12 AM is midnight, and the expiry falls on the next day (and year)
        (
            "2024-12-31T23:45:00Z",
            "Jan 1, 2025, 12:45:00 AM",
            3600,
            datetime(2025, 1, 1, 0, 45, 0),
            3600,
        ),
        # single-digit hour in the older form, 15-minute session
        (
            "2024-03-05T13:50:11Z",
            "Mar 5, 2024 2:05:11 PM",
            900,
            datetime(2024, 3, 5, 14, 5, 11),
            900,
        ),
    ],
)
def test_assume_role_expiration_forms(
    ingest: Ingester, event_time, expiration, duration, expires, ttl
):
    rec = assume_role(
        "e1",
        event_time,
        iam_user("orchestrator", ORCH_KEY),
        session="planner@task-1",
        new_key=AGENT_KEY,
        expiration=expiration,
        duration=duration,
    )
    report = ingest.document("sts.json", {"Records": [rec]})
    assert counts(report) == [(1, 1, 0, 0)]
    issue = issue_of(ingest, ingest.cred_id("aws", AGENT_KEY))
    assert issue["expires_at"] == expires
    assert issue["issued_at"] == datetime.fromisoformat(event_time.replace("Z", ""))
    assert issue["ttl_s"] == ttl
    assert issue["credential_kind"] == "sts_session"
    assert issue["principal"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/AgentRole/planner@task-1"
    assert issue["parent_credential_id"] == ingest.cred_id("aws", ORCH_KEY)
    assert issue["scopes"] == [ROLE_ARN]
    assert (issue["agent_id"], issue["task_id"], issue["task_source"]) == (
        "planner",
        "task-1",
        "sts_session_name",
    )
    assert issue["outcome"] == "ok"
    assert issue["event_id"] == "ct:e1"
    # The call itself is an action of the caller, and a use of the caller's key.
    act = action(ingest, "e1")
    assert (act["tool"], act["system"], act["action_class"], act["outcome"]) == (
        "AssumeRole",
        "sts.amazonaws.com",
        "credential",
        "ok",
    )
    assert act["credential_id"] == ingest.cred_id("aws", ORCH_KEY)
    assert act["agent_id"] == "orchestrator"
    use = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'use'")
    assert [(u["credential_id"], u["credential_kind"]) for u in use] == [
        (ingest.cred_id("aws", ORCH_KEY), "iam_access_key")
    ]


def test_assume_role_with_web_identity(ingest: Ingester):
    identity = {
        "type": "WebIdentityUser",
        "principalId": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:repo:acme/agents:ref:refs/heads/main",
        "userName": "repo:acme/agents:ref:refs/heads/main",
        "identityProvider": "token.actions.githubusercontent.com",
    }
    deploy_role = f"arn:aws:iam::{ACCOUNT}:role/DeployRole"
    rec = ct(
        "w1",
        "2024-11-30T19:43:17Z",
        "sts.amazonaws.com",
        "AssumeRoleWithWebIdentity",
        identity,
        request={
            "roleArn": deploy_role,
            "roleSessionName": "deployer@task-9",
            "durationSeconds": 3600,
            "policyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
        },
        response={
            "credentials": {
                "accessKeyId": "ASIADEPLOYSESSION003",
                "sessionToken": "FwoGZXIvYXdzEFakeWebIdentityToken",
                "expiration": "Nov 30, 2024, 8:43:17 PM",
            },
            "subjectFromWebIdentityToken": "repo:acme/agents:ref:refs/heads/main",
            "assumedRoleUser": {
                "assumedRoleId": "AROAEXAMPLEDEPLOY001:deployer@task-9",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/DeployRole/deployer@task-9",
            },
            "provider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
            "audience": "sts.amazonaws.com",
        },
    )
    assert counts(ingest.document("web.json", {"Records": [rec]})) == [(1, 1, 0, 0)]
    issue = issue_of(ingest, ingest.cred_id("aws", "ASIADEPLOYSESSION003"))
    assert issue["issued_at"] == datetime(2024, 11, 30, 19, 43, 17)
    assert issue["expires_at"] == datetime(2024, 11, 30, 20, 43, 17)
    assert issue["ttl_s"] == 3600
    assert issue["principal"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/DeployRole/deployer@task-9"
    assert (
        issue["parent_credential_id"] is None
    )  # the caller presented a web identity token, not a key
    assert issue["scopes"] == [deploy_role, "arn:aws:iam::aws:policy/ReadOnlyAccess"]
    assert (issue["agent_id"], issue["task_id"]) == ("deployer", "task-9")
    # No key in userIdentity: no use event.
    assert ingest.one("SELECT count(*) FROM credential_events WHERE event_type = 'use'") == 0


def test_get_session_token(ingest: Ingester):
    caller = iam_user("orchestrator", ORCH_KEY)
    rec = ct(
        "g1",
        "2019-10-02T11:12:29Z",
        "sts.amazonaws.com",
        "GetSessionToken",
        caller,
        request={"durationSeconds": 43200},
        response={
            "credentials": {
                "accessKeyId": "ASIAGETSESSIONTKN005",
                "sessionToken": "FwoGZXIvYXdzEFakeGetSessionToken",
                "expiration": "Oct 2, 2019 11:12:29 PM",
            }
        },
    )
    assert counts(ingest.document("gst.json", {"Records": [rec]})) == [(1, 1, 0, 0)]
    issue = issue_of(ingest, ingest.cred_id("aws", "ASIAGETSESSIONTKN005"))
    assert issue["credential_kind"] == "sts_session"
    assert issue["issued_at"] == datetime(2019, 10, 2, 11, 12, 29)
    assert issue["expires_at"] == datetime(2019, 10, 2, 23, 12, 29)
    assert issue["ttl_s"] == 43200
    assert issue["principal"] == f"arn:aws:iam::{ACCOUNT}:user/orchestrator"
    assert issue["agent_id"] == "orchestrator"
    assert issue["task_id"] is None
    assert issue["parent_credential_id"] == ingest.cred_id("aws", ORCH_KEY)
    assert issue["scopes"] == []


def test_failed_sts_call_is_a_denied_action_and_issues_nothing(ingest: Ingester):
    rec = ct(
        "d1",
        "2024-11-30T19:43:17Z",
        "sts.amazonaws.com",
        "AssumeRole",
        iam_user("orchestrator", ORCH_KEY),
        request={
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/AdminRole",
            "roleSessionName": "planner@task-1",
        },
        response=None,
        error_code="AccessDenied",
        error_message=f"User: arn:aws:iam::{ACCOUNT}:user/orchestrator is not authorized to perform: sts:AssumeRole",
    )
    report = ingest.document("denied.json", {"Records": [rec]})
    assert counts(report) == [(1, 1, 0, 0)]
    act = action(ingest, "d1")
    assert (act["outcome"], act["error_type"], act["action_class"]) == (
        "denied",
        "AccessDenied",
        "credential",
    )
    assert act["destination"] == f"arn:aws:iam::{ACCOUNT}:role/AdminRole"
    assert ingest.one("SELECT count(*) FROM credential_events WHERE event_type = 'issue'") == 0
    use = ingest.rows(
        "SELECT credential_id, outcome FROM credential_events WHERE event_type = 'use'"
    )
    assert use == [{"credential_id": ingest.cred_id("aws", ORCH_KEY), "outcome": "denied"}]
    assert ingest.one("SELECT count(*) FROM rejected_events") == 0


@pytest.mark.parametrize(
    ("error_code", "outcome"),
    [
        ("AccessDenied", "denied"),
        ("Client.UnauthorizedOperation", "denied"),
        ("RegionDisabledException", "error"),
        ("ThrottlingException", "error"),
        ("NoSuchBucket", "error"),
    ],
)
def test_error_code_outcomes(ingest: Ingester, error_code, outcome):
    rec = ct(
        "x1",
        "2024-11-30T19:43:17Z",
        "sts.amazonaws.com",
        "AssumeRole",
        iam_user("orchestrator", ORCH_KEY),
        request={"roleArn": ROLE_ARN, "roleSessionName": "planner@task-1"},
        response=None,
        error_code=error_code,
    )
    assert counts(ingest.document("err.json", {"Records": [rec]})) == [(1, 1, 0, 0)]
    act = action(ingest, "x1")
    assert (act["outcome"], act["error_type"]) == (outcome, error_code)
    assert ingest.one("SELECT count(*) FROM credential_events WHERE event_type = 'issue'") == 0


def test_success_without_error_code_is_ok(ingest: Ingester):
    ingest.document("ok.json", {"Records": session_records()})
    assert [a["outcome"] for a in ingest.rows("SELECT outcome FROM agent_actions")] == ["ok", "ok"]
    assert [a["error_type"] for a in ingest.rows("SELECT error_type FROM agent_actions")] == [
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("name", "response", "reason"),
    [
        (
            "AssumeRole",
            {
                "credentials": {
                    "accessKeyId": AGENT_KEY,
                    "sessionToken": AGENT_TOKEN,
                    "expiration": "next tuesday",
                }
            },
            "unparseable timestamp in responseElements.credentials.expiration: next tuesday",
        ),
        (
            "AssumeRole",
            {"credentials": {"accessKeyId": AGENT_KEY, "sessionToken": AGENT_TOKEN}},
            "unparseable timestamp in responseElements.credentials.expiration: missing",
        ),
        (
            "CreateAccessKey",
            {
                "accessKey": {
                    "accessKeyId": "AKIASVCAGENT00000001",
                    "status": "Active",
                    "userName": "svc",
                    "createDate": "30/11/2024 20:43",
                }
            },
            "unparseable timestamp in responseElements.accessKey.createDate: 30/11/2024 20:43",
        ),
    ],
)
def test_unparseable_issue_date_is_rejected(ingest: Ingester, name, response, reason):
    source = "iam.amazonaws.com" if name == "CreateAccessKey" else "sts.amazonaws.com"
    request = (
        {"userName": "svc"}
        if name == "CreateAccessKey"
        else {"roleArn": ROLE_ARN, "roleSessionName": "p@task-1"}
    )
    bad = ct(
        "bad1",
        "2024-11-30T19:43:17Z",
        source,
        name,
        iam_user("orchestrator", ORCH_KEY),
        request=request,
        response=response,
    )
    good = session_records()[1]
    report = ingest.document("bad-date.json", {"Records": [bad, good]})
    assert counts(report) == [(2, 1, 1, 0)]
    rejected = ingest.rows("SELECT reason, source_record, raw_text FROM rejected_events")
    assert [(r["reason"], r["source_record"]) for r in rejected] == [(reason, 0)]
    assert ingest.one("SELECT count(*) FROM credential_events WHERE event_type = 'issue'") == 0
    assert ingest.one("SELECT count(*) FROM agent_actions WHERE event_id = 'ct:bad1'") == 0
    # the rejected record's text is kept, but without the key or the session token
    assert AGENT_TOKEN not in rejected[0]["raw_text"] and AGENT_KEY not in rejected[0]["raw_text"]
    assert "[REDACTED" in rejected[0]["raw_text"]


# ---------------------------------------------------------------- linking


def test_session_tag_names_the_task(ingest: Ingester):
    records = [
        assume_role(
            "t1",
            "2024-11-30T19:43:17Z",
            iam_user("orchestrator", ORCH_KEY),
            session="run-42",  # does not match agent@task
            new_key=AGENT_KEY,
            expiration="Nov 30, 2024, 8:43:17 PM",
            tags=[
                {"key": "Project", "value": "agents"},
                {"key": "chainwatch:task-id", "value": "task-tag7"},
            ],
        ),
        s3_call(
            "t2",
            "2024-11-30T19:50:00Z",
            "GetObject",
            assumed_role("AgentRole", "run-42", AGENT_KEY),
            "reports",
            "a.csv",
        ),
    ]
    ingest.document("tag.json", {"Records": records})
    cred = ingest.cred_id("aws", AGENT_KEY)
    issue = issue_of(ingest, cred)
    assert (issue["task_id"], issue["task_source"], issue["agent_id"]) == (
        "task-tag7",
        "sts_session_tag",
        None,
    )
    use = action(ingest, "t2")
    assert (use["credential_id"], use["task_id"], use["task_source"]) == (
        cred,
        "task-tag7",
        "credential",
    )
    use_event = ingest.rows(
        "SELECT * FROM credential_events WHERE event_type = 'use' AND credential_id = ?", [cred]
    )
    assert [(u["task_id"], u["task_source"]) for u in use_event] == [("task-tag7", "credential")]


def test_unrelated_tags_and_session_name_give_no_task(ingest: Ingester):
    records = [
        assume_role(
            "n1",
            "2024-11-30T19:43:17Z",
            iam_user("orchestrator", ORCH_KEY),
            session="botocore-session-1732995797",
            new_key=AGENT_KEY,
            expiration="Nov 30, 2024, 8:43:17 PM",
            tags=[{"key": "Project", "value": "task-not-this"}],
        ),
        s3_call(
            "n2",
            "2024-11-30T19:50:00Z",
            "GetObject",
            assumed_role("AgentRole", "botocore-session-1732995797", AGENT_KEY),
            "reports",
            "a.csv",
        ),
    ]
    ingest.document("notask.json", {"Records": records})
    issue = issue_of(ingest, ingest.cred_id("aws", AGENT_KEY))
    assert (issue["task_id"], issue["task_source"]) == (None, None)
    use = action(ingest, "n2")
    assert use["credential_id"] == ingest.cred_id("aws", AGENT_KEY)
    assert use["task_id"] is None
    assert ingest.one("SELECT count(*) FROM tasks") == 0


def test_session_tag_wins_over_session_name(ingest: Ingester):
    records = [
        assume_role(
            "w1",
            "2024-11-30T19:43:17Z",
            iam_user("orchestrator", ORCH_KEY),
            session="planner@task-name",
            new_key=AGENT_KEY,
            expiration="Nov 30, 2024, 8:43:17 PM",
            tags=[{"key": "chainwatch:task-id", "value": "task-tag"}],
        ),
        s3_call(
            "w2",
            "2024-11-30T19:50:00Z",
            "GetObject",
            assumed_role("AgentRole", "planner@task-name", AGENT_KEY),
            "reports",
            "a.csv",
        ),
    ]
    ingest.document("wins.json", {"Records": records})
    issue = issue_of(ingest, ingest.cred_id("aws", AGENT_KEY))
    assert (issue["task_id"], issue["task_source"], issue["agent_id"]) == (
        "task-tag",
        "sts_session_tag",
        "planner",
    )
    # The issuance belongs to the task it mints for, and a call made with the session's key to
    # the session's task: the tag wins there too.
    assert action(ingest, "w1")["task_id"] == "task-tag"
    use = action(ingest, "w2")
    assert use["credential_id"] == ingest.cred_id("aws", AGENT_KEY)
    assert use["task_id"] == "task-tag"


def test_use_before_issue_in_one_run(ingest: Ingester):
    rec_issue, rec_use = session_records()
    use_file = ingest.tmp_path / "in" / "a-use.jsonl"
    issue_file = ingest.tmp_path / "in" / "b-issue.jsonl"
    use_file.parent.mkdir(parents=True, exist_ok=True)
    use_file.write_text(json.dumps(rec_use) + "\n")
    issue_file.write_text(json.dumps(rec_issue) + "\n")
    report = ingest.files(use_file, issue_file)
    assert counts(report) == [(1, 1, 0, 0), (1, 1, 0, 0)]
    assert_session_loaded(ingest)


def test_linking_catches_up_when_issue_arrives_in_a_later_file(ingest: Ingester):
    """The use is ingested first, with no task of its own; the issue's tag arrives later."""
    key = "ASIALATESESSION00009"
    use = s3_call(
        "late-use",
        "2024-11-30T20:05:00Z",
        "GetObject",
        assumed_role("AgentRole", "run-77", key),
        "reports",
        "late.csv",
    )
    issue = assume_role(
        "late-issue",
        "2024-11-30T20:00:00Z",
        iam_user("orchestrator", ORCH_KEY),
        session="run-77",
        new_key=key,
        expiration="Nov 30, 2024, 9:00:00 PM",
        tags=[{"key": "chainwatch:task-id", "value": "task-late"}],
    )
    ingest.lines("day1.jsonl", [use])
    cred = ingest.cred_id("aws", key)
    before = action(ingest, "late-use")
    assert (before["credential_id"], before["task_id"]) == (cred, None)
    assert ingest.one("SELECT count(*) FROM tasks") == 0

    ingest.lines("day2.jsonl", [issue])
    after = action(ingest, "late-use")
    assert (after["credential_id"], after["task_id"], after["task_source"]) == (
        cred,
        "task-late",
        "credential",
    )
    use_event = ingest.rows(
        "SELECT task_id, task_source FROM credential_events WHERE event_id = 'ct:late-use'"
    )
    assert use_event == [{"task_id": "task-late", "task_source": "credential"}]
    task = ingest.rows("SELECT * FROM tasks WHERE task_id = 'task-late'")
    assert len(task) == 1
    # The AssumeRole that minted the session for the task and the call made with it.
    assert (task[0]["actions"], task[0]["credentials_issued"]) == (2, 1)
    assert task[0]["started_at"] == datetime(2024, 11, 30, 20, 0, 0)
    assert task[0]["ended_at"] == datetime(2024, 11, 30, 20, 5, 0)


# ---------------------------------------------------------------- IAM access keys


@pytest.mark.parametrize(
    ("create_date", "created"),
    [
        ("Nov 30, 2024, 8:43:17 PM", datetime(2024, 11, 30, 20, 43, 17)),
        ("Oct 2, 2019 11:12:29 PM", datetime(2019, 10, 2, 23, 12, 29)),
    ],
)
def test_iam_access_key_lifecycle(ingest: Ingester, create_date, created):
    admin = iam_user("admin", ORCH_KEY)
    key = "AKIASVCAGENT00000001"
    records = [
        ct(
            "k1",
            "2024-11-30T20:43:17Z",
            "iam.amazonaws.com",
            "CreateAccessKey",
            admin,
            request={"userName": "svc-agent"},
            response={
                "accessKey": {
                    "userName": "svc-agent",
                    "accessKeyId": key,
                    "status": "Active",
                    "createDate": create_date,
                }
            },
        ),
        ct(
            "k2",
            "2024-12-01T08:00:00Z",
            "s3.amazonaws.com",
            "ListBuckets",
            iam_user("svc-agent", key),
            request={"Host": "s3.amazonaws.com"},
        ),
        ct(
            "k3",
            "2024-12-02T08:00:00Z",
            "iam.amazonaws.com",
            "UpdateAccessKey",
            admin,
            request={"userName": "svc-agent", "accessKeyId": key, "status": "Inactive"},
        ),
        ct(
            "k4",
            "2024-12-03T08:00:00Z",
            "iam.amazonaws.com",
            "UpdateAccessKey",
            admin,
            request={"userName": "svc-agent", "accessKeyId": key, "status": "Active"},
        ),
        # a failed deactivation changes nothing
        ct(
            "k5",
            "2024-12-04T08:00:00Z",
            "iam.amazonaws.com",
            "UpdateAccessKey",
            iam_user("intern", "AKIAINTERNKEY0000007"),
            request={"userName": "svc-agent", "accessKeyId": key, "status": "Inactive"},
            error_code="AccessDenied",
        ),
        ct(
            "k6",
            "2024-12-05T08:00:00Z",
            "iam.amazonaws.com",
            "DeleteAccessKey",
            admin,
            request={"userName": "svc-agent", "accessKeyId": key},
        ),
    ]
    report = ingest.document("iam.json", {"Records": records})
    assert counts(report) == [(6, 6, 0, 0)]
    cred = ingest.cred_id("aws", key)
    events = ingest.rows(
        "SELECT event_id, event_type, credential_kind, principal, parent_credential_id, issued_at, expires_at, ttl_s"
        " FROM credential_events WHERE credential_id = ? ORDER BY ts, event_type",
        [cred],
    )
    assert [(e["event_id"], e["event_type"]) for e in events] == [
        ("ct:k1", "issue"),
        ("ct:k2", "use"),
        ("ct:k3", "revoke"),
        ("ct:k4", "renew"),
        ("ct:k6", "revoke"),
    ]
    assert all(e["credential_kind"] == "iam_access_key" for e in events)
    issue = events[0]
    assert issue["principal"] == "svc-agent"
    assert issue["issued_at"] == created
    assert (issue["expires_at"], issue["ttl_s"]) == (None, None)  # long-lived: no expiry
    assert issue["parent_credential_id"] == ingest.cred_id("aws", ORCH_KEY)
    assert [e["principal"] for e in events[2:]] == ["svc-agent"] * 3
    assert action(ingest, "k2")["credential_id"] == cred
    for eid in ("k1", "k3", "k4", "k6"):
        assert action(ingest, eid)["action_class"] == "credential"
    assert action(ingest, "k5")["outcome"] == "denied"


# ---------------------------------------------------------------- rejects and duplicates


def test_bad_records_are_rejected_with_reasons(ingest: Ingester):
    good = session_records()[1]
    no_time = {k: v for k, v in good.items() if k != "eventTime"} | {"eventID": "r1"}
    no_name = {k: v for k, v in good.items() if k != "eventName"} | {"eventID": "r2"}
    number_name = good | {"eventID": "r3", "eventName": 42}
    bad_time = good | {"eventID": "r5", "eventTime": "not a time"}
    no_source = {k: v for k, v in good.items() if k != "eventSource"} | {"eventID": "r6"}
    empty_name = good | {"eventID": "r7", "eventName": ""}
    records = [
        good,
        no_time,
        no_name,
        number_name,
        "just a string",
        bad_time,
        no_source,
        empty_name,
        [1, 2],
    ]
    report = ingest.document("bad.json", {"Records": records})
    assert counts(report) == [(9, 1, 8, 0)]
    rows = ingest.rows(
        "SELECT source_record, reason, source_line FROM rejected_events ORDER BY source_record"
    )
    assert [(r["source_record"], r["reason"]) for r in rows] == [
        (1, "missing required field eventTime"),
        (2, "missing required field eventName"),
        (3, "wrong type for eventName: expected string, got number"),
        (4, "record is not a JSON object (got string)"),
        (5, 'unparseable timestamp in eventTime: "not a time"'),  # the value as JSON
        (6, "missing required field eventSource"),
        (7, "empty required field eventName"),
        (8, "record is not a JSON object (got array)"),
    ]
    assert {r["source_line"] for r in rows} == {1}
    assert ingest.one("SELECT count(*) FROM agent_actions") == 1
    ledger = ingest.rows(
        "SELECT disposition, count(*) AS n FROM ingest_ledger GROUP BY ALL ORDER BY 1"
    )
    assert ledger == [{"disposition": "loaded", "n": 1}, {"disposition": "rejected", "n": 8}]


def test_malformed_json_line_is_rejected(ingest: Ingester):
    good = session_records()[1]
    report = ingest.lines(
        "broken.jsonl", [good, '{"eventTime": "2024-11-30T19:50:00Z", "eventSource": "s3.am']
    )
    assert counts(report) == [(2, 1, 1, 0)]
    rows = ingest.rows("SELECT reason, source_line FROM rejected_events")
    assert rows == [
        {"reason": "malformed JSON (invalid syntax or truncated line)", "source_line": 2}
    ]


def test_duplicate_event_ids_in_one_file_and_across_files(ingest: Ingester):
    issue, read = session_records()
    write = s3_call(
        "e-write",
        "2024-11-30T19:55:00Z",
        "PutObject",
        assumed_role("AgentRole", "planner@task-1", AGENT_KEY),
        "exports",
        "out.csv",
    )
    first = ingest.document("a.json", {"Records": [issue, read, issue]})
    assert counts(first) == [(3, 2, 0, 1)]
    second = ingest.lines("b.jsonl", [read, write])
    assert counts(second) == [(2, 1, 0, 1)]
    # the same bytes under another name: recognised as already ingested
    third = ingest.document("a-copy.json", {"Records": [issue, read, issue]})
    assert counts(third) == [(3, 0, 0, 3)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 3
    assert ingest.one("SELECT count(*) FROM credential_events WHERE event_type = 'issue'") == 1
    assert ingest.one("SELECT count(DISTINCT event_id) FROM ingest_ledger") == 3
    files = ingest.rows(
        "SELECT records, loaded, rejected, duplicates FROM ingest_files ORDER BY started_at, source_file"
    )
    assert all(f["records"] == f["loaded"] + f["rejected"] + f["duplicates"] for f in files)


def test_record_without_event_id_is_kept_once(ingest: Ingester):
    rec = {k: v for k, v in session_records()[1].items() if k != "eventID"}
    report = ingest.document("noid.json", {"Records": [rec, rec]})
    assert counts(report) == [(2, 1, 0, 1)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 1


# ---------------------------------------------------------------- secrets


def test_raw_keys_and_session_tokens_are_never_stored(ingest: Ingester):
    create_key = "AKIASVCAGENT00000001"
    records = [
        *session_records(),
        ct(
            "s3",
            "2024-11-30T20:00:00Z",
            "iam.amazonaws.com",
            "CreateAccessKey",
            iam_user("admin", ORCH_KEY),
            request={"userName": "svc-agent"},
            response={
                "accessKey": {
                    "userName": "svc-agent",
                    "accessKeyId": create_key,
                    "status": "Active",
                    "createDate": "Nov 30, 2024, 8:00:00 PM",
                }
            },
        ),
        ct(
            "s4",
            "2024-11-30T20:01:00Z",
            "iam.amazonaws.com",
            "UpdateAccessKey",
            iam_user("admin", ORCH_KEY),
            request={"userName": "svc-agent", "accessKeyId": create_key, "status": "Inactive"},
        ),
        # rejected (bad expiry): its text is kept in rejected_events, redacted
        ct(
            "s5",
            "2024-11-30T20:02:00Z",
            "sts.amazonaws.com",
            "AssumeRole",
            iam_user("admin", ORCH_KEY),
            request={"roleArn": ROLE_ARN, "roleSessionName": "x@task-2"},
            response={
                "credentials": {
                    "accessKeyId": "ASIAREJECTEDSESS0005",
                    "sessionToken": "FwoGZXIvYXdzERejectedToken",
                    "expiration": "soon",
                }
            },
        ),
    ]
    report = ingest.document("secrets.json", {"Records": records})
    assert counts(report) == [(5, 4, 1, 0)]
    text = ingest.stored_text()
    for secret in (
        ORCH_KEY,
        AGENT_KEY,
        AGENT_TOKEN,
        create_key,
        "ASIAREJECTEDSESS0005",
        "FwoGZXIvYXdzERejectedToken",
    ):
        assert secret not in text
    # what is stored instead: the keyed hashes
    for key in (ORCH_KEY, AGENT_KEY, create_key):
        assert ingest.cred_id("aws", key) in text


# ---------------------------------------------------------------- classification


def test_action_classes_and_destinations(ingest: Ingester):
    who = assumed_role("AgentRole", "planner@task-1", AGENT_KEY)
    queue = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/outbound-mail"
    records = [
        assume_role(
            "c1",
            "2024-11-30T19:43:17Z",
            iam_user("orchestrator", ORCH_KEY),
            session="planner@task-1",
            new_key=AGENT_KEY,
            expiration="Nov 30, 2024, 8:43:17 PM",
        ),
        s3_call("c2", "2024-11-30T19:44:00Z", "GetObject", who, "reports", "q3/summary.csv"),
        s3_call("c3", "2024-11-30T19:45:00Z", "PutObject", who, "exports", "q3/out.csv"),
        s3_call("c4", "2024-11-30T19:46:00Z", "DeleteObject", who, "exports", "q3/tmp.csv"),
        ct(
            "c5",
            "2024-11-30T19:47:00Z",
            "sqs.amazonaws.com",
            "SendMessage",
            who,
            request={"queueUrl": queue, "messageBody": "hello"},
        ),
        s3_call("c6", "2024-11-30T19:48:00Z", "ListObjects", who, "reports", None),
    ]
    ingest.document("classes.json", {"Records": records})
    got = {
        r["event_id"]: (
            r["tool"],
            r["system"],
            r["action_class"],
            r["classified_by"],
            r["destination"],
        )
        for r in ingest.rows("SELECT * FROM agent_actions")
    }
    assert got == {
        "ct:c1": ("AssumeRole", "sts.amazonaws.com", "credential", "source", ROLE_ARN),
        "ct:c2": (
            "GetObject",
            "s3.amazonaws.com",
            "read",
            "catalog",
            "s3://reports/q3/summary.csv",
        ),
        "ct:c3": ("PutObject", "s3.amazonaws.com", "write", "tool_name", "s3://exports/q3/out.csv"),
        "ct:c4": (
            "DeleteObject",
            "s3.amazonaws.com",
            "delete",
            "tool_name",
            "s3://exports/q3/tmp.csv",
        ),
        "ct:c5": ("SendMessage", "sqs.amazonaws.com", "egress", "source", queue),
        "ct:c6": ("ListObjects", "s3.amazonaws.com", "read", "tool_name", "s3://reports"),
    }
    # all calls after the AssumeRole were made with the agent's session key, in its task
    rows = ingest.rows(
        "SELECT credential_id, task_id, agent_id, args FROM agent_actions WHERE event_id <> 'ct:c1'"
    )
    assert {(r["credential_id"], r["task_id"], r["agent_id"]) for r in rows} == {
        (ingest.cred_id("aws", AGENT_KEY), "task-1", "planner")
    }
    get_args = json.loads(action(ingest, "c2")["args"])
    assert get_args == {
        "bucketName": "reports",
        "Host": "reports.s3.us-east-1.amazonaws.com",
        "key": "q3/summary.csv",
    }


def s3_data_event(event_id: str, name: str, bytes_in, bytes_out=0) -> dict:
    """An S3 data event; ``bytes_in`` of ``...`` leaves ``bytesTransferredIn`` out."""
    who = assumed_role("AgentRole", "planner@task-1", AGENT_KEY)
    rec = s3_call(event_id, "2024-11-30T19:44:00Z", name, who, "exports", "q3/out.csv")
    extra = {
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": "Qk9HVVMtSUQtRk9SLVRFU1RTLU9OTFk=",
        "bytesTransferredOut": bytes_out,
    }
    if bytes_in is not ...:
        extra["bytesTransferredIn"] = bytes_in
    rec["additionalEventData"] = extra
    return rec


@pytest.mark.parametrize(
    ("name", "bytes_in", "expected"),
    [
        pytest.param("PutObject", 1048576, 1048576, id="number"),
        pytest.param("UploadPart", "5242880", 5242880, id="numeric-string"),
        pytest.param("PutObject", 1048576.0, 1048576, id="whole-number-float"),
        pytest.param("GetObject", 0, 0, id="download-sends-nothing"),
        pytest.param("PutObject", ..., None, id="absent"),
        pytest.param("PutObject", None, None, id="null"),
        pytest.param("PutObject", "unknown", None, id="text"),
        pytest.param("PutObject", -1, None, id="negative"),
        pytest.param("PutObject", 10.5, None, id="fraction"),
        pytest.param("PutObject", {"value": 1}, None, id="object"),
    ],
)
def test_bytes_out_from_bytes_transferred_in(ingest: Ingester, name, bytes_in, expected):
    report = ingest.document("s3.json", {"Records": [s3_data_event("d1", name, bytes_in)]})
    assert counts(report) == [(1, 1, 0, 0)]  # an unusable size is unknown, not a reject
    assert action(ingest, "d1")["bytes_out"] == expected


def test_bytes_out_is_null_without_additional_event_data(ingest: Ingester):
    ingest.document("ct.json", {"Records": session_records()})
    assert [r["bytes_out"] for r in ingest.rows("SELECT bytes_out FROM agent_actions")] == [
        None,
        None,
    ]


# ---------------------------------------------------------------- a file shaped like a real account's


TLS = {
    "tlsVersion": "TLSv1.3",
    "cipherSuite": "TLS_AES_128_GCM_SHA256",
    "clientProvidedHostHeader": "sts.us-east-1.amazonaws.com",
}
ORCH = "ci-orchestrator"
K_CONSOLE = "ASIAALICECONSOLE0001"
K_PLANNER = "ASIAPLANNERSESSION01"
K_EXECUTOR = "ASIAEXECUTORSESSN002"
K_DEPLOY = "ASIADEPLOYSESSION003"
K_LAMBDA = "ASIALAMBDASESSION004"
K_GST = "ASIAGETSESSIONTKN005"


def _eid(n: int) -> str:
    return f"0b7c5a1e-{n:04d}-4d2e-9f10-5a6b7c8d9e0f"


def _real(
    n: int, time: str, source: str, name: str, identity: dict, *, read_only: bool, **kw
) -> dict:
    rec = ct(_eid(n), time, source, name, identity, readOnly=read_only, **kw)
    rec["requestID"] = f"{n:02d}c4d2a6-7b8e-4f90-a1b2-c3d4e5f6a7b8"
    return rec


def _console_identity() -> dict:
    ident = iam_user("alice", K_CONSOLE)
    ident["sessionContext"] = {
        "sessionIssuer": {},
        "webIdFederationData": {},
        "attributes": {"creationDate": "2025-03-05T13:00:02Z", "mfaAuthenticated": "true"},
    }
    return ident


def _role_identity(role: str, session: str, key: str, created: str) -> dict:
    ident = assumed_role(role, session, key)
    ident["sessionContext"]["attributes"]["creationDate"] = created
    return ident


def _sts_response(role: str, session: str, key: str, expiration: str, token: str) -> dict:
    return {
        "credentials": {"accessKeyId": key, "sessionToken": token, "expiration": expiration},
        "assumedRoleUser": {
            "assumedRoleId": f"AROAEXAMPLEROLEID001:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        },
    }


def real_account_records() -> list[dict]:
    planner = _role_identity("AgentRole", "planner@task-a1", K_PLANNER, "2025-03-05T13:15:09Z")
    executor = _role_identity("DataRole", "executor@task-a1", K_EXECUTOR, "2025-03-05T14:05:11Z")
    deploy = _role_identity("DeployRole", "GitHubActions", K_DEPLOY, "2025-03-05T14:00:00Z")
    gst_user = iam_user(ORCH, K_GST)
    gst_user["sessionContext"] = {
        "attributes": {"creationDate": "2025-03-05T14:30:00Z", "mfaAuthenticated": "false"}
    }
    role = f"arn:aws:iam::{ACCOUNT}:role"
    return [
        _real(
            1,
            "2025-03-05T13:00:02Z",
            "signin.amazonaws.com",
            "ConsoleLogin",
            iam_user("alice"),
            read_only=False,
            request=None,
            response={"ConsoleLogin": "Success"},
            additionalEventData={
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": "Yes",
            },
            eventType="AwsConsoleSignIn",
            userAgent="Mozilla/5.0 (X11; Linux x86_64)",
        ),
        _real(
            2,
            "2025-03-05T13:00:40Z",
            "signin.amazonaws.com",
            "ConsoleLogin",
            {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEBOBBOB001",
                "accountId": ACCOUNT,
                "accessKeyId": "",
                "userName": "bob",
            },
            read_only=False,
            request=None,
            response={"ConsoleLogin": "Failure"},
            error_message="Failed authentication",
            additionalEventData={
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": "No",
            },
            eventType="AwsConsoleSignIn",
        ),
        _real(
            3,
            "2025-03-05T13:01:10Z",
            "s3.amazonaws.com",
            "ListBuckets",
            _console_identity(),
            read_only=True,
            request={"Host": "s3.us-east-1.amazonaws.com"},
            response=None,
            sessionCredentialFromConsole="true",
            tlsDetails=TLS | {"clientProvidedHostHeader": "s3.us-east-1.amazonaws.com"},
        ),
        _real(
            4,
            "2025-03-05T13:15:09Z",
            "sts.amazonaws.com",
            "AssumeRole",
            iam_user(ORCH, ORCH_KEY),
            read_only=True,
            request={
                "roleArn": f"{role}/AgentRole",
                "roleSessionName": "planner@task-a1",
                "durationSeconds": 3600,
            },
            response=_sts_response(
                "AgentRole",
                "planner@task-a1",
                K_PLANNER,
                "Mar 5, 2025, 2:15:09 PM",
                "IQoJb3JpZ2luX2VjPlannerTok==",
            ),
            resources=[
                {"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": f"{role}/AgentRole"}
            ],
            tlsDetails=TLS,
        ),
        _real(
            5,
            "2025-03-05T13:16:00Z",
            "ec2.amazonaws.com",
            "DescribeInstances",
            planner,
            read_only=True,
            request={"instancesSet": {}, "filterSet": {}},
            response=None,
        ),
        _real(
            6,
            "2025-03-05T13:17:30Z",
            "s3.amazonaws.com",
            "GetObject",
            planner,
            read_only=True,
            request={
                "bucketName": "corp-reports",
                "Host": "corp-reports.s3.us-east-1.amazonaws.com",
                "key": "2025/q1.csv",
            },
            response=None,
            managementEvent=False,
            eventCategory="Data",
            vpcEndpointId="vpce-0a1b2c3d4e5f6a7b8",
            additionalEventData={
                "SignatureVersion": "SigV4",
                "bytesTransferredIn": 0,
                "bytesTransferredOut": 48213,
                "AuthenticationMethod": "AuthHeader",
            },
            resources=[
                {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::corp-reports/2025/q1.csv"},
                {
                    "accountId": ACCOUNT,
                    "type": "AWS::S3::Bucket",
                    "ARN": "arn:aws:s3:::corp-reports",
                },
            ],
        ),
        _real(
            7,
            "2025-03-05T13:17:31Z",
            "kms.amazonaws.com",
            "Decrypt",
            planner,
            read_only=True,
            request={
                "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "encryptionContext": {"aws:s3:arn": "arn:aws:s3:::corp-reports/2025/q1.csv"},
            },
            response=None,
            resources=[
                {
                    "accountId": ACCOUNT,
                    "type": "AWS::KMS::Key",
                    "ARN": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                }
            ],
        ),
        _real(
            8,
            "2025-03-05T13:20:00Z",
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            planner,
            read_only=True,
            request={"secretId": "prod/agent/crm-api"},
            response=None,
        ),
        _real(
            9,
            "2025-03-05T14:05:11Z",
            "sts.amazonaws.com",
            "AssumeRole",
            planner,
            read_only=True,
            request={
                "roleArn": f"{role}/DataRole",
                "roleSessionName": "executor@task-a1",
                "durationSeconds": 900,
            },
            response=_sts_response(
                "DataRole",
                "executor@task-a1",
                K_EXECUTOR,
                "Mar 5, 2025 2:20:11 PM",
                "IQoJb3JpZ2luX2VjExecTok==",
            ),
            resources=[{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": f"{role}/DataRole"}],
            tlsDetails=TLS,
        ),
        _real(
            10,
            "2025-03-05T14:06:00Z",
            "s3.amazonaws.com",
            "PutObject",
            executor,
            read_only=False,
            request={
                "bucketName": "corp-exports",
                "Host": "corp-exports.s3.us-east-1.amazonaws.com",
                "key": "run/a1.parquet",
            },
            response={"x-amz-server-side-encryption": "aws:kms"},
            managementEvent=False,
            eventCategory="Data",
        ),
        _real(
            11,
            "2025-03-05T14:06:30Z",
            "s3.amazonaws.com",
            "DeleteObject",
            executor,
            read_only=False,
            request={
                "bucketName": "corp-exports",
                "Host": "corp-exports.s3.us-east-1.amazonaws.com",
                "key": "tmp/a1.part",
            },
            response=None,
            managementEvent=False,
            eventCategory="Data",
        ),
        _real(
            12,
            "2025-03-05T14:07:00Z",
            "sqs.amazonaws.com",
            "SendMessage",
            executor,
            read_only=False,
            request={"queueUrl": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/exports-ready"},
            response={
                "mD5OfMessageBody": "9e107d9d372bb6826bd81d3542a419d6",
                "messageId": "5fea7756-0ea4-451a-a703-a558b933e274",
            },
            managementEvent=False,
            eventCategory="Data",
        ),
        _real(
            13,
            "2025-03-05T14:08:00Z",
            "sts.amazonaws.com",
            "AssumeRole",
            executor,
            read_only=True,
            request={"roleArn": f"{role}/AdminRole", "roleSessionName": "executor@task-a1"},
            response=None,
            error_code="AccessDenied",
            error_message=f"User: arn:aws:sts::{ACCOUNT}:assumed-role/DataRole/executor@task-a1 is not authorized to perform: sts:AssumeRole on resource: {role}/AdminRole",
        ),
        _real(
            14,
            "2025-03-05T14:08:30Z",
            "ec2.amazonaws.com",
            "DescribeSecurityGroups",
            executor,
            read_only=True,
            request={"securityGroupSet": {}, "filterSet": {}},
            response=None,
            error_code="Client.UnauthorizedOperation",
            error_message="You are not authorized to perform this operation.",
        ),
        _real(
            15,
            "2025-03-05T14:00:00Z",
            "sts.amazonaws.com",
            "AssumeRoleWithWebIdentity",
            {
                "type": "WebIdentityUser",
                "principalId": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:repo:acme/agents:ref:refs/heads/main",
                "userName": "repo:acme/agents:ref:refs/heads/main",
                "identityProvider": "token.actions.githubusercontent.com",
            },
            read_only=True,
            request={
                "roleArn": f"{role}/DeployRole",
                "roleSessionName": "GitHubActions",
                "durationSeconds": 3600,
            },
            response=_sts_response(
                "DeployRole",
                "GitHubActions",
                K_DEPLOY,
                "Mar 5, 2025, 3:00:00 PM",
                "IQoJb3JpZ2luX2VjDeployTok==",
            )
            | {
                "subjectFromWebIdentityToken": "repo:acme/agents:ref:refs/heads/main",
                "audience": "sts.amazonaws.com",
                "provider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
            },
        ),
        _real(
            16,
            "2025-03-05T14:00:05Z",
            "sts.amazonaws.com",
            "GetCallerIdentity",
            deploy,
            read_only=True,
            request=None,
            response=None,
        ),
        _real(
            17,
            "2025-03-05T14:01:00Z",
            "s3.amazonaws.com",
            "ListObjects",
            deploy,
            read_only=True,
            request={
                "bucketName": "acme-deploy-artifacts",
                "Host": "acme-deploy-artifacts.s3.us-east-1.amazonaws.com",
                "prefix": "",
            },
            response=None,
            error_code="NoSuchBucket",
            error_message="The specified bucket does not exist",
            managementEvent=False,
            eventCategory="Data",
        ),
        _real(
            18,
            "2025-03-05T13:10:00Z",
            "sts.amazonaws.com",
            "AssumeRole",
            {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
            read_only=True,
            request={
                "roleArn": f"{role}/service-role/ingest-fn-role",
                "roleSessionName": "ingest-fn",
            },
            response=_sts_response(
                "ingest-fn-role",
                "ingest-fn",
                K_LAMBDA,
                "Mar 6, 2025, 1:10:00 AM",
                "IQoJb3JpZ2luX2VjLambdaTok==",
            ),
            sourceIPAddress="lambda.amazonaws.com",
            userAgent="lambda.amazonaws.com",
            eventType="AwsApiCall",
            sharedEventID="7e1f4c2a-9b8d-4e6f-a5b4-c3d2e1f0a9b8",
        ),
        _real(
            19,
            "2025-03-05T14:30:00Z",
            "sts.amazonaws.com",
            "GetSessionToken",
            iam_user(ORCH, ORCH_KEY),
            read_only=True,
            request={"durationSeconds": 7200},
            response={
                "credentials": {
                    "accessKeyId": K_GST,
                    "sessionToken": "IQoJb3JpZ2luX2VjGstTok==",
                    "expiration": "Mar 5, 2025, 4:30:00 PM",
                }
            },
            tlsDetails=TLS,
        ),
        _real(
            20,
            "2025-03-05T14:31:00Z",
            "iam.amazonaws.com",
            "ListUsers",
            gst_user,
            read_only=True,
            request=None,
            response=None,
        ),
        _real(
            21,
            "2025-03-05T14:10:00Z",
            "s3.amazonaws.com",
            "GetObject",
            planner,
            read_only=True,
            request={
                "bucketName": "corp-reports",
                "Host": "corp-reports.s3.us-east-1.amazonaws.com",
                "key": "2025/q2.csv",
            },
            response=None,
            managementEvent=False,
            eventCategory="Data",
            vpcEndpointId="vpce-0a1b2c3d4e5f6a7b8",
        ),
    ]


def test_real_account_shaped_file(ingest: Ingester):
    records = real_account_records()
    path = (
        ingest.tmp_path
        / "AWSLogs"
        / ACCOUNT
        / "CloudTrail"
        / f"{ACCOUNT}_CloudTrail_us-east-1_20250305T1435Z_Xy7q.json.gz"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    report = ingest.files(path)
    [f] = report.files
    assert f.error is None and f.source_format == "cloudtrail"
    assert (f.records, f.loaded, f.rejected, f.duplicates) == (len(records), len(records), 0, 0)
    assert f.balanced
    assert ingest.one("SELECT count(*) FROM agent_actions") == len(records)
    assert ingest.one("SELECT partition_day FROM ingest_files").isoformat() == "2025-03-05"

    issued = {
        K_PLANNER: (
            datetime(2025, 3, 5, 13, 15, 9),
            datetime(2025, 3, 5, 14, 15, 9),
            3600,
            ORCH_KEY,
        ),
        K_EXECUTOR: (
            datetime(2025, 3, 5, 14, 5, 11),
            datetime(2025, 3, 5, 14, 20, 11),
            900,
            K_PLANNER,
        ),
        K_DEPLOY: (datetime(2025, 3, 5, 14, 0, 0), datetime(2025, 3, 5, 15, 0, 0), 3600, None),
        K_LAMBDA: (datetime(2025, 3, 5, 13, 10, 0), datetime(2025, 3, 6, 1, 10, 0), 43200, None),
        K_GST: (datetime(2025, 3, 5, 14, 30, 0), datetime(2025, 3, 5, 16, 30, 0), 7200, ORCH_KEY),
    }
    issues = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")
    assert len(issues) == len(issued)  # the denied AssumeRole issued nothing
    by_cred = {i["credential_id"]: i for i in issues}
    for key, (issued_at, expires_at, ttl, parent) in issued.items():
        issue = by_cred[ingest.cred_id("aws", key)]
        assert (issue["issued_at"], issue["expires_at"], issue["ttl_s"]) == (
            issued_at,
            expires_at,
            ttl,
        ), key
        assert issue["parent_credential_id"] == (
            ingest.cred_id("aws", parent) if parent else None
        ), key
        # Lambda's execution-role session is issued by the service itself.
        kind = "aws_service_session" if key == K_LAMBDA else "sts_session"
        assert issue["credential_kind"] == kind, key
    assert (
        by_cred[ingest.cred_id("aws", K_PLANNER)]["task_id"],
        by_cred[ingest.cred_id("aws", K_EXECUTOR)]["task_id"],
    ) == (
        "task-a1",
        "task-a1",
    )

    # Every call made with an issued session's key carries that session's credential id.
    actions = {a["event_id"]: a for a in ingest.rows("SELECT * FROM agent_actions")}
    uses = {
        u["event_id"]: u
        for u in ingest.rows("SELECT * FROM credential_events WHERE event_type = 'use'")
    }
    checked = 0
    for rec in records:
        key = rec["userIdentity"].get("accessKeyId")
        if key in issued:
            eid = "ct:" + rec["eventID"]
            assert actions[eid]["credential_id"] == ingest.cred_id("aws", key), eid
            assert uses[eid]["credential_id"] == ingest.cred_id("aws", key), eid
            checked += 1
    assert checked == 14
    # Calls without a key (console sign-in, web identity, AWS service) are actions but not uses.
    for n in (1, 2, 15, 18):
        assert actions["ct:" + _eid(n)]["credential_id"] is None
        assert "ct:" + _eid(n) not in uses
    assert actions["ct:" + _eid(18)]["agent_id"] is None

    outcomes = {n: actions["ct:" + _eid(n)]["outcome"] for n in (13, 14, 17)}
    assert outcomes == {13: "denied", 14: "denied", 17: "error"}
    assert actions["ct:" + _eid(7)]["sensitivity"] == "high"  # KMS Decrypt
    assert actions["ct:" + _eid(8)]["sensitivity"] == "high"  # GetSecretValue
    assert actions["ct:" + _eid(6)]["destination"] == "s3://corp-reports/2025/q1.csv"
    task_actions = ingest.one("SELECT actions FROM tasks WHERE task_id = 'task-a1'")
    # the AssumeRole minting for planner@task-a1: 4; planner: 5, 6, 7, 8, 9, 21; executor: 10-14
    assert task_actions == 12
    assert actions["ct:" + _eid(4)]["task_id"] == "task-a1"
    text = ingest.stored_text()
    for secret in (
        ORCH_KEY,
        K_CONSOLE,
        K_PLANNER,
        K_EXECUTOR,
        K_DEPLOY,
        K_LAMBDA,
        K_GST,
        "IQoJb3JpZ2luX2Vj",
    ):
        assert secret not in text


def test_failed_console_login_is_not_ok(ingest: Ingester):
    """A failed sign-in has no errorCode, only errorMessage and ConsoleLogin: Failure."""
    records = real_account_records()[:2]
    ingest.document("signin.json", {"Records": records})
    got = {
        a["event_id"]: a["outcome"]
        for a in ingest.rows("SELECT event_id, outcome FROM agent_actions")
    }
    assert got == {"ct:" + _eid(1): "ok", "ct:" + _eid(2): "denied"}


# ---------------------------------------------------------------- memory


def test_large_records_document_parses_within_a_small_memory_limit(ingest: Ingester):
    """A day's Records document is listed once, then unnested: a 26 MB document parses in 512 MB
    of DuckDB memory (the earlier one-statement listing ran out of memory even at 1.2 GB)."""
    records = [
        s3_call(
            f"e-{i:06d}",
            "2024-11-30T19:50:00Z",
            "GetObject",
            assumed_role("AgentRole", "planner@task-1", AGENT_KEY),
            "reports",
            f"q3/part-{i}.csv",
        )
        for i in range(24_000)
    ]
    path = ingest.tmp_path / "in" / "ct-day.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"Records": records}, indent=1))
    assert path.stat().st_size > 24 * 2**20
    ingest.con.execute("SET memory_limit = '512MB'")
    try:
        report = ingest.files(path)
    finally:
        ingest.con.execute("RESET memory_limit")
    assert counts(report) == [(24_000, 24_000, 0, 0)]
    assert ingest.one("SELECT count(DISTINCT source_record) FROM agent_actions") == 24_000


# ---------------------------------------------------------------- CloudTrail as it really comes
# Service callers, sessions AWS issues itself, shares, defence evasion, persistence, secret ids
# and a misspelt document key (issue 16). Records follow the CloudTrail documentation's shapes.

WEB_ROLE = "WebRole"
INSTANCE = "i-0abc1234def567890"
K_INSTANCE = "ASIAINSTANCEWEB00001"
OTHER_ACCOUNT = "444455556666"


def run_cloud_rule(ingest: Ingester, rule_id: str, **overrides) -> list[dict]:
    from detectors.derive.tables import build_derived_tables
    from detectors.rules.engine import HIT_COLUMNS, RULES_DIR, load_rule, run_rule

    build_derived_tables(ingest.con)
    rule = load_rule(RULES_DIR / f"{rule_id}.yaml", overrides or None)
    columns = (*HIT_COLUMNS, *rule.meta["hit_overrides"])
    return [dict(zip(columns, row, strict=True)) for row in run_rule(ingest.con, rule)]


def aws_service(service: str) -> dict:
    return {"type": "AWSService", "invokedBy": service}


def instance_profile_issue(event_id: str, time: str, expiration: str) -> dict:
    """EC2 delivering instance-profile credentials: AssumeRole by the EC2 service principal."""
    return ct(
        event_id,
        time,
        "sts.amazonaws.com",
        "AssumeRole",
        aws_service("ec2.amazonaws.com"),
        request={"roleArn": f"arn:aws:iam::{ACCOUNT}:role/{WEB_ROLE}", "roleSessionName": INSTANCE},
        response={
            "credentials": {
                "accessKeyId": K_INSTANCE,
                "sessionToken": AGENT_TOKEN,
                "expiration": expiration,
            },
            "assumedRoleUser": {
                "assumedRoleId": f"AROAEXAMPLEWEBROLE01:{INSTANCE}",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{WEB_ROLE}/{INSTANCE}",
            },
        },
        sourceIPAddress="ec2.amazonaws.com",
        userAgent="ec2.amazonaws.com",
    )


def instance_call(event_id: str, time: str, source_ip: str, **extra) -> dict:
    return ct(
        event_id,
        time,
        "s3.amazonaws.com",
        "ListBuckets",
        assumed_role(WEB_ROLE, INSTANCE, K_INSTANCE),
        request={"Host": "s3.amazonaws.com"},
        sourceIPAddress=source_ip,
        **extra,
    )


def test_service_callers_are_no_source_address(ingest: Ingester):
    who = assumed_role("AgentRole", "planner@task-1", AGENT_KEY)
    secret = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db-AbCdEf"
    baseline = [
        s3_call(f"b{i}", f"2024-11-30T19:0{i}:00Z", "GetObject", who, "reports", f"k{i}")
        | {"sourceIPAddress": f"10.1.0.{i + 1}"}
        for i in range(6)
    ]
    cfn = who | {"invokedBy": "cloudformation.amazonaws.com"}
    service_calls = [
        ct(
            "svc1",
            "2024-11-30T19:10:00Z",
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            cfn,
            request={"secretId": secret},
            sourceIPAddress="cloudformation.amazonaws.com",
            userAgent="cloudformation.amazonaws.com",
        ),
        ct(
            "svc2",
            "2024-11-30T19:11:00Z",
            "kms.amazonaws.com",
            "Decrypt",
            who | {"invokedBy": "secretsmanager.amazonaws.com"},
            request={"keyId": "alias/aws/secretsmanager"},
            sourceIPAddress="secretsmanager.amazonaws.com",
            userAgent="secretsmanager.amazonaws.com",
        ),
        ct(
            "svc3",
            "2024-11-30T19:12:00Z",
            "s3.amazonaws.com",
            "GetBucketAcl",
            who | {"invokedBy": "AWS Internal"},
            request={"bucketName": "reports"},
            sourceIPAddress="AWS Internal",
            userAgent="AWS Internal",
        ),
    ]
    report = ingest.document("svc.json", {"Records": baseline + service_calls})
    assert counts(report) == [(9, 9, 0, 0)]
    ips = ingest.rows(
        """SELECT a.event_id, a.source_ip AS action_ip, c.source_ip AS use_ip
           FROM agent_actions a JOIN credential_events c USING (event_id) ORDER BY a.event_id"""
    )
    assert {
        r["event_id"]: (r["action_ip"], r["use_ip"])
        for r in ips
        if r["event_id"].startswith("ct:svc")
    } == {
        "ct:svc1": (None, None),
        "ct:svc2": (None, None),
        "ct:svc3": (None, None),
    }
    assert action(ingest, "b0")["source_ip"] == "10.1.0.1"
    assert run_cloud_rule(ingest, "credential_new_source_ip") == []

    # The same session from an internet address (IPv4 and IPv6) is still news.
    ingest.document(
        "svc2.json",
        {
            "Records": [
                s3_call("x1", "2024-11-30T19:20:00Z", "GetObject", who, "reports", "q3/summary.csv")
                | {"sourceIPAddress": "198.51.100.23"},
                s3_call("x2", "2024-11-30T19:21:00Z", "GetObject", who, "reports", "q3/summary.csv")
                | {"sourceIPAddress": "2001:db8::23"},
            ]
        },
    )
    hits = run_cloud_rule(ingest, "credential_new_source_ip")
    assert [h["evidence_event_ids"] for h in hits] == [["ct:x1", "ct:x2"]]


def platform_session_records() -> list[dict]:
    lambda_role = f"arn:aws:iam::{ACCOUNT}:role/service-role/ingest-fn-role"
    return [
        # EC2 instance profile, six hours (no durationSeconds: the lifetime is the expiry).
        instance_profile_issue("p1", "2024-11-30T18:00:00Z", "Dec 1, 2024, 12:00:00 AM"),
        # Lambda's execution role, twelve hours.
        ct(
            "p2",
            "2024-11-30T18:00:00Z",
            "sts.amazonaws.com",
            "AssumeRole",
            aws_service("lambda.amazonaws.com"),
            request={
                "roleArn": lambda_role,
                "roleSessionName": "ingest-fn",
                "durationSeconds": 43200,
            },
            response={
                "credentials": {
                    "accessKeyId": "ASIALAMBDASVC0000002",
                    "sessionToken": AGENT_TOKEN,
                    "expiration": "Dec 1, 2024, 6:00:00 AM",
                }
            },
            sourceIPAddress="lambda.amazonaws.com",
        ),
        # A person naming a session like an instance is still a customer session (two hours).
        assume_role(
            "p3",
            "2024-11-30T18:00:00Z",
            iam_user("orchestrator", ORCH_KEY),
            session="i-0fedcba9876543210",
            new_key="ASIACUSTOMERSESSN003",
            expiration="Nov 30, 2024, 8:00:00 PM",
            duration=7200,
        ),
        # Calls made with an instance session and with a service-linked role's session.
        instance_call("p4", "2024-11-30T18:05:00Z", "10.0.12.7"),
        ct(
            "p5",
            "2024-11-30T18:06:00Z",
            "ec2.amazonaws.com",
            "DescribeInstances",
            assumed_role("AWSServiceRoleForAutoScaling", "AutoScaling", "ASIAAUTOSCALING00005")
            | {"invokedBy": "autoscaling.amazonaws.com"},
            request={},
            sourceIPAddress="autoscaling.amazonaws.com",
        ),
    ]


def test_sessions_aws_issues_itself_have_their_own_kinds(ingest: Ingester):
    report = ingest.document("platform.json", {"Records": platform_session_records()})
    assert counts(report) == [(5, 5, 0, 0)]
    kinds = {
        (r["event_type"], r["credential_id"]): r["credential_kind"]
        for r in ingest.rows("SELECT * FROM credential_events")
    }
    assert kinds == {
        ("issue", ingest.cred_id("aws", K_INSTANCE)): "aws_instance_session",
        ("use", ingest.cred_id("aws", K_INSTANCE)): "aws_instance_session",
        ("issue", ingest.cred_id("aws", "ASIALAMBDASVC0000002")): "aws_service_session",
        ("issue", ingest.cred_id("aws", "ASIACUSTOMERSESSN003")): "sts_session",
        ("use", ingest.cred_id("aws", "ASIAAUTOSCALING00005")): "aws_service_session",
        ("use", ingest.cred_id("aws", ORCH_KEY)): "iam_access_key",
    }
    # By default only the customer's session is checked against the TTL policy.
    hits = run_cloud_rule(ingest, "credential_ttl_above_policy")
    assert [h["evidence_event_ids"] for h in hits] == [["ct:p3"]]


@pytest.mark.parametrize(
    ("instance_max", "service_max", "flagged"),
    [
        (None, None, ["ct:p3"]),
        (21600, 43200, ["ct:p3"]),  # exactly the maximum
        (21599, 43200, ["ct:p1", "ct:p3"]),  # one second below the lifetime
        (21600, 43199, ["ct:p2", "ct:p3"]),
    ],
)
def test_platform_session_ttl_is_checked_when_configured(
    ingest: Ingester, instance_max, service_max, flagged
):
    ingest.document("platform.json", {"Records": platform_session_records()})
    hits = run_cloud_rule(
        ingest,
        "credential_ttl_above_policy",
        max_ttl_aws_instance_session_s=instance_max,
        max_ttl_aws_service_session_s=service_max,
    )
    assert sorted(e for h in hits for e in h["evidence_event_ids"]) == flagged


def instance_use_records() -> list[dict]:
    return [
        instance_profile_issue("i0", "2024-11-30T18:00:00Z", "Dec 1, 2024, 12:00:00 AM"),
        instance_call("i1", "2024-11-30T18:05:00Z", "10.0.12.7"),  # through a VPC endpoint
        instance_call("i2", "2024-11-30T18:06:00Z", "AWS Internal", userAgent="AWS Internal"),
        instance_call("i3", "2024-11-30T18:07:00Z", "3.5.140.2"),  # the VPC's NAT gateway
        instance_call(
            "i4",
            "2024-11-30T21:30:00Z",
            "198.51.100.77",  # the attacker
            userAgent="aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0 exe/x86_64.kali.2023",
        ),
    ]


@pytest.mark.parametrize(
    ("overrides", "evidence"),
    [
        ({}, ["ct:i3", "ct:i4"]),
        ({"platform_cidrs": ["3.5.140.0/22"]}, ["ct:i4"]),
        ({"platform_cidrs": ["3.5.140.2"]}, ["ct:i4"]),  # a single address
        ({"platform_cidrs": ["3.5.144.0/22"]}, ["ct:i3", "ct:i4"]),  # the next /22: outside
        ({"platform_cidrs": ["3.5.140.0/22", "198.51.100.0/24"]}, []),
        ({"platform_cidrs": ["3.5.140.0/22"], "private_is_platform": False}, ["ct:i1", "ct:i4"]),
    ],
)
def test_instance_credentials_used_outside_the_platform(ingest: Ingester, overrides, evidence):
    report = ingest.document("instance.json", {"Records": instance_use_records()})
    assert counts(report) == [(5, 5, 0, 0)]
    hits = run_cloud_rule(ingest, "instance_credential_used_outside_platform", **overrides)
    assert [h["evidence_event_ids"] for h in hits] == ([evidence] if evidence else [])
    if evidence:
        assert hits[0]["credential_id"] == ingest.cred_id("aws", K_INSTANCE)


def share_records() -> list[dict]:
    ops = iam_user("ops-bot", "AKIAOPSBOTKEY0000001")
    snap = "snap-0123456789abcdef0"

    def ec2(event_id: str, name: str, request: dict) -> dict:
        return ct(
            event_id,
            "2024-11-30T20:00:00Z",
            "ec2.amazonaws.com",
            name,
            ops,
            request=request,
            response={"_return": True},
        )

    def volume_permission(op: str, items: list[dict]) -> dict:
        return {
            "snapshotId": snap,
            "attributeType": "CREATE_VOLUME_PERMISSION",
            "createVolumePermission": {op: {"items": items}},
        }

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TLS",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "Org",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
            },
            {
                "Sid": "Partner",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::{OTHER_ACCOUNT}:root"]},
                "Action": "s3:GetObject",
            },
        ],
    }
    return [
        ec2(
            "sh1", "ModifySnapshotAttribute", volume_permission("add", [{"userId": OTHER_ACCOUNT}])
        ),
        ec2("sh2", "ModifySnapshotAttribute", volume_permission("add", [{"userId": ACCOUNT}])),
        ec2(
            "sh3",
            "ModifySnapshotAttribute",
            volume_permission("remove", [{"userId": OTHER_ACCOUNT}]),
        ),
        ec2(
            "sh4",
            "ModifyImageAttribute",
            {
                "imageId": "ami-0abcdef1234567890",
                "attributeType": "launchPermission",
                "launchPermission": {"add": {"items": [{"group": "all"}]}},
            },
        ),
        ct(
            "sh5",
            "2024-11-30T20:01:00Z",
            "rds.amazonaws.com",
            "ModifyDBSnapshotAttribute",
            ops,
            request={
                "dBSnapshotIdentifier": "prod-db-final",
                "attributeName": "restore",
                "valuesToAdd": [OTHER_ACCOUNT, "777788889999"],
            },
        ),
        ct(
            "sh6",
            "2024-11-30T20:02:00Z",
            "rds.amazonaws.com",
            "ModifyDBClusterSnapshotAttribute",
            ops,
            request={
                "dBClusterSnapshotIdentifier": "aurora-snap",
                "attributeName": "restore",
                "valuesToAdd": ["all"],
            },
        ),
        s3_call("sh7", "2024-11-30T20:03:00Z", "PutBucketPolicy", ops, "exports", None)
        | {"requestParameters": {"bucketName": "exports", "bucketPolicy": policy, "policy": [""]}},
        s3_call("sh8", "2024-11-30T20:04:00Z", "PutBucketPolicy", ops, "logs", None)
        | {
            "requestParameters": {
                "bucketName": "logs",
                "bucketPolicy": {"Statement": policy["Statement"][:2]},
            }
        },
        s3_call("sh9", "2024-11-30T20:05:00Z", "PutBucketAcl", ops, "web", None)
        | {
            "requestParameters": {
                "bucketName": "web",
                "AccessControlPolicy": {
                    "AccessControlList": {
                        "Grant": [
                            {
                                "Grantee": {
                                    "xsi:type": "Group",
                                    "URI": "http://acs.amazonaws.com/groups/global/AllUsers",
                                },
                                "Permission": "READ",
                            }
                        ]
                    }
                },
            }
        },
    ]


def test_sharing_outside_the_account_is_egress(ingest: Ingester):
    report = ingest.document("shares.json", {"Records": share_records()})
    assert counts(report) == [(9, 9, 0, 0)]
    got = {
        r["event_id"]: (r["action_class"], r["external"], r["destination"], r["sensitivity"])
        for r in ingest.rows("SELECT * FROM agent_actions")
    }
    assert got == {
        "ct:sh1": ("egress", True, OTHER_ACCOUNT, "high"),
        "ct:sh2": ("egress", False, None, "high"),  # the account itself
        "ct:sh3": ("admin", False, None, "medium"),  # a removal shares nothing
        "ct:sh4": ("egress", True, "all", "high"),
        "ct:sh5": ("egress", True, f"{OTHER_ACCOUNT},777788889999", "high"),
        "ct:sh6": ("egress", True, "all", "high"),
        "ct:sh7": ("egress", True, OTHER_ACCOUNT, "high"),
        "ct:sh8": ("admin", False, "s3://logs", "medium"),  # Deny and organisation-only
        "ct:sh9": ("egress", True, "all", "high"),
    }
    hits = run_cloud_rule(ingest, "cloud_resource_shared_outside_org")
    assert [(h["entity_id"], h["evidence_event_ids"]) for h in hits] == [
        ("ops-bot", ["ct:sh1", "ct:sh4", "ct:sh5", "ct:sh6", "ct:sh7", "ct:sh9"])
    ]
    # The organisation's own accounts are not outside.
    hits = run_cloud_rule(
        ingest, "cloud_resource_shared_outside_org", org_account_ids=[OTHER_ACCOUNT, "777788889999"]
    )
    assert [h["evidence_event_ids"] for h in hits] == [["ct:sh4", "ct:sh6", "ct:sh9"]]


def test_defence_evasion_and_persistence_calls_are_classified(ingest: Ingester):
    ops = iam_user("ops-bot", "AKIAOPSBOTKEY0000001")
    trail = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/management"

    def call(event_id: str, source: str, name: str, request: dict | None, minute: int) -> dict:
        return ct(event_id, f"2024-11-30T21:{minute:02d}:00Z", source, name, ops, request=request)

    records = [
        call("d1", "cloudtrail.amazonaws.com", "StopLogging", {"name": trail}, 0),
        call("d2", "cloudtrail.amazonaws.com", "DeleteTrail", {"name": trail}, 1),
        call(
            "d3",
            "cloudtrail.amazonaws.com",
            "UpdateTrail",
            {"name": trail, "isMultiRegionTrail": True},
            2,
        ),
        call(
            "d4",
            "cloudtrail.amazonaws.com",
            "PutEventSelectors",
            {
                "trailName": trail,
                "eventSelectors": [{"readWriteType": "All", "includeManagementEvents": False}],
            },
            3,
        ),
        call("d5", "organizations.amazonaws.com", "LeaveOrganization", None, 4),
        call(
            "d6",
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            {
                "groupId": "sg-0123456789abcdef0",
                "ipPermissions": {
                    "items": [
                        {
                            "ipProtocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                        }
                    ]
                },
            },
            5,
        ),
        call(
            "d7",
            "iam.amazonaws.com",
            "CreateLoginProfile",
            {"userName": "alice", "passwordResetRequired": False},
            6,
        ),
        call("d8", "iam.amazonaws.com", "UpdateLoginProfile", {"userName": "ops-bot"}, 7),
        ct(
            "d9",
            "2024-11-30T21:08:00Z",
            "iam.amazonaws.com",
            "CreateAccessKey",
            ops,
            request={"userName": "alice"},
            response={
                "accessKey": {
                    "accessKeyId": "AKIAALICENEWKEY00009",
                    "status": "Active",
                    "userName": "alice",
                    "createDate": "Nov 30, 2024, 9:08:00 PM",
                }
            },
        ),
        ct(
            "d10",
            "2024-11-30T21:09:00Z",
            "iam.amazonaws.com",
            "CreateAccessKey",
            ops,
            request=None,
            response={
                "accessKey": {
                    "accessKeyId": "AKIAOPSBOTNEWKEY0010",
                    "status": "Active",
                    "userName": "ops-bot",
                    "createDate": "Nov 30, 2024, 9:09:00 PM",
                }
            },
        ),
    ]
    report = ingest.document("evasion.json", {"Records": records})
    assert counts(report) == [(10, 10, 0, 0)]
    got = {
        r["event_id"]: (r["action_class"], r["classified_by"], r["sensitivity"])
        for r in ingest.rows("SELECT * FROM agent_actions")
    }
    assert got == {
        "ct:d1": ("admin", "source", "high"),
        "ct:d2": ("admin", "source", "high"),
        "ct:d3": ("admin", "source", "high"),
        "ct:d4": ("admin", "source", "high"),
        "ct:d5": ("admin", "source", "high"),
        "ct:d6": ("admin", "source", "medium"),
        "ct:d7": ("credential", "source", "high"),  # its arguments name a password
        "ct:d8": ("credential", "source", "medium"),
        "ct:d9": ("credential", "source", "medium"),
        "ct:d10": ("credential", "source", "medium"),
    }
    stopped = run_cloud_rule(ingest, "cloud_audit_logging_stopped")
    assert [(h["entity_id"], h["evidence_event_ids"]) for h in stopped] == [
        ("ops-bot", ["ct:d1", "ct:d2", "ct:d4"])  # widening a trail (d3) is not stopping it
    ]
    created = run_cloud_rule(ingest, "cloud_credential_created_for_other_user")
    assert [(h["entity_id"], h["evidence_event_ids"]) for h in created] == [
        ("ops-bot", ["ct:d7", "ct:d9"])  # its own password (d8) and key (d10) are not persistence
    ]


def test_secret_ids_are_kept_and_secret_values_redacted(ingest: Ingester):
    who = assumed_role("AgentRole", "planner@task-1", AGENT_KEY)
    arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db-AbCdEf"
    records = [
        ct(
            "sv1",
            "2024-11-30T19:50:00Z",
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            who,
            request={"secretId": arn},
        ),
        ct(
            "sv2",
            "2024-11-30T19:51:00Z",
            "secretsmanager.amazonaws.com",
            "PutSecretValue",
            who,
            request={
                "SecretId": "prod/db",
                "SecretString": "hunter2-correct-horse",
                "clientRequestToken": "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE",
            },
        ),
    ]
    report = ingest.document("secrets.json", {"Records": records})
    assert counts(report) == [(2, 2, 0, 0)]
    read = action(ingest, "sv1")
    assert json.loads(read["args"]) == {"secretId": arn}
    assert read["destination"] == arn
    put = json.loads(action(ingest, "sv2")["args"])
    assert put == {
        "SecretId": "prod/db",
        "SecretString": "[REDACTED]",
        "clientRequestToken": "[REDACTED]",
    }
    assert "hunter2" not in ingest.stored_text()


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (
            {"Record": session_records()},
            'neither a CloudTrail record nor a {"Records": [...]} document (top-level keys: Record)',
        ),
        (
            {"records": [{"eventVersion": "1.08"}]},
            'neither a CloudTrail record nor a {"Records": [...]} document (top-level keys: records)',
        ),
        ({"Records": {"eventID": "x"}}, "Records is not an array (got object)"),
        ({"Records": None}, "Records is not an array (got null)"),
    ],
)
def test_a_document_without_a_records_array_is_rejected_with_a_reason(
    ingest: Ingester, document, reason
):
    report = ingest.document("misspelt.json", document, fmt="cloudtrail")
    assert counts(report) == [(1, 0, 1, 0)]
    assert ingest.rows("SELECT reason FROM rejected_events") == [{"reason": reason}]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 0


def test_session_first_sighting_states_its_creation_time(ingest: Ingester):
    # The instance profile's AssumeRole is not in the trail (AWS issues it): the calls made with
    # the session carry its creationDate, which becomes the lifecycle's issue time.
    from detectors.derive.tables import build_derived_tables

    who = assumed_role(WEB_ROLE, INSTANCE, K_INSTANCE)
    who["sessionContext"]["attributes"]["creationDate"] = "2024-11-30T18:00:00Z"
    calls = [
        ct("u2", "2024-11-30T19:50:00Z", "s3.amazonaws.com", "ListBuckets", who),
        # The session asks for another session for a task: that task is not the session's own.
        ct(
            "u1",
            "2024-11-30T19:45:00Z",
            "sts.amazonaws.com",
            "AssumeRole",
            who,
            request={
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/AgentRole",
                "roleSessionName": "planner@task-9",
            },
        ),
    ]
    ingest.document("calls.json", {"Records": calls})
    build_derived_tables(ingest.con)
    [life] = ingest.rows(
        """SELECT credential_kind, issued_at, issue_seen, task_id FROM credential_lifecycles
           WHERE credential_id = ?""",
        [ingest.cred_id("aws", K_INSTANCE)],
    )
    assert life == {
        "credential_kind": "aws_instance_session",
        "issued_at": datetime(2024, 11, 30, 18, 0, 0),
        "issue_seen": False,
        "task_id": None,
    }
    assert (
        ingest.one(
            "SELECT task_id FROM credential_events WHERE event_id = 'ct:u1' AND event_type = 'use'"
        )
        == "task-9"
    )


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("ec2.amazonaws.com", "DeleteFlowLogs", ("admin", "high")),
        ("guardduty.amazonaws.com", "DeleteDetector", ("admin", "high")),
        ("ssm.amazonaws.com", "SendCommand", ("admin", "high")),
        ("s3.amazonaws.com", "PutBucketLifecycle", ("admin", "medium")),
        ("lambda.amazonaws.com", "AddPermission20150331v2", ("admin", "medium")),
        ("ec2.amazonaws.com", "CreateKeyPair", ("credential", "medium")),
        ("ec2.amazonaws.com", "DescribeFlowLogs", ("read", "low")),
    ],
)
def test_log_removal_execution_and_key_pairs_are_classified(
    ingest: Ingester, source, name, expected
):
    ops = iam_user("ops-bot", "AKIAOPSBOTKEY0000001")
    ingest.document(
        "calls.json", {"Records": [ct("x1", "2024-11-30T21:00:00Z", source, name, ops)]}
    )
    row = ingest.rows("SELECT action_class, sensitivity FROM agent_actions")[0]
    assert (row["action_class"], row["sensitivity"]) == expected
