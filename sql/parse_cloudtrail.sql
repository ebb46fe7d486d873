-- AWS CloudTrail: {"Records":[...]} files, JSON arrays and JSON lines of records.
-- STS issuance and IAM access keys become credential events; every record is an agent action;
-- a record whose userIdentity.accessKeyId is known is also a use of that credential.

-- A file's records: the elements of a Records document or a JSON array, else the value itself
-- (a JSON line). A day's Records document can be large: listing it is one expression over the
-- unfiltered units (a filter on the document made DuckDB hold several copies of it and run out of
-- memory at 2 GB for a 75 MB file), and the list is stored before it is unnested.
CREATE OR REPLACE TEMP TABLE ct_listed AS
SELECT source_file, unit_line, unit_offset,
       json_transform(CASE WHEN json_type(j) = 'ARRAY' THEN j WHEN json_type(j) = 'OBJECT' THEN j -> 'Records' END,
                      '["JSON"]') AS recs
FROM unit_json WHERE source_format = 'cloudtrail';

CREATE OR REPLACE TEMP TABLE ct_records AS
SELECT u.source_file, u.unit_line AS source_line, u.unit_offset AS source_offset, 0 AS source_record, u.j AS rec
FROM unit_json u JOIN ct_listed l USING (source_file, unit_line, unit_offset)
WHERE l.recs IS NULL;

DROP TABLE unit_json;

INSERT INTO ct_records
SELECT source_file, unit_line, unit_offset, unnest(range(len(recs)))::INTEGER, unnest(recs)
FROM ct_listed WHERE recs IS NOT NULL;

DROP TABLE ct_listed;

CREATE OR REPLACE TEMP TABLE ct_typed AS
SELECT source_file, source_line, source_offset, source_record, rec,
    CASE WHEN json_type(rec) = 'OBJECT' THEN json_transform(rec, '{
        "eventTime":"JSON","eventSource":"JSON","eventName":"JSON","eventID":"JSON",
        "userIdentity":{"type":"VARCHAR","arn":"VARCHAR","accessKeyId":"VARCHAR","userName":"VARCHAR",
            "principalId":"VARCHAR","sessionContext":{"sessionIssuer":{"arn":"VARCHAR","userName":"VARCHAR"}}},
        "sourceIPAddress":"VARCHAR","userAgent":"VARCHAR","requestParameters":"JSON",
        "responseElements":"JSON","errorCode":"VARCHAR","errorMessage":"VARCHAR",
        "recipientAccountId":"VARCHAR","awsRegion":"VARCHAR","additionalEventData":"JSON"}') END AS r
FROM ct_records;

CREATE OR REPLACE TEMP TABLE ct_valid AS
SELECT *,
    cw_ts(r.eventTime ->> '$') AS ts,
    r.requestParameters AS rp,
    r.responseElements AS re,
    nullif(regexp_extract(r.userIdentity.arn, 'assumed-role/[^/]+/(.+)$', 1), '') AS session_name,
    CASE WHEN json_type(rec) <> 'OBJECT' THEN 'record is not a JSON object (got ' || cw_json_kind(rec) || ')'
         ELSE coalesce(
            cw_ts_problem('eventTime', r.eventTime, cw_ts(r.eventTime ->> '$')),
            cw_string_problem('eventSource', r.eventSource, true),
            cw_string_problem('eventName', r.eventName, true),
            cw_string_problem('eventID', r.eventID, false))
    END AS reason
FROM ct_typed;

-- Issuance details; a credential whose expiry or creation date cannot be parsed is rejected.
CREATE OR REPLACE TEMP TABLE ct_issue AS
SELECT v.*,
    (r.eventSource ->> '$') AS src, (r.eventName ->> '$') AS name,
    CASE WHEN (r.eventName ->> '$') = 'CreateAccessKey' THEN (re -> 'accessKey' ->> 'accessKeyId')
         ELSE (re -> 'credentials' ->> 'accessKeyId') END AS new_key,
    CASE WHEN (r.eventName ->> '$') = 'CreateAccessKey' THEN (re -> 'accessKey' ->> 'createDate')
         ELSE (re -> 'credentials' ->> 'expiration') END AS date_text
FROM ct_valid v
WHERE reason IS NULL AND r.errorCode IS NULL AND json_type(re) = 'OBJECT'
  AND ((r.eventSource ->> '$') = 'sts.amazonaws.com'
       AND (r.eventName ->> '$') IN ('AssumeRole', 'AssumeRoleWithWebIdentity', 'AssumeRoleWithSAML',
                                     'GetSessionToken', 'GetFederationToken')
       OR (r.eventSource ->> '$') = 'iam.amazonaws.com' AND (r.eventName ->> '$') = 'CreateAccessKey');

UPDATE ct_valid SET reason = 'unparseable timestamp in '
        || CASE WHEN i.name = 'CreateAccessKey' THEN 'responseElements.accessKey.createDate'
                ELSE 'responseElements.credentials.expiration' END
        || ': ' || coalesce(left(i.date_text, 60), 'missing')
