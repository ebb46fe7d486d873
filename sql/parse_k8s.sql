-- Kubernetes audit events: audit.k8s.io/v1 Event as JSON lines, EventList documents, JSON arrays,
-- AKS diagnostic records ({"category": "kube-audit[-admin]", "properties": {"log": "<Event JSON>"}},
-- one a line or in {"records": [...]}) and GKE Cloud Logging entries (protoPayload AuditLog), all
-- read into the same Event fields. TokenRequest (create serviceaccounts/token) issues a credential
-- whose id is the audit annotation authentication.kubernetes.io/issued-credential-id; later
-- requests carry it in user.extra["authentication.kubernetes.io/credential-id"]. Every event is an
-- agent action; ts is the request time (requestReceivedTimestamp). The stages of one request (same
-- auditID, verb, objectRef, user, request time and cluster) are one event; another request that
-- reuses the auditID is a different event (its event_id gets a fingerprint suffix).

-- Containers: an EventList's items, an AKS export's records, a JSON array of objects (gcloud).
CREATE OR REPLACE TEMP TABLE k_records AS
WITH shaped AS (
    SELECT source_file, unit_line, unit_offset, j,
        CASE WHEN json_type(j) = 'ARRAY' AND json_type((j -> 0)) = 'OBJECT' THEN json_transform(j, '["JSON"]')
             WHEN json_type(j) <> 'OBJECT' THEN NULL
             WHEN (j ->> 'kind') = 'EventList' AND (j -> 'auditID') IS NULL AND json_type((j -> 'items')) = 'ARRAY'
                 THEN json_transform((j -> 'items'), '["JSON"]')
             WHEN (j -> 'kind') IS NULL AND (j -> 'auditID') IS NULL AND json_type((j -> 'records')) = 'ARRAY'
                 THEN json_transform((j -> 'records'), '["JSON"]') END AS items
    FROM unit_json WHERE source_format = 'k8s'
)
SELECT source_file, unit_line AS source_line, unit_offset AS source_offset, 0 AS source_record, j AS rec
FROM shaped WHERE items IS NULL
UNION ALL
SELECT source_file, unit_line, unit_offset, unnest(range(len(items)))::INTEGER, unnest(items)
FROM shaped WHERE items IS NOT NULL;

-- Each record as an Event (ev): plain, unwrapped from AKS properties.log, or mapped from GKE.
CREATE OR REPLACE TEMP TABLE k_events AS
WITH tagged AS (
    SELECT *,
        CASE WHEN json_type(rec) <> 'OBJECT' THEN NULL
             WHEN json_type((rec -> 'protoPayload')) = 'OBJECT' THEN 'gke'
             WHEN json_type((rec -> 'properties')) = 'OBJECT' AND (rec -> 'auditID') IS NULL THEN 'aks'
             ELSE 'event' END AS variant
    FROM k_records
), gke AS (
    SELECT *, (rec -> 'protoPayload') AS pp,
        regexp_extract(rec ->> '$.protoPayload.resourceName',
            '^([^/]+)/([^/]+)/(namespaces/([^/]+)/)?([^/]+)(/([^/]+))?(/([^/]+))?$',
            ['group', 'version', 'nsp', 'namespace', 'resource', 'n', 'name', 's', 'subresource']) AS res,
        try_cast(rec ->> '$.protoPayload.status.code' AS INTEGER) AS rpc_code
    FROM tagged WHERE variant = 'gke'
)
SELECT source_file, source_line, source_offset, source_record, rec, variant,
    CASE WHEN variant = 'aks' THEN
        CASE WHEN json_type((rec -> '$.properties.log')) = 'OBJECT' THEN (rec -> '$.properties.log')
             WHEN json_type((rec -> '$.properties.log')) = 'VARCHAR' AND json_valid(rec ->> '$.properties.log')
                 THEN (rec ->> '$.properties.log')::JSON END
    ELSE rec END AS ev,
    CASE WHEN variant = 'aks' THEN
        CASE WHEN (rec -> '$.properties.log') IS NULL OR json_type((rec -> '$.properties.log')) = 'NULL'
                 THEN 'missing required field properties.log'
             WHEN json_type((rec -> '$.properties.log')) NOT IN ('VARCHAR', 'OBJECT')
                 THEN 'wrong type for properties.log: expected string, got ' || cw_json_kind((rec -> '$.properties.log'))
             WHEN json_type((rec -> '$.properties.log')) = 'VARCHAR' AND NOT json_valid(rec ->> '$.properties.log')
                 THEN 'invalid value for properties.log: not a JSON audit Event' END
    END AS wrap_reason,
    CASE variant WHEN 'aks' THEN nullif(lower(rec ->> 'resourceId'), '') END AS cluster
