-- Revocable credentials that were never revoked: they ran until expiry, or they are still open or
-- valid more than $grace_s seconds after their task ended. A Vault lease or child token whose
-- parent token was revoked counts as revoked (Vault revokes the children with the parent).
WITH issue_events AS (
    SELECT credential_id, list(event_id ORDER BY ts, event_id) AS ids
    FROM credential_events WHERE event_type = 'issue' GROUP BY credential_id
)
SELECT c.credential_id AS entity_id, c.agent_id, c.task_id, c.credential_id,
    c.issued_at AS first_seen,
    coalesce(least(c.validity_end, c.as_of), c.as_of) AS last_seen,
    coalesce(i.ids, []) AS evidence_event_ids,
    c.credential_kind || ' never revoked: '
        || CASE WHEN c.ended_by = 'expired' THEN 'ran until it expired at ' || strftime(c.validity_end, '%Y-%m-%d %H:%M:%S')
                ELSE 'still ' || c.ended_by || ' ' || CAST(round(c.validity_after_task_s) AS BIGINT)
                     || ' s after task ' || c.task_id || ' ended' END
        || CASE WHEN c.task_ended_at IS NOT NULL AND c.ended_by = 'expired'
                THEN ' (' || CAST(round(c.validity_after_task_s) AS BIGINT) || ' s after task ' || c.task_id || ' ended)'
                ELSE '' END AS detail
FROM credential_lifecycles c
LEFT JOIN credential_lifecycles p ON p.credential_id = c.parent_credential_id
LEFT JOIN issue_events i ON i.credential_id = c.credential_id
WHERE c.issue_seen AND c.revoked_at IS NULL
  AND list_contains($revocable_kinds, c.credential_kind)
  AND NOT (c.credential_kind IN ('vault_token', 'vault_lease') AND p.revoked_at IS NOT NULL
           AND p.credential_kind = 'vault_token')
  AND (c.ended_by = 'expired'
       OR (c.ended_by IN ('open', 'valid') AND c.task_ended_at IS NOT NULL
           AND list_contains($end_sources, c.task_end_source)
           AND c.as_of > c.task_ended_at + to_seconds(CAST($grace_s AS BIGINT))))