FROM ct_issue i
WHERE ct_valid.source_file = i.source_file AND ct_valid.source_line = i.source_line
  AND ct_valid.source_record = i.source_record
  AND (i.new_key IS NULL OR cw_ts(i.date_text) IS NULL);

INSERT INTO p_records
SELECT 'cloudtrail', source_file, source_line, source_offset, source_record,
    CASE WHEN reason IS NULL THEN 'ct:' || coalesce(r.eventID ->> '$', md5(rec::VARCHAR))
         ELSE 'reject:' || cw_keyed('reject:cloudtrail', rec::VARCHAR) END,
    0, reason,
    CASE WHEN reason IS NOT NULL THEN left(cw_redact(left(rec::VARCHAR, 65536)), $reject_text_chars) END,
    strlen(rec::VARCHAR)
FROM ct_valid;

CREATE OR REPLACE TEMP TABLE ct_ok AS
SELECT *,
    'ct:' || coalesce(r.eventID ->> '$', md5(rec::VARCHAR)) AS event_id,
    (r.eventSource ->> '$') AS event_source,
    (r.eventName ->> '$') AS event_name,
    regexp_extract(session_name, $sts_session_pattern, $sts_agent_group) AS session_agent,
    coalesce(nullif(regexp_extract(session_name, $sts_session_pattern, $sts_task_group), ''),
             -- An STS issuance made for a task belongs to that task even if its caller does not.
             CASE WHEN (r.eventSource ->> '$') = 'sts.amazonaws.com' THEN coalesce(
                 list_filter(coalesce(json_transform(rp -> 'tags', '[{"key":"VARCHAR","value":"VARCHAR"}]'), []),
                             t -> list_contains($sts_task_tag_keys, t.key))[1].value,
                 regexp_extract(coalesce((r.requestParameters ->> 'roleSessionName'), ''), $sts_session_pattern, $sts_task_group)) END
    ) AS session_task,
    -- Failed console sign-ins carry no errorCode, only an errorMessage and ConsoleLogin=Failure.
    CASE WHEN r.errorCode IS NULL AND r.errorMessage IS NULL AND coalesce((re ->> 'ConsoleLogin'), '') <> 'Failure' THEN 'ok'
         WHEN regexp_matches(coalesce(r.errorCode, '') || ' ' || coalesce(r.errorMessage, ''),
                             '(?i)denied|unauthorized|forbidden|notauthorized|failed authentication')
              OR (re ->> 'ConsoleLogin') = 'Failure' THEN 'denied'
         ELSE 'error' END AS outcome,
    cw_hash('aws', r.userIdentity.accessKeyId) AS caller_credential_id
FROM ct_valid WHERE reason IS NULL;

INSERT INTO p_actions
SELECT event_id, ts,
    coalesce(nullif(session_agent, ''), r.userIdentity.userName,
             r.userIdentity.sessionContext.sessionIssuer.userName, r.userIdentity.arn,
             r.userIdentity.principalId),
    nullif(session_task, ''),
    CASE WHEN nullif(session_task, '') IS NOT NULL THEN 'sts_session_name' END,
    NULL, NULL, NULL,
    event_name, event_source,
    CASE
        WHEN event_source = 'sts.amazonaws.com' OR event_name IN
            ('CreateAccessKey', 'UpdateAccessKey', 'DeleteAccessKey', 'CreateLoginProfile',
             'UpdateLoginProfile', 'CreateServiceSpecificCredential') THEN 'credential'
        WHEN event_source = 'iam.amazonaws.com' AND regexp_matches(event_name,
            '^(Put|Attach|Detach|Delete)(User|Role|Group)Policy$|^(Create|Delete)(Role|User|PolicyVersion|Policy)$|^(Add|Remove)User(To|From)Group$|^UpdateAssumeRolePolicy$')
            THEN 'admin'
        WHEN regexp_matches(event_name, '^(SendEmail|SendRawEmail|SendMessage|SendMessageBatch|Publish|PutRecords?)$')
            THEN 'egress'
    END,
    CASE
        WHEN (rp ->> 'bucketName') IS NOT NULL THEN 's3://' || (rp ->> 'bucketName') || coalesce('/' || (rp ->> 'key'), '')
        ELSE coalesce(rp ->> 'roleArn', (rp ->> 'secretId'), (rp ->> 'queueUrl'), (rp ->> 'topicArn'),
                      (rp ->> 'functionName'), (rp ->> 'tableName'), (rp ->> 'userName'), (rp ->> 'name'))
    END,
    CASE WHEN event_name IN ('GetSecretValue', 'GetParameter', 'GetParameters', 'Decrypt',
                             'GetPasswordData') THEN 'high' END,
    -- An AWS API call reaches the account's own resources; only mail leaves through SES.
    CASE WHEN event_name NOT IN ('SendEmail', 'SendRawEmail') THEN false END,
    NULL, NULL, NULL,
    outcome,
    coalesce(r.errorCode, CASE WHEN outcome <> 'ok' THEN left(cw_redact(r.errorMessage), 200) END), NULL,
    caller_credential_id,
    r.sourceIPAddress,
    cw_redact(rp::VARCHAR),
    -- S3 data events: bytes the caller uploaded (a number or a numeric string; else unknown).
    cw_byte_count(r.additionalEventData ->> 'bytesTransferredIn'),
    'cloudtrail', source_file, source_offset, source_line, source_record
