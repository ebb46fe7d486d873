-- HashiCorp Vault audit log (file device): one JSON object per line, a "request" and a
-- "response" entry per request sharing request.id. Tokens and accessors arrive HMAC'd by Vault;
-- we key-hash those values again, so the same token links issue, uses, renewals and revocation.
-- The KMIP secrets engine writes `kmip-request` / `kmip-response` entries of the same shape.

CREATE OR REPLACE TEMP TABLE v_typed AS
SELECT source_file, unit_line AS source_line, unit_offset AS source_offset, 0 AS source_record, j AS rec,
    CASE WHEN json_type(j) = 'OBJECT' THEN json_transform(j, '{
        "time":"JSON","type":"JSON","error":"VARCHAR",
        "auth":{"client_token":"VARCHAR","accessor":"VARCHAR","display_name":"VARCHAR",
                "policies":"JSON","token_policies":"JSON","metadata":"JSON","entity_id":"VARCHAR",
                "token_ttl":"VARCHAR","token_issue_time":"VARCHAR"},
        "request":"JSON",
        "response":{"auth":{"client_token":"VARCHAR","accessor":"VARCHAR","display_name":"VARCHAR",
                "policies":"JSON","token_policies":"JSON","metadata":"JSON","entity_id":"VARCHAR",
                "ttl":"VARCHAR","token_ttl":"VARCHAR","lease_duration":"VARCHAR","token_issue_time":"VARCHAR"},
            "secret":{"lease_id":"VARCHAR"},"data":"JSON","lease_duration":"VARCHAR"}}') END AS r,
    -- A top-level key one typo away from a key Vault writes (`requst`, `typ`, `respnse`, `eror`):
    -- without this, a misspelt response or error would load as a bare, successful request.
    CASE WHEN json_type(j) = 'OBJECT' THEN list_filter(list_transform(json_keys(j), k ->
        CASE WHEN NOT list_contains(['time', 'type', 'auth', 'request', 'response', 'error', 'forwarded_from', 'forwarded'], k)
             THEN k || ' (expected ' || list_filter(['time', 'type', 'auth', 'request', 'response', 'error'],
                 m -> damerau_levenshtein(lower(k), m) <= CASE WHEN length(m) >= 6 THEN 2 ELSE 1 END)[1] || ')' END),
        x -> x IS NOT NULL)[1] END AS misspelt_key
FROM unit_json WHERE source_format = 'vault';

CREATE OR REPLACE TEMP TABLE v_valid AS
SELECT *,
    cw_ts(r.time ->> '$') AS ts,
    (r.type ->> '$') AS entry_type,
    (r.type ->> '$') IN ('response', 'kmip-response') AS is_response,
    CASE WHEN json_type(r.request) = 'OBJECT' THEN json_transform(r.request,
        '{"id":"JSON","operation":"VARCHAR","path":"JSON","mount_type":"VARCHAR","mount_point":"VARCHAR",
          "data":"JSON","remote_address":"VARCHAR","client_token":"VARCHAR"}') END AS q,
    CASE WHEN json_type(rec) <> 'OBJECT' THEN 'record is not a JSON object (got ' || cw_json_kind(rec) || ')'
         ELSE coalesce(
            'misspelt top-level key: ' || misspelt_key,
            cw_string_problem('type', r.type, true),
            CASE WHEN (r.type ->> '$') NOT IN ('request', 'response', 'kmip-request', 'kmip-response')
                 THEN 'unknown Vault audit entry type: ' || left(r.type ->> '$', 40) END,
            cw_ts_problem('time', r.time, cw_ts(r.time ->> '$')),
            CASE WHEN r.request IS NULL OR json_type(r.request) = 'NULL' THEN 'missing required field request'
                 WHEN json_type(r.request) <> 'OBJECT'
                 THEN 'wrong type for request: expected object, got ' || cw_json_kind(r.request) END,
            cw_string_problem('request.id', (r.request -> 'id'), true),
            -- KMIP operations arrive on the engine's own listener: the mount names them, not a path.
            cw_string_problem('request.path', (r.request -> 'path'), NOT starts_with(r.type ->> '$', 'kmip-')))
    END AS reason
FROM v_typed;

INSERT INTO p_records
SELECT 'vault', source_file, source_line, source_offset, source_record,
    CASE WHEN reason IS NULL THEN 'vault:' || (q.id ->> '$')
         ELSE 'reject:' || cw_keyed('reject:vault', rec::VARCHAR) END,
    CASE WHEN is_response THEN 0 ELSE 1 END,
    reason,
    CASE WHEN reason IS NOT NULL THEN left(cw_redact(left(rec::VARCHAR, 65536)), $reject_text_chars) END,
    strlen(rec::VARCHAR)
FROM v_valid;

