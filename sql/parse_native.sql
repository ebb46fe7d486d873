-- chainwatch native records (JSON lines, CSV or Parquet; CSV/Parquet rows arrive as JSON objects):
-- record_type "action", "credential" or "task". Fields: docs/schema.md, "Native formats".

CREATE OR REPLACE TEMP TABLE n_typed AS
SELECT source_file, unit_line AS source_line, unit_offset AS source_offset, 0 AS source_record, j AS rec,
    CASE WHEN json_type(j) = 'OBJECT' THEN json_transform(j, '{
        "record_type":"JSON","event_id":"VARCHAR","ts":"JSON","event":"JSON","agent_id":"JSON",
        "task_id":"JSON","tool":"JSON","system":"VARCHAR","arguments":"JSON","outcome":"VARCHAR",
        "error_type":"VARCHAR","duration_ms":"VARCHAR","destination":"VARCHAR","action_class":"VARCHAR",
        "sensitivity":"VARCHAR","external":"VARCHAR","annotations":"JSON","credential_ref":"JSON",
        "credential_kind":"VARCHAR","principal":"VARCHAR","parent_credential_ref":"VARCHAR",
        "scopes":"JSON","ttl_s":"VARCHAR","issued_at":"JSON","expires_at":"JSON","source_ip":"VARCHAR",
        "trace_id":"VARCHAR","span_id":"VARCHAR","parent_span_id":"VARCHAR","status":"VARCHAR",
        "approved_by":"VARCHAR","approved_scope":"JSON","approval_expires_at":"JSON","bytes_out":"VARCHAR",
        "result":"JSON","prompt":"JSON","system_instructions":"JSON","call_id":"VARCHAR"}') END AS r
FROM unit_json WHERE source_format IN ('native', 'native_csv', 'native_parquet');

