-- AWS CloudTrail: {"Records":[...]} files, JSON arrays and JSON lines of records.
-- STS issuance and IAM access keys become credential events; every record is an agent action;
-- a record whose userIdentity.accessKeyId is known is also a use of that credential.
-- sourceIPAddress is kept only when it is an address: AWS services acting for a caller write
-- `AWS Internal` or their own host name (with userIdentity.invokedBy), and those calls get a NULL
-- source_ip, so they are no network of anyone's. Sessions AWS issues itself have their own kinds:
-- aws_instance_session (EC2 instance profiles: the session name is the instance id) and
-- aws_service_session (service-linked roles, and sessions issued by an AWS service principal).

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
            "principalId":"VARCHAR","invokedBy":"VARCHAR",
            "sessionContext":{"sessionIssuer":{"arn":"VARCHAR","userName":"VARCHAR"},
                              "attributes":{"creationDate":"VARCHAR"}}},
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
         -- A document that is neither a record nor a list of them is rejected whole, with why
         -- (a misspelt "Record" key must not read as one broken record, nor vanish).
         WHEN r.eventTime IS NULL AND r.eventName IS NULL AND r.eventSource IS NULL THEN
            CASE WHEN list_contains(json_keys(rec), 'Records')
                 THEN 'Records is not an array (got ' || cw_json_kind(rec -> 'Records') || ')'
                 ELSE 'neither a CloudTrail record nor a {"Records": [...]} document (top-level keys: '
                      || left(array_to_string(json_keys(rec)[1:8], ', '), 120) || ')' END
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
    cw_hash('aws', r.userIdentity.accessKeyId) AS caller_credential_id,
    -- The caller's credential kind: EC2 instance-profile sessions are named after the instance,
    -- service-linked roles are AWSServiceRoleFor... under the path /aws-service-role/.
    CASE WHEN r.userIdentity.accessKeyId IS NULL THEN NULL
         WHEN regexp_full_match(coalesce(session_name, ''), 'i-[0-9a-f]{8}([0-9a-f]{9})?') THEN 'aws_instance_session'
         WHEN regexp_matches(coalesce(r.userIdentity.arn, ''), ':assumed-role/AWSServiceRoleFor')
              OR contains(coalesce(r.userIdentity.sessionContext.sessionIssuer.arn, ''), ':role/aws-service-role/')
              THEN 'aws_service_session'
         WHEN starts_with(r.userIdentity.accessKeyId, 'ASIA') THEN 'sts_session'
         ELSE 'iam_access_key' END AS caller_kind,
    -- An address (IPv4, or IPv6 hex and colons), else NULL: `AWS Internal` and service hosts.
    CASE WHEN regexp_full_match(r.sourceIPAddress, '[0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*')
         THEN r.sourceIPAddress END AS source_ip,
    -- Sharing a snapshot, image or bucket: the accounts (or `all`) the call adds.
    CASE WHEN (r.eventName ->> '$') IN ('ModifySnapshotAttribute', 'ModifyImageAttribute') THEN
            CASE WHEN json_type(coalesce(rp -> 'createVolumePermission' -> 'add' -> 'items',
                                         rp -> 'launchPermission' -> 'add' -> 'items')) = 'ARRAY'
                 THEN list_transform(json_transform(coalesce(rp -> 'createVolumePermission' -> 'add' -> 'items',
                                                             rp -> 'launchPermission' -> 'add' -> 'items'),
                                                    '[{"userId":"VARCHAR","group":"VARCHAR"}]'),
                                     x -> coalesce(x.userId, x."group"))
                 ELSE [] END
         WHEN (r.eventName ->> '$') IN ('ModifyDBSnapshotAttribute', 'ModifyDBClusterSnapshotAttribute') THEN
            CASE WHEN lower(coalesce(rp ->> 'attributeName', '')) = 'restore'
                 THEN coalesce(cw_str_list(rp -> 'valuesToAdd'), []) ELSE [] END
         WHEN (r.eventName ->> '$') = 'PutBucketPolicy' THEN
            -- Principals of Allow statements not limited to the organisation (aws:PrincipalOrgID).
            flatten(list_transform(
                list_filter(CASE json_type(rp -> 'bucketPolicy' -> 'Statement')
                                WHEN 'ARRAY' THEN json_transform(rp -> 'bucketPolicy' -> 'Statement', '["JSON"]')
                                WHEN 'OBJECT' THEN [rp -> 'bucketPolicy' -> 'Statement'] ELSE [] END,
                            st -> (st ->> 'Effect') = 'Allow'
                                  AND NOT contains(lower(coalesce((st -> 'Condition')::VARCHAR, '')), 'aws:principalorgid')),
                st -> CASE WHEN regexp_matches(coalesce((st -> 'Principal')::VARCHAR, ''), '^"\*"$|"AWS":(\[[^\]]*)?"\*"')
                           THEN ['all'] ELSE [] END
                      || regexp_extract_all(coalesce((st -> 'Principal')::VARCHAR, ''), '[":]([0-9]{12})[":]', 1)))
         WHEN (r.eventName ->> '$') = 'PutBucketAcl' THEN
            CASE WHEN regexp_matches(rp::VARCHAR, 'acs\.amazonaws\.com/groups/global/(AllUsers|AuthenticatedUsers)|"x-amz-acl":"(public-read|public-read-write|authenticated-read)"')
                 THEN ['all'] ELSE [] END
    END AS share_targets