CREATE OR REPLACE TEMP TABLE v_ok AS
SELECT source_file, source_line, source_offset, source_record, ts, entry_type, r, q,
    'vault:' || (q.id ->> '$') AS event_id,
    coalesce(nullif(q.path ->> '$', ''), nullif(rtrim(q.mount_point, '/'), ''), 'kmip') AS path,
    starts_with(entry_type, 'kmip-') AS is_kmip,
    coalesce(q.operation, 'unknown') AS operation,
    -- A denied request may name its token only in request.client_token: the same HMAC, so the
    -- same credential id.
    cw_hash('vault', coalesce(nullif(r.auth.client_token, ''), q.client_token)) AS token_id,
    -- In a login response the top-level auth block describes the token just issued, not a caller.
    r.auth.client_token IS NOT NULL AND r.auth.client_token IS NOT DISTINCT FROM r.response.auth.client_token AS auth_is_new_token,
    coalesce(cw_first_key(r.auth.metadata, $vault_agent_keys),
             cw_first_key(r.response.auth.metadata, $vault_agent_keys),
             r.auth.display_name, r.response.auth.display_name) AS agent_id,
    coalesce(cw_first_key(r.auth.metadata, $vault_task_keys),
             cw_first_key(r.response.auth.metadata, $vault_task_keys)) AS task_id,
    CASE WHEN NOT is_response THEN 'unknown'
         WHEN r.error IS NULL OR r.error = '' THEN 'ok'
         WHEN regexp_matches(r.error, '(?i)permission denied|unauthorized|forbidden') THEN 'denied'
         ELSE 'error' END AS outcome,
    is_response AND (r.error IS NULL OR r.error = '') AS succeeded,
    -- The token's own lifetime, stated by every request made with it (0: a token without TTL).
    cw_ts(r.auth.token_issue_time) AS auth_issued_at,
    try_cast(r.auth.token_ttl AS BIGINT) AS auth_ttl,
    -- Credential issuance by secrets engines: PKI certificates and SSH certificates / credentials.
    CASE WHEN (q.mount_type = 'pki' OR regexp_matches(q.path ->> '$', '^pki[^/]*/'))
              AND regexp_matches(q.path ->> '$', '/(issue/[^/]+|sign/[^/]+|sign-verbatim(/[^/]+)?)$') THEN 'vault_certificate'
         WHEN (q.mount_type = 'ssh' OR regexp_matches(q.path ->> '$', '^ssh[^/]*/'))
              AND regexp_matches(q.path ->> '$', '/(sign|creds)/[^/]+$') THEN 'vault_ssh_certificate'
    END AS issued_kind
FROM v_valid WHERE reason IS NULL;

INSERT INTO p_actions
SELECT event_id, ts, agent_id, task_id, CASE WHEN task_id IS NOT NULL THEN 'vault_metadata' END,
    NULL, NULL, NULL,
    CASE WHEN is_kmip THEN 'vault.kmip.' || lower(operation)
         WHEN regexp_matches(path, '^auth/token/create') THEN 'vault.token.create'
         WHEN regexp_matches(path, '^auth/[^/]+/login') OR regexp_matches(path, '^auth/[^/]+/(role/[^/]+/)?login$') THEN 'vault.login'
         WHEN regexp_matches(path, '/revoke') THEN 'vault.revoke'
         WHEN regexp_matches(path, '/renew') THEN 'vault.renew'
         ELSE 'vault.' || operation END,
    'vault:' || coalesce(nullif(rtrim(q.mount_point, '/'), ''), split_part(path, '/', 1)),
    CASE WHEN is_kmip THEN NULL
         WHEN starts_with(path, 'auth/') OR starts_with(path, 'sys/leases/') OR regexp_matches(path, '^sys/(revoke|renew)')
              OR issued_kind IS NOT NULL
              THEN 'credential'
         WHEN starts_with(path, 'sys/') THEN 'admin'
         WHEN operation IN ('read', 'list') THEN 'read'
         WHEN operation IN ('create', 'update') THEN 'write'
         WHEN operation = 'delete' THEN 'delete' END,
    path,
    CASE WHEN operation IN ('read', 'list', 'update', 'create')
              AND (q.mount_type IN ('kv', 'database', 'aws', 'gcp', 'azure', 'pki', 'transit', 'ssh', 'totp')
                   OR regexp_matches(path, '(?i)secret|creds|password|credential')) THEN 'high' END,
    NULL, NULL, NULL, NULL,
    outcome, CASE WHEN outcome IN ('error', 'denied') THEN left(cw_redact(r.error), 200) END, NULL,
    token_id, q.remote_address, cw_redact(q.data::VARCHAR), NULL,
    'vault', source_file, source_offset, source_line, source_record
FROM v_ok;

