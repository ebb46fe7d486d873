-- Credentials used successfully more than $grace_s seconds after their known expiry
-- (credential_lifecycles.expires_at: the latest renewal's, else the issue's, else the first
-- use's stated issue time + TTL). A denied or failed use is the expiry being enforced: not counted.
WITH uses AS (
    SELECT credential_id, event_id, ts FROM credential_events
    WHERE event_type = 'use' AND coalesce(outcome, 'ok') NOT IN ('denied', 'error')
    UNION
    SELECT credential_id, event_id, ts FROM agent_actions
    WHERE credential_id IS NOT NULL AND coalesce(outcome, 'ok') NOT IN ('denied', 'error')
)
SELECT c.credential_id AS entity_id, any_value(c.agent_id) AS agent_id, any_value(c.task_id) AS task_id,
    c.credential_id, min(u.ts) AS first_seen, max(u.ts) AS last_seen,
    list_sort(list(DISTINCT u.event_id)) AS evidence_event_ids,
    any_value(c.credential_kind) || ' used ' || count(DISTINCT u.event_id) || ' time(s) after it expired at '
        || strftime(any_value(c.expires_at), '%Y-%m-%d %H:%M:%S')
        || coalesce(' (TTL ' || CAST(any_value(c.ttl_s) AS VARCHAR) || ' s)', '') || '; last use '
        || CAST(round((epoch(max(u.ts)) - epoch(any_value(c.expires_at))) / 86400.0, 1) AS VARCHAR) || ' days past expiry'
        AS detail
FROM credential_lifecycles c
JOIN uses u ON u.credential_id = c.credential_id
WHERE c.expires_at IS NOT NULL
  AND u.ts > c.expires_at + to_seconds(CAST($grace_s AS BIGINT))
GROUP BY c.credential_id