FROM ct_valid WHERE reason IS NULL;

INSERT INTO p_actions
WITH shares AS (
    -- Shares: the targets outside the recorded account (recipientAccountId); `all` is outside.
    SELECT *, CASE WHEN share_targets IS NOT NULL THEN list_sort(list_distinct(list_filter(share_targets,
        t -> t IS NOT NULL AND t <> '' AND t IS DISTINCT FROM r.recipientAccountId))) END AS shared_out
    FROM ct_ok
)
SELECT event_id, ts,
    coalesce(nullif(session_agent, ''), r.userIdentity.userName,
             r.userIdentity.sessionContext.sessionIssuer.userName, r.userIdentity.arn,
             r.userIdentity.principalId),
    nullif(session_task, ''),
    CASE WHEN nullif(session_task, '') IS NOT NULL THEN 'sts_session_name' END,
    NULL, NULL, NULL,
    event_name, event_source,
    CASE
        -- Sharing a snapshot, image or bucket is egress when it adds anyone, else a permission change.
        WHEN share_targets IS NOT NULL THEN CASE WHEN len(share_targets) > 0 THEN 'egress' ELSE 'admin' END
        WHEN event_source = 'sts.amazonaws.com' OR event_name IN
            ('CreateAccessKey', 'UpdateAccessKey', 'DeleteAccessKey', 'CreateLoginProfile',
             'UpdateLoginProfile', 'DeleteLoginProfile', 'CreateServiceSpecificCredential',
             'ResetServiceSpecificCredential', 'UploadSSHPublicKey', 'UploadSigningCertificate',
             'CreateVirtualMFADevice', 'EnableMFADevice', 'DeactivateMFADevice') THEN 'credential'
        WHEN event_source = 'iam.amazonaws.com' AND regexp_matches(event_name,
            '^(Put|Attach|Detach|Delete)(User|Role|Group)Policy$|^(Create|Delete)(Role|User|PolicyVersion|Policy)$|^(Add|Remove)User(To|From)Group$|^UpdateAssumeRolePolicy$|^SetDefaultPolicyVersion$|^(Put|Delete)(User|Role)PermissionsBoundary$|^(AddRoleTo|RemoveRoleFrom)InstanceProfile$')
            THEN 'admin'
        -- Defence evasion: audit logging, threat detection and configuration recording turned off
        -- or changed; organisation and network boundaries changed.
        WHEN event_source = 'cloudtrail.amazonaws.com' AND regexp_matches(event_name,
            '^(StopLogging|StartLogging|CreateTrail|DeleteTrail|UpdateTrail|PutEventSelectors|PutInsightSelectors|DeleteEventDataStore|StopEventDataStoreIngestion|UpdateEventDataStore)$')
            THEN 'admin'
        WHEN event_source IN ('guardduty.amazonaws.com', 'securityhub.amazonaws.com', 'config.amazonaws.com')
             AND regexp_matches(event_name, '^(Delete|Disable|Stop|Update)(Detector|SecurityHub|ConfigurationRecorder|DeliveryChannel|StandardsSubscriptions|ImportFindingsForProduct)|^DisassociateFromMasterAccount$|^DeleteMembers$')
            THEN 'admin'
        WHEN event_source = 'organizations.amazonaws.com' AND regexp_matches(event_name,
            '^(LeaveOrganization|DeleteOrganization|RemoveAccountFromOrganization|AttachPolicy|DetachPolicy|EnablePolicyType|DisablePolicyType|CreatePolicy|UpdatePolicy|DeletePolicy)$')
            THEN 'admin'
        WHEN event_source = 'ec2.amazonaws.com' AND regexp_matches(event_name,
            '^(Authorize|Revoke)SecurityGroup(Ingress|Egress)$|^(Create|Delete|Replace)NetworkAclEntry$')
            THEN 'admin'
        WHEN event_source = 'kms.amazonaws.com' AND event_name IN ('PutKeyPolicy', 'DisableKey', 'ScheduleKeyDeletion', 'CreateGrant')
            THEN 'admin'
        -- SSH key pairs are credentials; flow logs, log groups, bucket protections and logging,
        -- remote execution (SSM) and function permissions are control-plane changes.
        WHEN event_source = 'ec2.amazonaws.com' AND event_name IN ('CreateKeyPair', 'ImportKeyPair')
            THEN 'credential'
        WHEN (event_source = 'ec2.amazonaws.com' AND event_name IN
                 ('DeleteFlowLogs', 'ModifyInstanceAttribute', 'DisableEbsEncryptionByDefault'))
             OR (event_source = 'logs.amazonaws.com' AND event_name IN
                 ('DeleteLogGroup', 'DeleteLogStream', 'PutRetentionPolicy', 'DeleteSubscriptionFilter'))
             OR (event_source = 's3.amazonaws.com' AND event_name IN
                 ('PutBucketLifecycle', 'PutBucketLifecycleConfiguration', 'DeleteBucketPolicy',
                  'PutBucketPublicAccessBlock', 'DeleteBucketPublicAccessBlock', 'PutBucketLogging',
                  'DeleteBucketEncryption', 'PutBucketVersioning'))
             OR (event_source = 'ssm.amazonaws.com' AND event_name IN ('SendCommand', 'StartSession', 'ResumeSession'))
             OR (event_source = 'lambda.amazonaws.com' AND regexp_matches(event_name, '^(AddPermission|UpdateFunctionConfiguration|UpdateFunctionCode)'))
            THEN 'admin'
        WHEN regexp_matches(event_name, '^(SendEmail|SendRawEmail|SendMessage|SendMessageBatch|Publish|PutRecords?)$')
            THEN 'egress'
    END,
    CASE
        WHEN len(shared_out) > 0 THEN array_to_string(shared_out, ',')
        WHEN (rp ->> 'bucketName') IS NOT NULL THEN 's3://' || (rp ->> 'bucketName') || coalesce('/' || (rp ->> 'key'), '')
        ELSE coalesce(rp ->> 'roleArn', (rp ->> 'secretId'), (rp ->> 'queueUrl'), (rp ->> 'topicArn'),
                      (rp ->> 'functionName'), (rp ->> 'tableName'), (rp ->> 'userName'), (rp ->> 'name'))
    END,
    CASE WHEN event_name IN ('GetSecretValue', 'GetParameter', 'GetParameters', 'Decrypt',
                             'GetPasswordData') THEN 'high'
         WHEN len(share_targets) > 0 THEN 'high'
         WHEN event_source = 'cloudtrail.amazonaws.com' AND event_name IN
             ('StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors', 'DeleteEventDataStore',
              'StopEventDataStoreIngestion') THEN 'high'
         WHEN event_name = 'LeaveOrganization' THEN 'high'
         WHEN event_name IN ('DeleteFlowLogs', 'DeleteDetector', 'DeleteLogGroup', 'StopConfigurationRecorder',
                             'DeleteConfigurationRecorder', 'DisableSecurityHub', 'SendCommand', 'StartSession') THEN 'high' END,
    -- An AWS API call reaches the account's own resources; only mail leaves through SES, and a
    -- share leaves when it adds another account (or everyone).
    CASE WHEN shared_out IS NOT NULL THEN len(shared_out) > 0
         WHEN event_name NOT IN ('SendEmail', 'SendRawEmail') THEN false END,
    NULL, NULL, NULL,
    outcome,
    coalesce(r.errorCode, CASE WHEN outcome <> 'ok' THEN left(cw_redact(r.errorMessage), 200) END), NULL,
    caller_credential_id,
    source_ip,
    cw_redact(rp::VARCHAR),
    -- S3 data events: bytes the caller uploaded (a number or a numeric string; else unknown).
    cw_byte_count(r.additionalEventData ->> 'bytesTransferredIn'),
    'cloudtrail', source_file, source_offset, source_line, source_record