FROM tagged WHERE variant IS DISTINCT FROM 'gke'
UNION ALL
SELECT source_file, source_line, source_offset, source_record, rec, variant,
    json_object(
        'auditID', coalesce(rec -> '$.operation.id', rec -> 'insertId'),
        'stage', CASE WHEN (rec ->> '$.operation.last') = 'false' THEN 'RequestReceived' ELSE 'ResponseComplete' END,
        'verb', to_json(nullif(regexp_extract(pp ->> 'methodName', '\.([A-Za-z]+)$', 1), '')),
        'requestURI', pp -> 'resourceName',
        'user', json_object('username', pp -> '$.authenticationInfo.principalEmail'),
        'sourceIPs', CASE WHEN (pp ->> '$.requestMetadata.callerIp') IS NOT NULL
                          THEN json_array(pp ->> '$.requestMetadata.callerIp') END,
        'userAgent', pp -> '$.requestMetadata.callerSuppliedUserAgent',
        'objectRef', CASE WHEN nullif(res.resource, '') IS NOT NULL THEN json_object(
            'apiGroup', CASE WHEN res."group" = 'core' THEN '' ELSE res."group" END,
            'namespace', nullif(res.namespace, ''), 'resource', res.resource,
            'name', nullif(res.name, ''), 'subresource', nullif(res.subresource, '')) END,
        -- google.rpc.Code to the HTTP status the API server answered with.
        'responseStatus', json_object(
            'code', CASE coalesce(rpc_code, 0) WHEN 0 THEN 200 WHEN 3 THEN 400 WHEN 9 THEN 400 WHEN 11 THEN 400
                WHEN 5 THEN 404 WHEN 6 THEN 409 WHEN 10 THEN 409 WHEN 7 THEN 403 WHEN 16 THEN 401
                WHEN 8 THEN 429 WHEN 14 THEN 503 WHEN 4 THEN 504 ELSE 500 END,
            'reason', CASE rpc_code WHEN 7 THEN 'Forbidden' WHEN 16 THEN 'Unauthorized' WHEN 5 THEN 'NotFound'
                WHEN 6 THEN 'AlreadyExists' WHEN 3 THEN 'BadRequest' END),
        'requestObject', pp -> 'request', 'responseObject', pp -> 'response',
        'annotations', rec -> 'labels',
        'requestReceivedTimestamp', rec -> 'timestamp', 'stageTimestamp', rec -> 'timestamp'),
    CASE WHEN (pp ->> 'methodName') IS NULL THEN 'missing required field protoPayload.methodName'
         WHEN NOT starts_with(pp ->> 'methodName', 'io.k8s.')
             THEN 'invalid value for protoPayload.methodName: ' || left(pp ->> 'methodName', 60) || ' (not a Kubernetes API call)'
         WHEN (rec -> 'timestamp') IS NULL THEN 'missing required field timestamp'
         WHEN coalesce(rec -> '$.operation.id', rec -> 'insertId') IS NULL THEN 'missing required field operation.id'
    END,
    nullif(concat_ws('/', rec ->> '$.resource.labels.project_id', rec ->> '$.resource.labels.location',
                     rec ->> '$.resource.labels.cluster_name'), '')
FROM gke;