CREATE OR REPLACE TEMP TABLE n_valid AS
SELECT *,
    (r.record_type ->> '$') AS record_type,
    (r.event ->> '$') AS event,
    cw_ts_json(r.ts) AS ts,
    -- The namespace a kind's ids are hashed in, so a native record names the same credential as
    -- the audit log that issued it.
    CASE WHEN r.credential_kind IN ('vault_token', 'vault_lease', 'vault_certificate', 'vault_ssh_certificate') THEN 'vault'
         WHEN r.credential_kind IN ('sts_session', 'iam_access_key', 'aws_instance_session', 'aws_service_session') THEN 'aws'
         WHEN r.credential_kind IN ('k8s_sa_token', 'k8s_kubelet_token', 'k8s_x509_cert') THEN 'k8s'
        ELSE 'native' END AS namespace,
    CASE WHEN json_type(rec) <> 'OBJECT' THEN 'record is not a JSON object (got ' || cw_json_kind(rec) || ')'
    ELSE coalesce(
        cw_string_problem('record_type', r.record_type, true),
        CASE WHEN (r.record_type ->> '$') NOT IN ('action', 'credential', 'task')
             THEN 'invalid value for record_type: ' || left(r.record_type ->> '$', 40)
                  || ' (expected action, credential or task)' END,
        CASE WHEN r.ts IS NULL OR json_type(r.ts) = 'NULL' OR (r.ts ->> '$') = '' THEN 'missing required field ts'
             WHEN cw_ts_json(r.ts) IS NULL THEN 'unparseable timestamp in ts: ' || left(r.ts::VARCHAR, 60)
             ELSE cw_ts_problem('ts', r.ts, cw_ts_json(r.ts)) END,
        CASE (r.record_type ->> '$')
        WHEN 'action' THEN coalesce(
            cw_string_problem('agent_id', r.agent_id, true),
            cw_string_problem('tool', r.tool, true),
            cw_string_problem('task_id', r.task_id, false),
            CASE WHEN nullif(r.outcome, '') NOT IN ('ok', 'error', 'denied')
                 THEN 'invalid value for outcome: ' || left(r.outcome, 40) END,
            CASE WHEN nullif(r.action_class, '') NOT IN ('read', 'write', 'delete', 'egress', 'delegate', 'credential', 'admin', 'unknown')
                 THEN 'invalid value for action_class: ' || left(r.action_class, 40) END,
            CASE WHEN nullif(r.sensitivity, '') NOT IN ('low', 'medium', 'high')
                 THEN 'invalid value for sensitivity: ' || left(r.sensitivity, 40) END,
            CASE WHEN nullif(r.external, '') IS NOT NULL AND try_cast(r.external AS BOOLEAN) IS NULL
                 THEN 'wrong type for external: expected boolean' END,
            CASE WHEN nullif(r.bytes_out, '') IS NULL OR cw_byte_count(r.bytes_out) IS NOT NULL THEN NULL
                 WHEN regexp_full_match(trim(r.bytes_out), '-?[0-9]+(\.0*)?')
                 THEN 'invalid value for bytes_out: ' || left(r.bytes_out, 40) || ' (expected an integer >= 0)'
                 ELSE 'wrong type for bytes_out: expected integer bytes, got ' || left(r.bytes_out, 40) END)
        WHEN 'credential' THEN coalesce(
            cw_string_problem('event', r.event, true),
            CASE WHEN (r.event ->> '$') NOT IN ('issue', 'use', 'renew', 'revoke', 'expire')
                 THEN 'invalid value for event: ' || left(r.event ->> '$', 40) || ' (expected issue, use, renew, revoke or expire)' END,
            CASE WHEN r.credential_ref IS NULL OR json_type(r.credential_ref) = 'NULL' OR (r.credential_ref ->> '$') = ''
                 THEN 'missing required field credential_ref' END,
            CASE WHEN nullif(r.credential_kind, '') NOT IN ('vault_token', 'vault_lease', 'vault_certificate', 'vault_ssh_certificate',
                                                          'sts_session', 'iam_access_key', 'aws_instance_session', 'aws_service_session',
                                                          'k8s_sa_token', 'k8s_kubelet_token', 'k8s_x509_cert', 'native_jit')
                 THEN 'invalid value for credential_kind: ' || left(r.credential_kind, 40) END,
            CASE WHEN nullif(r.ttl_s, '') IS NOT NULL AND try_cast(r.ttl_s AS BIGINT) IS NULL
                 THEN 'wrong type for ttl_s: expected integer seconds, got ' || left(r.ttl_s, 40) END,
            CASE WHEN r.expires_at IS NOT NULL AND json_type(r.expires_at) <> 'NULL' AND (r.expires_at ->> '$') <> ''
                      AND cw_ts_json(r.expires_at) IS NULL
                 THEN 'unparseable timestamp in expires_at: ' || left(r.expires_at::VARCHAR, 60) END,
            CASE WHEN r.issued_at IS NOT NULL AND json_type(r.issued_at) <> 'NULL' AND (r.issued_at ->> '$') <> ''
                      AND cw_ts_json(r.issued_at) IS NULL
                 THEN 'unparseable timestamp in issued_at: ' || left(r.issued_at::VARCHAR, 60) END)
        WHEN 'task' THEN coalesce(
            cw_string_problem('event', r.event, true),
            CASE WHEN (r.event ->> '$') NOT IN ('start', 'end', 'approval')
                 THEN 'invalid value for event: ' || left(r.event ->> '$', 40) || ' (expected start, end or approval)' END,
            cw_string_problem('task_id', r.task_id, true),
            CASE WHEN r.approval_expires_at IS NOT NULL AND json_type(r.approval_expires_at) <> 'NULL'
                      AND (r.approval_expires_at ->> '$') <> '' AND cw_ts_json(r.approval_expires_at) IS NULL
                 THEN 'unparseable timestamp in approval_expires_at: ' || left(r.approval_expires_at::VARCHAR, 60) END)
        END)
    END AS reason
FROM n_typed;

INSERT INTO p_records
SELECT 'native', source_file, source_line, source_offset, source_record,
    CASE WHEN reason IS NULL THEN 'native:' || coalesce(nullif(r.event_id, ''), md5(rec::VARCHAR))
         ELSE 'reject:' || cw_keyed('reject:native', rec::VARCHAR) END,
    0, reason,
    CASE WHEN reason IS NOT NULL THEN left(cw_redact(left(rec::VARCHAR, 65536)), $reject_text_chars) END,
    strlen(rec::VARCHAR)
FROM n_valid;

CREATE OR REPLACE TEMP TABLE n_ok AS
SELECT *, 'native:' || coalesce(nullif(r.event_id, ''), md5(rec::VARCHAR)) AS event_id,
    nullif(r.agent_id ->> '$', '') AS agent_id, nullif(r.task_id ->> '$', '') AS task_id