FROM shares;

-- Uses: every call made with a known access key.
INSERT INTO p_creds
SELECT event_id, ts, 'use', caller_credential_id, caller_kind,
    coalesce(r.userIdentity.arn, r.userIdentity.userName),
    coalesce(nullif(session_agent, ''), r.userIdentity.userName,
             r.userIdentity.sessionContext.sessionIssuer.userName),
    nullif(session_task, ''),
    CASE WHEN nullif(session_task, '') IS NOT NULL THEN 'sts_session_name' END,
    NULL, NULL, NULL,
    -- A session's creation time rides on every call made with it: the lifecycle's issue time when
    -- the AssumeRole is not in the trail (sessions AWS issues itself never are).
    CASE WHEN caller_kind IN ('sts_session', 'aws_instance_session', 'aws_service_session')
         THEN cw_ts(r.userIdentity.sessionContext.attributes.creationDate) END,
    NULL,
    source_ip,
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
    -- Sessions AWS issues itself: by a service principal (an instance profile when the session is
    -- named after an EC2 instance) or for a service-linked role.
    CASE WHEN event_name = 'CreateAccessKey' THEN 'iam_access_key'
         WHEN (r.userIdentity.type = 'AWSService' OR r.userIdentity.invokedBy = 'ec2.amazonaws.com')
              AND regexp_full_match(coalesce(new_session, ''), 'i-[0-9a-f]{8}([0-9a-f]{9})?') THEN 'aws_instance_session'
         WHEN r.userIdentity.type = 'AWSService'
              OR contains(coalesce(rp ->> 'roleArn', ''), ':role/aws-service-role/')
              OR regexp_matches(coalesce(rp ->> 'roleArn', ''), ':role/(.*/)?AWSServiceRoleFor')
              THEN 'aws_service_session'
         ELSE 'sts_session' END,
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
    source_ip, 'ok', NULL, NULL,
    'cloudtrail', source_file, source_offset, source_line, source_record
FROM issued;

-- IAM key lifecycle: deactivation and deletion end a key's usable life; reactivation renews it.
INSERT INTO p_creds
SELECT event_id, ts,
    CASE WHEN event_name = 'UpdateAccessKey' AND (rp ->> 'status') = 'Active' THEN 'renew' ELSE 'revoke' END,
    cw_hash('aws', (rp ->> 'accessKeyId')), 'iam_access_key',
    coalesce(rp ->> 'userName', r.userIdentity.userName), NULL, NULL, NULL,
    caller_credential_id, NULL, NULL, NULL, NULL, source_ip, 'ok', NULL, NULL,
    'cloudtrail', source_file, source_offset, source_line, source_record
FROM ct_ok
WHERE event_source = 'iam.amazonaws.com' AND event_name IN ('UpdateAccessKey', 'DeleteAccessKey')
  AND r.errorCode IS NULL AND (rp ->> 'accessKeyId') IS NOT NULL;