CREATE OR REPLACE TEMP TABLE k_valid AS
SELECT *,
    cw_ts(coalesce(r.requestReceivedTimestamp, r.stageTimestamp) ->> '$') AS ts,
    cw_ts(r.stageTimestamp ->> '$') AS stage_ts,
    CASE WHEN json_type(rec) <> 'OBJECT' THEN 'record is not a JSON object (got ' || cw_json_kind(rec) || ')'
    WHEN wrap_reason IS NOT NULL THEN wrap_reason
    WHEN json_type(ev) <> 'OBJECT' THEN 'invalid value for properties.log: not a JSON audit Event'
    -- A container whose list key is misspelt: nothing in it may be dropped unseen.
    WHEN (ev ->> 'kind') = 'EventList' AND (ev -> 'auditID') IS NULL THEN
        CASE WHEN (ev -> 'items') IS NULL
             THEN 'missing required field items (EventList keys: ' || array_to_string(list_sort(json_keys(ev)), ', ') || ')'
             ELSE 'wrong type for items: expected array, got ' || cw_json_kind((ev -> 'items')) END
    ELSE coalesce(
        cw_string_problem('auditID', r.auditID, true),
        cw_string_problem('verb', r.verb, true),
        CASE WHEN r.requestReceivedTimestamp IS NOT NULL
             THEN cw_ts_problem('requestReceivedTimestamp', r.requestReceivedTimestamp, cw_ts(r.requestReceivedTimestamp ->> '$')) END,
        CASE WHEN r.stageTimestamp IS NOT NULL
             THEN cw_ts_problem('stageTimestamp', r.stageTimestamp, cw_ts(r.stageTimestamp ->> '$')) END,
        CASE WHEN r.requestReceivedTimestamp IS NULL AND r.stageTimestamp IS NULL
             THEN 'missing required field requestReceivedTimestamp' END,
        -- A misspelt main key (objectRf, usr): the fields it names would be lost unseen.
        CASE WHEN len(unknown_keys) > 0 AND len(missing_keys) > 0
             THEN 'unknown field(s) ' || array_to_string(unknown_keys, ', ') || ' in a Kubernetes audit Event without '
                  || array_to_string(missing_keys, ', ') || ' (misspelt?)' END)
    END AS reason
FROM (
    SELECT *, CASE WHEN json_type(ev) = 'OBJECT' THEN json_transform(ev, '{
        "auditID":"JSON","stage":"VARCHAR","verb":"JSON","requestURI":"VARCHAR",
        "user":{"username":"VARCHAR","extra":"JSON"},"sourceIPs":["VARCHAR"],"userAgent":"VARCHAR",
        "objectRef":{"resource":"VARCHAR","subresource":"VARCHAR","namespace":"VARCHAR","name":"VARCHAR","apiGroup":"VARCHAR"},
        "responseStatus":{"code":"VARCHAR","message":"VARCHAR","reason":"VARCHAR"},
        "requestObject":"JSON","responseObject":"JSON","annotations":"JSON",
        "requestReceivedTimestamp":"JSON","stageTimestamp":"JSON"}') END AS r,
        CASE WHEN variant <> 'gke' AND json_type(ev) = 'OBJECT' THEN list_sort(list_filter(json_keys(ev), k -> NOT list_contains(
            ['kind', 'apiVersion', 'level', 'auditID', 'stage', 'requestURI', 'verb', 'user', 'impersonatedUser',
             'sourceIPs', 'userAgent', 'objectRef', 'responseStatus', 'requestObject', 'responseObject',
             'requestReceivedTimestamp', 'stageTimestamp', 'annotations', 'metadata', 'timestamp'], k))) END AS unknown_keys,
        CASE WHEN json_type(ev) = 'OBJECT' THEN list_filter(['objectRef', 'user', 'sourceIPs', 'requestURI'],
            k -> NOT list_contains(json_keys(ev), k)) END AS missing_keys
    FROM k_events
);

-- Which request an auditID names: verb, objectRef, user, request time and cluster. The stages of
-- one request share it; a different request reusing the auditID does not.
CREATE OR REPLACE TEMP TABLE k_keyed AS
SELECT *,
    md5(concat_ws('|', coalesce(cluster, ''), (r.verb ->> '$'), coalesce(r.objectRef.apiGroup, ''),
        coalesce(r.objectRef.resource, ''), coalesce(r.objectRef.subresource, ''),
        coalesce(r.objectRef.namespace, ''), coalesce(r.objectRef.name, ''),
        coalesce((ev -> 'user')::VARCHAR, ''), coalesce(ts::VARCHAR, ''))) AS request_fp,
    coalesce(r.objectRef.namespace || '/', '') || coalesce(r.objectRef.resource, '') || coalesce('/' || r.objectRef.name, '') AS destination,
    cw_hash('k8s', json_extract_string(r.user.extra, '$."authentication.kubernetes.io/credential-id"[0]')) AS credential_id,
    (r.verb ->> '$') || ' ' || coalesce(r.objectRef.resource, 'nonresource') || coalesce('/' || r.objectRef.subresource, '') AS tool
