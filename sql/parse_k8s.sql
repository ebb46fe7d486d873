-- Kubernetes audit events (JSON lines of Event, or EventList documents). TokenRequest
-- (create serviceaccounts/token) issues a credential whose id is the audit annotation
-- authentication.kubernetes.io/issued-credential-id; later requests carry it in
-- user.extra["authentication.kubernetes.io/credential-id"]. Every event is an agent action.

CREATE OR REPLACE TEMP TABLE k_records AS
WITH shaped AS (
    SELECT source_file, unit_line, unit_offset, j,
        CASE WHEN json_type(j) = 'OBJECT' AND (j ->> 'kind') = 'EventList' AND json_type((j -> 'items')) = 'ARRAY'
             THEN json_transform((j -> 'items'), '["JSON"]') END AS items
    FROM unit_json WHERE source_format = 'k8s'
)
SELECT source_file, unit_line AS source_line, unit_offset AS source_offset, 0 AS source_record, j AS rec
FROM shaped WHERE items IS NULL
UNION ALL
SELECT source_file, unit_line, unit_offset, unnest(range(len(items)))::INTEGER, unnest(items)
FROM shaped WHERE items IS NOT NULL;

CREATE OR REPLACE TEMP TABLE k_valid AS
SELECT *,
    cw_ts(coalesce(r.stageTimestamp, r.requestReceivedTimestamp) ->> '$') AS ts,
    CASE WHEN json_type(rec) <> 'OBJECT' THEN 'record is not a JSON object (got ' || cw_json_kind(rec) || ')'
    ELSE coalesce(
        cw_string_problem('auditID', r.auditID, true),
        cw_string_problem('verb', r.verb, true),
        cw_ts_problem(CASE WHEN r.stageTimestamp IS NOT NULL THEN 'stageTimestamp' ELSE 'requestReceivedTimestamp' END,
                      coalesce(r.stageTimestamp, r.requestReceivedTimestamp),
                      cw_ts(coalesce(r.stageTimestamp, r.requestReceivedTimestamp) ->> '$')))
    END AS reason
FROM (
    SELECT *, CASE WHEN json_type(rec) = 'OBJECT' THEN json_transform(rec, '{
        "auditID":"JSON","stage":"VARCHAR","verb":"JSON","requestURI":"VARCHAR",
        "user":{"username":"VARCHAR","extra":"JSON"},"sourceIPs":["VARCHAR"],"userAgent":"VARCHAR",
        "objectRef":{"resource":"VARCHAR","subresource":"VARCHAR","namespace":"VARCHAR","name":"VARCHAR","apiGroup":"VARCHAR"},
        "responseStatus":{"code":"VARCHAR","message":"VARCHAR","reason":"VARCHAR"},
        "requestObject":"JSON","responseObject":"JSON","annotations":"JSON",
        "requestReceivedTimestamp":"JSON","stageTimestamp":"JSON"}') END AS r
    FROM k_records
);

INSERT INTO p_records
SELECT 'k8s', source_file, source_line, source_offset, source_record,
    CASE WHEN reason IS NULL THEN 'k8s:' || (r.auditID ->> '$')
         ELSE 'reject:' || cw_keyed('reject:k8s', rec::VARCHAR) END,
    CASE r.stage WHEN 'ResponseComplete' THEN 0 WHEN 'Panic' THEN 1 WHEN 'ResponseStarted' THEN 2 ELSE 3 END,
    reason,
    CASE WHEN reason IS NOT NULL THEN left(cw_redact(left(rec::VARCHAR, 65536)), $reject_text_chars) END,
    strlen(rec::VARCHAR)
FROM k_valid;

CREATE OR REPLACE TEMP TABLE k_ok AS
SELECT *, 'k8s:' || (r.auditID ->> '$') AS event_id, (r.verb ->> '$') AS verb,
    cw_hash('k8s', json_extract_string(r.user.extra, '$."authentication.kubernetes.io/credential-id"[0]')) AS credential_id,
    json_extract_string(r.user.extra, '$."authentication.kubernetes.io/pod-name"[0]') AS pod_name,
    CASE WHEN try_cast(r.responseStatus.code AS INTEGER) IN (401, 403) THEN 'denied'
         WHEN try_cast(r.responseStatus.code AS INTEGER) >= 400 THEN 'error'
         WHEN r.stage IN ('RequestReceived') THEN 'unknown'
         ELSE 'ok' END AS outcome,
    regexp_extract(r.user.username, '^system:serviceaccount:[^:]+:(.+)$', 1) AS sa_name