FROM n_valid WHERE reason IS NULL;

INSERT INTO p_actions
SELECT event_id, ts, agent_id, task_id, CASE WHEN task_id IS NOT NULL THEN 'native' END,
    nullif(r.trace_id, ''), nullif(r.span_id, ''), nullif(r.parent_span_id, ''),
    r.tool ->> '$', nullif(r.system, ''), nullif(r.action_class, ''), nullif(r.destination, ''),
    nullif(r.sensitivity, ''), try_cast(nullif(r.external, '') AS BOOLEAN),
    try_cast(json_extract_string(r.annotations, '$.readOnlyHint') AS BOOLEAN),
    try_cast(json_extract_string(r.annotations, '$.destructiveHint') AS BOOLEAN),
    try_cast(json_extract_string(r.annotations, '$.openWorldHint') AS BOOLEAN),
    coalesce(nullif(r.outcome, ''), 'ok'), cw_redact(nullif(r.error_type, '')), try_cast(r.duration_ms AS DOUBLE),
    cw_hash(namespace, r.credential_ref ->> '$'), nullif(r.source_ip, ''),
    cw_redact(CASE WHEN r.arguments IS NULL OR json_type(r.arguments) = 'NULL' THEN NULL
                   WHEN json_type(r.arguments) = 'VARCHAR' AND json_valid(r.arguments ->> '$') THEN json((r.arguments ->> '$'))::VARCHAR
                   ELSE r.arguments::VARCHAR END),
    cw_byte_count(nullif(r.bytes_out, '')),
    'native', source_file, source_offset, source_line, source_record
FROM n_ok WHERE record_type = 'action';

INSERT INTO p_creds
SELECT event_id, ts, event, cw_hash(namespace, r.credential_ref ->> '$'),
    coalesce(nullif(r.credential_kind, ''), 'native_jit'), nullif(r.principal, ''), agent_id, task_id,
    CASE WHEN task_id IS NOT NULL THEN 'native' END,
    cw_hash(namespace, nullif(r.parent_credential_ref, '')), cw_str_list(r.scopes),
    try_cast(nullif(r.ttl_s, '') AS BIGINT),
    coalesce(cw_ts_json(r.issued_at), CASE WHEN event = 'issue' THEN ts END),
    coalesce(cw_ts_json(r.expires_at),
             CASE WHEN event IN ('issue', 'renew') THEN cw_plus_seconds(ts, try_cast(nullif(r.ttl_s, '') AS BIGINT)) END),
    nullif(r.source_ip, ''), coalesce(nullif(r.outcome, ''), 'ok'), NULL, NULL,
    'native', source_file, source_offset, source_line, source_record
FROM n_ok WHERE record_type = 'credential';

INSERT INTO p_task_events
SELECT event_id, ts, event, task_id, agent_id, nullif(r.status, ''), nullif(r.approved_by, ''),
    cw_str_list(r.approved_scope), cw_ts_json(r.approval_expires_at),
    'native', source_file, source_offset, source_line, source_record
FROM n_ok WHERE record_type = 'task';

-- Content: an action's own arguments (always; only their hashes are kept), its result, and a task
-- start's prompt and system instructions (when content capture is on). docs/schema.md.
INSERT INTO p_content
SELECT event_id, ts, nullif(r.trace_id, ''), nullif(r.span_id, ''), task_id, agent_id, o.origin,
    CASE WHEN record_type = 'action' THEN r.tool ->> '$' END, nullif(r.call_id, ''),
    CASE WHEN json_type(o.v) = 'VARCHAR' THEN o.v ->> '$' ELSE o.v::VARCHAR END,
    'native', source_file, source_offset, source_line, source_record
FROM n_ok,
LATERAL (VALUES ('argument', CASE WHEN record_type = 'action' THEN r.arguments END),
                ('tool', CASE WHEN record_type = 'action' AND $content_capture THEN r.result END),
                ('user', CASE WHEN record_type = 'task' AND $content_capture THEN r.prompt END),
                ('system', CASE WHEN record_type = 'task' AND $content_capture THEN r.system_instructions END)) o(origin, v)
WHERE o.v IS NOT NULL AND json_type(o.v) <> 'NULL';