FROM k_valid WHERE reason IS NULL;

-- The plain id k8s:<auditID> goes to the request already loaded under it (same request time, or
-- the completion time older warehouses stored; same tool, destination and credential), else to the
-- request of this batch seen first; any other request reusing the auditID gets
-- k8s:<auditID>#<fingerprint>. Set-based: one hash join on the loaded event ids.
CREATE OR REPLACE TEMP TABLE k_ids AS
WITH requests AS (
    SELECT (r.auditID ->> '$') AS audit_id, request_fp, any_value(tool) AS tool, any_value(ts) AS ts,
        any_value(destination) AS destination, any_value(credential_id) AS credential_id,
        list(stage_ts) AS stage_times, min((source_file, source_line, source_record)) AS first_seen
    FROM k_keyed GROUP BY ALL
), loaded AS (
    SELECT q.audit_id, q.request_fp, count(a.event_id) > 0 AS taken,
        coalesce(bool_or(a.tool = q.tool AND coalesce(a.destination, '') = coalesce(q.destination, '')
            AND a.credential_id IS NOT DISTINCT FROM q.credential_id
            AND (a.ts = q.ts OR list_contains(q.stage_times, a.ts))), false) AS is_loaded
    FROM requests q LEFT JOIN agent_actions a ON a.event_id = 'k8s:' || q.audit_id
    GROUP BY q.audit_id, q.request_fp
), ranked AS (
    SELECT q.audit_id, q.request_fp, l.taken, l.is_loaded,
        row_number() OVER (PARTITION BY q.audit_id ORDER BY l.is_loaded DESC, q.first_seen) AS plain_rank
    FROM requests q JOIN loaded l USING (audit_id, request_fp)
)
SELECT audit_id, request_fp,
    'k8s:' || audit_id || CASE WHEN plain_rank = 1 AND (is_loaded OR NOT taken) THEN '' ELSE '#' || left(request_fp, 12) END AS event_id
FROM ranked;

INSERT INTO p_records
SELECT 'k8s', v.source_file, v.source_line, v.source_offset, v.source_record,
    CASE WHEN v.reason IS NULL THEN i.event_id
         ELSE 'reject:' || cw_keyed('reject:k8s', v.rec::VARCHAR) END,
    CASE v.r.stage WHEN 'ResponseComplete' THEN 0 WHEN 'Panic' THEN 1 WHEN 'ResponseStarted' THEN 2 ELSE 3 END,
    v.reason,
    CASE WHEN v.reason IS NOT NULL THEN left(cw_redact(left(v.rec::VARCHAR, 65536)), $reject_text_chars) END,
    strlen(v.rec::VARCHAR)
FROM k_valid v
LEFT JOIN (SELECT k.source_file, k.source_line, k.source_record, i.event_id
           FROM k_keyed k JOIN k_ids i ON i.audit_id = (k.r.auditID ->> '$') AND i.request_fp = k.request_fp) i
    -- Equality only (k_keyed holds valid rows alone): any other condition in ON makes a nested loop.
    ON i.source_file = v.source_file AND i.source_line = v.source_line AND i.source_record = v.source_record;

CREATE OR REPLACE TEMP TABLE k_ok AS
SELECT k.*, i.event_id, (k.r.verb ->> '$') AS verb,
    json_extract_string(k.r.user.extra, '$."authentication.kubernetes.io/credential-id"[0]') AS credential_ref,
    json_extract_string(k.r.user.extra, '$."authentication.kubernetes.io/pod-name"[0]') AS pod_name,
    CASE WHEN try_cast(k.r.responseStatus.code AS INTEGER) IN (401, 403) THEN 'denied'
         WHEN try_cast(k.r.responseStatus.code AS INTEGER) >= 400 THEN 'error'
         WHEN k.r.stage IN ('RequestReceived') THEN 'unknown'
         ELSE 'ok' END AS outcome,
    regexp_extract(k.r.user.username, '^system:serviceaccount:[^:]+:(.+)$', 1) AS sa_name
FROM k_keyed k JOIN k_ids i ON i.audit_id = (k.r.auditID ->> '$') AND i.request_fp = k.request_fp;