FROM ct_ok;

-- Uses: every call made with a known access key.
INSERT INTO p_creds
SELECT event_id, ts, 'use', caller_credential_id,
    CASE WHEN starts_with(r.userIdentity.accessKeyId, 'ASIA') THEN 'sts_session' ELSE 'iam_access_key' END,
    coalesce(r.userIdentity.arn, r.userIdentity.userName),
    coalesce(nullif(session_agent, ''), r.userIdentity.userName,
             r.userIdentity.sessionContext.sessionIssuer.userName),
    nullif(session_task, ''),
    CASE WHEN nullif(session_task, '') IS NOT NULL THEN 'sts_session_name' END,
    NULL, NULL, NULL, NULL, NULL,
    r.sourceIPAddress,
    outcome,
    NULL, NULL,
    'cloudtrail', source_file, source_offset, source_line, source_record
FROM ct_ok WHERE caller_credential_id IS NOT NULL;

-- Issuance: STS sessions and IAM access keys.
INSERT INTO p_creds
WITH issued AS (
    SELECT o.*, i.new_key, i.date_text,
        coalesce(o.rp ->> 'roleSessionName', (o.rp ->> 'name')) AS new_session,
        list_filter(coalesce(json_transform(o.rp -> 'tags', '[{"key":"VARCHAR","value":"VARCHAR"}]'), []),
                    t -> list_contains($sts_task_tag_keys, t.key))[1].value AS tag_task
    FROM ct_ok o JOIN ct_issue i USING (source_file, source_line, source_record)
)
SELECT event_id, ts, 'issue', cw_hash('aws', new_key),
    CASE WHEN event_name = 'CreateAccessKey' THEN 'iam_access_key' ELSE 'sts_session' END,
    CASE WHEN event_name = 'CreateAccessKey' THEN (re -> 'accessKey' ->> 'userName')
         ELSE coalesce(re -> 'assumedRoleUser' ->> 'arn', (re -> 'federatedUser' ->> 'arn'),
                       (rp ->> 'roleArn'), r.userIdentity.arn) END,
    coalesce(nullif(regexp_extract(new_session, $sts_session_pattern, $sts_agent_group), ''),
             CASE WHEN event_name = 'CreateAccessKey' THEN (re -> 'accessKey' ->> 'userName') END,
             CASE WHEN event_name = 'GetSessionToken' THEN r.userIdentity.userName END),
    coalesce(tag_task, nullif(regexp_extract(new_session, $sts_session_pattern, $sts_task_group), '')),
    CASE WHEN tag_task IS NOT NULL THEN 'sts_session_tag'
         WHEN nullif(regexp_extract(new_session, $sts_session_pattern, $sts_task_group), '') IS NOT NULL
             THEN 'sts_session_name' END,
    caller_credential_id,
    list_filter([(rp ->> 'roleArn')]
        || coalesce(list_transform(json_transform(rp -> 'policyArns', '[{"arn":"VARCHAR"}]'), p -> p.arn), [])
        || CASE WHEN (rp -> 'policy') IS NOT NULL THEN ['inline-session-policy'] ELSE [] END,
        x -> x IS NOT NULL),
    CASE WHEN event_name = 'CreateAccessKey' THEN NULL
         ELSE coalesce(try_cast(rp ->> 'durationSeconds' AS BIGINT),
                       date_diff('second', ts, cw_ts(date_text))) END,
    CASE WHEN event_name = 'CreateAccessKey' THEN cw_ts(date_text) ELSE ts END,
    CASE WHEN event_name = 'CreateAccessKey' THEN NULL ELSE cw_ts(date_text) END,
    r.sourceIPAddress, 'ok', NULL, NULL,
    'cloudtrail', source_file, source_offset, source_line, source_record
FROM issued;

-- IAM key lifecycle: deactivation and deletion end a key's usable life; reactivation renews it.
INSERT INTO p_creds
SELECT event_id, ts,
    CASE WHEN event_name = 'UpdateAccessKey' AND (rp ->> 'status') = 'Active' THEN 'renew' ELSE 'revoke' END,
    cw_hash('aws', (rp ->> 'accessKeyId')), 'iam_access_key',
    coalesce(rp ->> 'userName', r.userIdentity.userName), NULL, NULL, NULL,
    caller_credential_id, NULL, NULL, NULL, NULL, r.sourceIPAddress, 'ok', NULL, NULL,
    'cloudtrail', source_file, source_offset, source_line, source_record
FROM ct_ok
WHERE event_source = 'iam.amazonaws.com' AND event_name IN ('UpdateAccessKey', 'DeleteAccessKey')
  AND r.errorCode IS NULL AND (rp ->> 'accessKeyId') IS NOT NULL;
