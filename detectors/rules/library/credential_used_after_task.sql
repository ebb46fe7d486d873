-- Uses of a credential more than $grace_s seconds after the task it was issued for ended, for tasks
-- whose end is known from a source in $end_sources (an end inferred from last activity is not an end).
-- Uses are the credential's `use` events and the actions made with it (one row per event id);
-- the credential's own revocation request is not a use.
WITH uses AS (
    SELECT credential_id, event_id, ts FROM credential_events
    WHERE event_type = 'use'
    UNION
    SELECT credential_id, event_id, ts FROM agent_actions
    WHERE credential_id IS NOT NULL
), late AS (
    SELECT c.credential_id, c.agent_id, c.task_id, c.credential_kind, c.task_ended_at, u.event_id, u.ts
    FROM credential_lifecycles c
    JOIN uses u ON u.credential_id = c.credential_id
    WHERE c.task_id IS NOT NULL AND c.task_ended_at IS NOT NULL
      AND list_contains($end_sources, c.task_end_source)
      AND u.ts > c.task_ended_at + to_seconds(CAST($grace_s AS BIGINT))
      AND NOT EXISTS (SELECT 1 FROM credential_events r
                      WHERE r.event_id = u.event_id AND r.credential_id = u.credential_id
                        AND r.event_type = 'revoke')
)
SELECT credential_id AS entity_id, any_value(agent_id) AS agent_id, any_value(task_id) AS task_id,
    credential_id, min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    any_value(credential_kind) || ' used ' || count(*) || ' time(s) after task '
        || any_value(task_id) || ' ended; first ' || CAST(round(epoch(min(ts)) - epoch(any_value(task_ended_at))) AS BIGINT)
        || ' s after, last ' || CAST(round(epoch(max(ts)) - epoch(any_value(task_ended_at))) AS BIGINT) || ' s after'
        AS detail
FROM late
GROUP BY credential_id
