from tests.conftest import Ingester


def test_sts_issue_and_use_link(ingest: Ingester):
    records = {"Records": [
        {"eventTime": "2024-11-30T20:43:17Z", "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
         "eventID": "e1", "userIdentity": {"type": "IAMUser", "userName": "orchestrator", "accessKeyId": "AKIAORCH000000000001"},
         "requestParameters": {"roleArn": "arn:aws:iam::1:role/AgentRole", "roleSessionName": "agent-7@task-1"},
         "responseElements": {"credentials": {"accessKeyId": "ASIAAGENT00000000001", "sessionToken": "secret",
                                              "expiration": "Nov 30, 2024, 9:43:17 PM"}}},
        {"eventTime": "2024-11-30T20:50:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
         "eventID": "e2", "userIdentity": {"type": "AssumedRole", "accessKeyId": "ASIAAGENT00000000001",
                                           "arn": "arn:aws:sts::1:assumed-role/AgentRole/agent-7@task-1"},
         "requestParameters": {"bucketName": "b", "key": "k"}},
    ]}
    report = ingest.document("ct.json", records)
    assert [(f.records, f.loaded, f.rejected, f.duplicates) for f in report.files] == [(2, 2, 0, 0)]
    issue = ingest.rows("SELECT * FROM credential_events WHERE event_type = 'issue'")[0]
    assert issue["credential_id"] == ingest.cred_id("aws", "ASIAAGENT00000000001")
    assert str(issue["expires_at"]) == "2024-11-30 21:43:17"
    assert issue["task_id"] == "task-1" and issue["agent_id"] == "agent-7"
    use = ingest.rows("SELECT * FROM agent_actions WHERE event_id = 'ct:e2'")[0]
    assert use["credential_id"] == issue["credential_id"] and use["task_id"] == "task-1"
