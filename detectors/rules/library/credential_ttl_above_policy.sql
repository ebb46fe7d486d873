-- Credentials issued (or renewed) with a lifetime above the policy maximum of their kind.
-- The lifetime is the event's ttl_s, else expires_at - issued_at (STS expiration, TokenRequest
-- expirationTimestamp); kinds without a maximum (IAM access keys) are never checked, nor kinds
-- whose maximum is null (what the platform issues itself: instance-profile and service sessions,
-- kubelet-refreshed tokens, by default).
WITH policy AS (
    SELECT * FROM (VALUES
        ('vault_token', CAST($max_ttl_vault_token_s AS BIGINT)),
        ('vault_lease', CAST($max_ttl_vault_lease_s AS BIGINT)),
        ('sts_session', CAST($max_ttl_sts_session_s AS BIGINT)),
        ('aws_instance_session', CAST($max_ttl_aws_instance_session_s AS BIGINT)),
        ('aws_service_session', CAST($max_ttl_aws_service_session_s AS BIGINT)),
        ('k8s_sa_token', CAST($max_ttl_k8s_sa_token_s AS BIGINT)),
        ('k8s_kubelet_token', CAST($max_ttl_k8s_kubelet_token_s AS BIGINT)),
        ('native_jit', CAST($max_ttl_native_jit_s AS BIGINT))
    ) AS t(credential_kind, max_ttl_s)
    WHERE max_ttl_s IS NOT NULL
), lifetimes AS (
    SELECT e.credential_id, e.event_id, e.event_type, e.ts, p.max_ttl_s,
        coalesce(e.ttl_s, CAST(epoch(e.expires_at) - epoch(coalesce(e.issued_at, e.ts)) AS BIGINT)) AS ttl_s
    FROM credential_events e
    JOIN policy p ON p.credential_kind = e.credential_kind
    WHERE e.event_type IN ('issue', 'renew')
), over AS (
    SELECT * FROM lifetimes WHERE ttl_s > max_ttl_s
)
SELECT o.credential_id AS entity_id, any_value(c.agent_id) AS agent_id, any_value(c.task_id) AS task_id,
    o.credential_id, min(o.ts) AS first_seen, max(o.ts) AS last_seen,
    list(o.event_id ORDER BY o.ts, o.event_id) AS evidence_event_ids,
    any_value(c.credential_kind) || ' granted ' || max(o.ttl_s) || ' s (policy maximum '
        || any_value(o.max_ttl_s) || ' s) in ' || count(*) || ' issue/renew event(s)' AS detail
FROM over o
JOIN credential_lifecycles c ON c.credential_id = o.credential_id
GROUP BY o.credential_id