-- Every request made with a token is a use of it. Its auth block states the token's issue time,
-- TTL, policies and metadata: credential_lifecycles takes them from the first use when the
-- token's login or creation is not in the warehouse.
INSERT INTO p_creds
SELECT event_id, ts, 'use', token_id, 'vault_token', coalesce(r.auth.display_name, r.auth.entity_id), agent_id, task_id,
    CASE WHEN task_id IS NOT NULL THEN 'vault_metadata' END, NULL,
    cw_str_list(coalesce(r.auth.token_policies, r.auth.policies)), auth_ttl, auth_issued_at,
    CASE WHEN auth_ttl > 0 THEN cw_plus_seconds(auth_issued_at, auth_ttl) END,
    q.remote_address, outcome, NULL, NULL,
    'vault', source_file, source_offset, source_line, source_record
FROM v_ok WHERE token_id IS NOT NULL AND NOT auth_is_new_token;

-- Token issuance: logins and token creation (a renewal's response repeats the auth block).
INSERT INTO p_creds
WITH issued AS (
    SELECT *, coalesce(try_cast(r.response.auth.token_ttl AS BIGINT), try_cast(r.response.auth.ttl AS BIGINT),
                       try_cast(r.response.auth.lease_duration AS BIGINT)) AS ttl,
              coalesce(cw_ts(r.response.auth.token_issue_time), ts) AS issued
    FROM v_ok
    WHERE succeeded AND r.response.auth.client_token IS NOT NULL AND NOT regexp_matches(path, '/renew')
)
SELECT event_id, ts, 'issue', cw_hash('vault', r.response.auth.client_token), 'vault_token',
    coalesce(r.response.auth.display_name, r.response.auth.entity_id),
    coalesce(cw_first_key(r.response.auth.metadata, $vault_agent_keys), r.response.auth.display_name),
    cw_first_key(r.response.auth.metadata, $vault_task_keys),
    CASE WHEN cw_first_key(r.response.auth.metadata, $vault_task_keys) IS NOT NULL THEN 'vault_metadata' END,
    CASE WHEN NOT auth_is_new_token THEN token_id END,
    cw_str_list(coalesce(r.response.auth.token_policies, r.response.auth.policies)),
    ttl, issued, CASE WHEN ttl > 0 THEN cw_plus_seconds(issued, ttl) END, q.remote_address, 'ok', NULL, NULL,
    'vault', source_file, source_offset, source_line, source_record
FROM issued;

-- Certificates and SSH credentials issued by the pki and ssh engines (`issue`, `sign`, `creds`):
-- the lease id, else the serial number (HMAC'd by Vault), else the request names the credential.
-- The lifetime: the certificate's `expiration` (epoch seconds; numbers are not HMAC'd), else the
-- requested `ttl` when it parses (seconds or a duration such as 72h or 1h30m; HMAC'd strings do not).
INSERT INTO p_creds
WITH certs AS (
    SELECT v.*,
        CASE WHEN json_type(r.response.data -> 'expiration') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
             THEN cw_epoch_us(try_cast(r.response.data -> 'expiration' AS DOUBLE) * 1000000) END AS cert_expires,
        trim(coalesce(json_extract_string(q.data, '$.ttl'), '')) AS ttl_text
    FROM v_ok v WHERE succeeded AND issued_kind IS NOT NULL
), with_ttl AS (
    SELECT *,
        CASE WHEN regexp_full_match(ttl_text, '[0-9]+') THEN try_cast(ttl_text AS BIGINT)
             WHEN ttl_text <> '' AND regexp_full_match(ttl_text, '([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?')
             THEN coalesce(try_cast(nullif(regexp_extract(ttl_text, '([0-9]+)d', 1), '') AS BIGINT), 0) * 86400
                + coalesce(try_cast(nullif(regexp_extract(ttl_text, '([0-9]+)h', 1), '') AS BIGINT), 0) * 3600
                + coalesce(try_cast(nullif(regexp_extract(ttl_text, '([0-9]+)m', 1), '') AS BIGINT), 0) * 60
                + coalesce(try_cast(nullif(regexp_extract(ttl_text, '([0-9]+)s', 1), '') AS BIGINT), 0) END
            AS requested_ttl
    FROM certs
)
SELECT event_id, ts, 'issue',
    cw_hash('vault', coalesce(nullif(r.response.secret.lease_id, ''),
                              nullif(json_extract_string(r.response.data, '$.serial_number'), ''),
                              'request:' || event_id)),
    issued_kind, path, agent_id, task_id,
    CASE WHEN task_id IS NOT NULL THEN 'vault_metadata' END, token_id, [path],
    CASE WHEN cert_expires IS NOT NULL THEN CAST(epoch(cert_expires) - epoch(ts) AS BIGINT) ELSE requested_ttl END,
    ts, coalesce(cert_expires, cw_plus_seconds(ts, requested_ttl)), q.remote_address, 'ok', NULL, NULL,
    'vault', source_file, source_offset, source_line, source_record
FROM with_ttl;

INSERT INTO p_aliases
SELECT cw_hash('vault-accessor', r.response.auth.accessor), cw_hash('vault', r.response.auth.client_token)
FROM v_ok
WHERE succeeded AND r.response.auth.client_token IS NOT NULL AND r.response.auth.accessor IS NOT NULL;

-- Dynamic secrets: a lease. Its TTL is not in the audit log; it comes from configuration.
INSERT INTO p_creds
WITH leases AS (
    SELECT v.*, r.response.secret.lease_id AS lease_id
    FROM v_ok v WHERE succeeded AND r.response.secret.lease_id IS NOT NULL AND r.response.secret.lease_id <> ''
      AND NOT regexp_matches(path, '/renew') AND issued_kind IS NULL
), with_ttl AS (
    SELECT l.*, t.ttl_s AS ttl
    FROM leases l LEFT JOIN cw_vault_lease_ttls t ON starts_with(l.lease_id, t.prefix)
    QUALIFY row_number() OVER (PARTITION BY l.source_file, l.source_line ORDER BY length(t.prefix) DESC NULLS LAST) = 1
)
SELECT event_id, ts, 'issue', cw_hash('vault', lease_id), 'vault_lease',
    regexp_replace(lease_id, '/[^/]*$', ''), agent_id, task_id,
    CASE WHEN task_id IS NOT NULL THEN 'vault_metadata' END, token_id,
    [regexp_replace(lease_id, '/[^/]*$', '')], ttl, ts, cw_plus_seconds(ts, ttl), q.remote_address, 'ok', NULL, NULL,
    'vault', source_file, source_offset, source_line, source_record
FROM with_ttl;

-- Renewals and revocations, by token (HMAC'd in request.data), accessor, lease id or prefix.
INSERT INTO p_creds
WITH lifecycle AS (
    SELECT v.*,
        CASE WHEN regexp_matches(path, '/renew') THEN 'renew' ELSE 'revoke' END AS event_type,
        CASE WHEN regexp_matches(path, '^auth/token/(revoke|renew)-self') THEN 'self'
             WHEN regexp_matches(path, '^auth/token/(revoke|renew)-accessor') THEN 'accessor'
             WHEN regexp_matches(path, '^auth/token/(revoke|renew)') THEN 'token'
             WHEN regexp_matches(path, '^sys/(leases/)?revoke-(prefix|force)') THEN 'prefix'
             WHEN regexp_matches(path, '^sys/(leases/)?(revoke|renew)') THEN 'lease' END AS target,
        coalesce(nullif(regexp_extract(path, '^sys/(?:leases/)?(?:revoke|renew)/(.+)$', 1), ''),
                 json_extract_string(q.data, '$.lease_id')) AS lease_ref,
        nullif(regexp_extract(path, '^sys/(?:leases/)?revoke-(?:prefix|force)/(.+)$', 1), '') AS prefix_ref
    FROM v_ok v
    WHERE succeeded AND (regexp_matches(path, '^auth/token/(revoke|renew)') OR regexp_matches(path, '^sys/(leases/)?(revoke|renew)'))
)
SELECT event_id, ts, event_type,
    CASE target WHEN 'self' THEN token_id
                WHEN 'token' THEN cw_hash('vault', json_extract_string(q.data, '$.token'))
                WHEN 'lease' THEN cw_hash('vault', lease_ref) END,
    CASE WHEN target IN ('lease', 'prefix') THEN 'vault_lease' ELSE 'vault_token' END,
    NULL, agent_id, NULL, NULL, NULL, NULL,
    CASE WHEN event_type = 'renew' THEN coalesce(try_cast(r.response.auth.ttl AS BIGINT),
        try_cast(r.response.auth.token_ttl AS BIGINT), try_cast(r.response.lease_duration AS BIGINT)) END,
    NULL,
    CASE WHEN event_type = 'renew' THEN cw_plus_seconds(ts, coalesce(try_cast(r.response.auth.ttl AS BIGINT),
        try_cast(r.response.auth.token_ttl AS BIGINT), try_cast(r.response.lease_duration AS BIGINT))) END,
    q.remote_address, 'ok',
    CASE WHEN target = 'accessor' THEN cw_hash('vault-accessor', json_extract_string(q.data, '$.accessor')) END,
    CASE WHEN target = 'prefix' THEN rtrim(prefix_ref, '/') || '/' END,
    'vault', source_file, source_offset, source_line, source_record
FROM lifecycle WHERE target IS NOT NULL;