FROM k_valid WHERE reason IS NULL;

INSERT INTO p_actions
SELECT event_id, ts,
    coalesce(nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_agent_group), ''), nullif(sa_name, ''), r.user.username),
    nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_task_group), ''),
    CASE WHEN nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_task_group), '') IS NOT NULL THEN 'k8s_pod' END,
    NULL, NULL, NULL,
    verb || ' ' || coalesce(r.objectRef.resource, 'nonresource') || coalesce('/' || r.objectRef.subresource, ''),
    'kubernetes' || coalesce(':' || nullif(r.objectRef.apiGroup, ''), ''),
    CASE WHEN r.objectRef.subresource = 'token' OR r.objectRef.resource IN ('secrets', 'serviceaccounts', 'certificatesigningrequests') AND verb IN ('create', 'update', 'patch')
              THEN 'credential'
         WHEN r.objectRef.resource IN ('roles', 'rolebindings', 'clusterroles', 'clusterrolebindings') THEN 'admin'
         WHEN r.objectRef.subresource IN ('exec', 'attach', 'portforward') THEN 'admin'
         WHEN verb IN ('get', 'list', 'watch') THEN 'read'
         WHEN verb IN ('create', 'update', 'patch') THEN 'write'
         WHEN verb IN ('delete', 'deletecollection') THEN 'delete' END,
    coalesce(r.objectRef.namespace || '/', '') || coalesce(r.objectRef.resource, '') || coalesce('/' || r.objectRef.name, ''),
    CASE WHEN r.objectRef.resource = 'secrets' THEN 'high' END,
    NULL, NULL, NULL, NULL,
    outcome, CASE WHEN outcome IN ('error', 'denied') THEN coalesce(r.responseStatus.reason, r.responseStatus.code) END,
    NULL, credential_id, r.sourceIPs[1], NULL, NULL,
    'k8s', source_file, source_offset, source_line, source_record
FROM k_ok;

INSERT INTO p_creds
SELECT event_id, ts, 'use', credential_id, 'k8s_sa_token', r.user.username,
    coalesce(nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_agent_group), ''), nullif(sa_name, '')),
    nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_task_group), ''),
    CASE WHEN nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_task_group), '') IS NOT NULL THEN 'k8s_pod' END,
    NULL, NULL, NULL, NULL, NULL, r.sourceIPs[1], outcome, NULL, NULL,
    'k8s', source_file, source_offset, source_line, source_record
FROM k_ok WHERE credential_id IS NOT NULL;

INSERT INTO p_creds
WITH issued AS (
    SELECT *,
        json_extract_string(r.requestObject, '$.spec.boundObjectRef.name') AS bound_pod,
        coalesce(try_cast(json_extract_string(r.requestObject, '$.spec.expirationSeconds') AS BIGINT),
                 try_cast(json_extract_string(r.responseObject, '$.spec.expirationSeconds') AS BIGINT)) AS ttl,
        cw_ts(json_extract_string(r.responseObject, '$.status.expirationTimestamp')) AS expiry
    FROM k_ok
    WHERE verb = 'create' AND r.objectRef.resource = 'serviceaccounts' AND r.objectRef.subresource = 'token'
      AND outcome = 'ok'
)
SELECT event_id, ts, 'issue',
    coalesce(cw_hash('k8s', json_extract_string(r.annotations, '$."authentication.kubernetes.io/issued-credential-id"')),
             cw_hash('k8s-audit', r.auditID ->> '$')),
    'k8s_sa_token',
    'system:serviceaccount:' || coalesce(r.objectRef.namespace, '') || ':' || coalesce(r.objectRef.name, ''),
    coalesce(nullif(regexp_extract(bound_pod, $k8s_pod_pattern, $k8s_agent_group), ''), r.objectRef.name),
    nullif(regexp_extract(bound_pod, $k8s_pod_pattern, $k8s_task_group), ''),
    CASE WHEN nullif(regexp_extract(bound_pod, $k8s_pod_pattern, $k8s_task_group), '') IS NOT NULL THEN 'k8s_bound_pod' END,
    credential_id,
    cw_str_list(json_extract(r.requestObject, '$.spec.audiences')),
    coalesce(ttl, date_diff('second', ts, expiry)), ts, coalesce(expiry, cw_plus_seconds(ts, ttl)),
    r.sourceIPs[1], 'ok', NULL, NULL,
    'k8s', source_file, source_offset, source_line, source_record
FROM issued;
