-- Credentials renewed more than $grace_s seconds after the task they were issued for ended, for tasks
-- whose end is known from a source in $end_sources (an end inferred from last activity is not an end).
SELECT c.credential_id AS entity_id, any_value(c.agent_id) AS agent_id, any_value(c.task_id) AS task_id,
    c.credential_id, min(e.ts) AS first_seen, max(e.ts) AS last_seen,
    list(e.event_id ORDER BY e.ts, e.event_id) AS evidence_event_ids,
    any_value(c.credential_kind) || ' renewed ' || count(*) || ' time(s) after task ' || any_value(c.task_id)
        || ' ended; first ' || CAST(round(epoch(min(e.ts)) - epoch(any_value(c.task_ended_at))) AS BIGINT)
        || ' s after' || coalesce(', now valid until ' || strftime(max(e.expires_at), '%Y-%m-%d %H:%M:%S'), '')
        AS detail
FROM credential_lifecycles c
JOIN credential_events e ON e.credential_id = c.credential_id AND e.event_type = 'renew'
WHERE c.task_id IS NOT NULL AND c.task_ended_at IS NOT NULL
  AND list_contains($end_sources, c.task_end_source)
  AND e.ts > c.task_ended_at + to_seconds(CAST($grace_s AS BIGINT))
GROUP BY c.credential_id