INSERT INTO p_actions
SELECT event_id, ts,
    coalesce(nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_agent_group), ''), nullif(sa_name, ''), r.user.username),
    nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_task_group), ''),
    CASE WHEN nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_task_group), '') IS NOT NULL THEN 'k8s_pod' END,
    NULL, NULL, NULL,
    tool,
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

-- Credential kinds: client certificates (credential id X509SHA256=<fingerprint>) are not tokens.
INSERT INTO p_creds
SELECT event_id, ts, 'use', credential_id,
    CASE WHEN starts_with(credential_ref, 'X509SHA256=') THEN 'k8s_x509_cert' ELSE 'k8s_sa_token' END,
    r.user.username,
    coalesce(nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_agent_group), ''), nullif(sa_name, '')),
    nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_task_group), ''),
    CASE WHEN nullif(regexp_extract(pod_name, $k8s_pod_pattern, $k8s_task_group), '') IS NOT NULL THEN 'k8s_pod' END,
    NULL, NULL, NULL, NULL, NULL, r.sourceIPs[1], outcome, NULL, NULL,
    'k8s', source_file, source_offset, source_line, source_record
FROM k_ok WHERE credential_id IS NOT NULL;

-- Issuance. A token the kubelet requests for a pod (user system:node:<node>) is k8s_kubelet_token:
-- the API server may extend it far past expirationSeconds (3607), and only the token's own exp
-- claim shows that (status.expirationTimestamp repeats the requested expiry). The exp claim is
-- decoded from the JWT payload here and nothing else of the token is kept.
INSERT INTO p_creds
WITH issued AS (
    SELECT *,
        json_extract_string(r.requestObject, '$.spec.boundObjectRef.name') AS bound_pod,
        coalesce(try_cast(json_extract_string(r.requestObject, '$.spec.expirationSeconds') AS BIGINT),
                 try_cast(json_extract_string(r.responseObject, '$.spec.expirationSeconds') AS BIGINT)) AS requested_ttl,
        starts_with(coalesce(r.user.username, ''), 'system:node:')
            AND json_extract_string(r.requestObject, '$.spec.boundObjectRef.kind') = 'Pod' AS by_kubelet,
        split_part(coalesce(json_extract_string(r.responseObject, '$.status.token'), ''), '.', 2) AS jwt_payload
    FROM k_ok
    WHERE verb = 'create' AND r.objectRef.resource = 'serviceaccounts' AND r.objectRef.subresource = 'token'
      AND outcome = 'ok'
), claims AS (
    SELECT * EXCLUDE (jwt_payload),
        try(decode(from_base64(replace(replace(jwt_payload, '-', '+'), '_', '/')
            || repeat('=', (4 - length(jwt_payload) % 4) % 4)))) AS jwt_claims
    FROM issued
), expiring AS (
    SELECT * EXCLUDE (jwt_claims),
        coalesce(
            CASE WHEN json_valid(jwt_claims) THEN cw_ts_json(json_extract(jwt_claims, '$.exp')) END,
            cw_ts(json_extract_string(r.responseObject, '$.status.expirationTimestamp'))) AS expiry
    FROM claims
)
SELECT event_id, ts, 'issue',
    coalesce(cw_hash('k8s', json_extract_string(r.annotations, '$."authentication.kubernetes.io/issued-credential-id"')),
             cw_hash('k8s-audit', r.auditID ->> '$')),
    CASE WHEN by_kubelet THEN 'k8s_kubelet_token' ELSE 'k8s_sa_token' END,
    'system:serviceaccount:' || coalesce(r.objectRef.namespace, '') || ':' || coalesce(r.objectRef.name, ''),
    coalesce(nullif(regexp_extract(bound_pod, $k8s_pod_pattern, $k8s_agent_group), ''), r.objectRef.name),
    nullif(regexp_extract(bound_pod, $k8s_pod_pattern, $k8s_task_group), ''),
    CASE WHEN nullif(regexp_extract(bound_pod, $k8s_pod_pattern, $k8s_task_group), '') IS NOT NULL THEN 'k8s_bound_pod' END,
    credential_id,
    cw_str_list(json_extract(r.requestObject, '$.spec.audiences')),
    coalesce(try(date_diff('second', ts, expiry)), requested_ttl), ts, coalesce(expiry, cw_plus_seconds(ts, requested_ttl)),
    r.sourceIPs[1], 'ok', NULL, NULL,
    'k8s', source_file, source_offset, source_line, source_record
FROM expiring;
