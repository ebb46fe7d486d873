-- IAM access keys active longer than $max_age_days, or active and idle for $max_idle_days, as of
-- the newest event in the warehouse (as_of). A key deactivated or deleted counts as ended then.
WITH keys AS (
    SELECT c.*,
        date_diff('second', c.issued_at, coalesce(c.revoked_at, c.as_of)) / 86400.0 AS age_days,
        date_diff('second', greatest(coalesce(c.last_use, c.issued_at), c.issued_at), c.as_of) / 86400.0 AS idle_days
    FROM credential_lifecycles c
    WHERE list_contains($key_kinds, c.credential_kind) AND c.issued_at IS NOT NULL
), flagged AS (
    SELECT *,
        age_days > $max_age_days AS too_old,
        revoked_at IS NULL AND idle_days > $max_idle_days AS too_idle
    FROM keys
), evidence AS (
    SELECT e.credential_id, list(e.event_id ORDER BY e.ts, e.event_id) AS ids
    FROM credential_events e WHERE e.event_type IN ('issue', 'revoke', 'renew')
      AND e.credential_id IN (SELECT credential_id FROM flagged WHERE too_old OR too_idle)
    GROUP BY e.credential_id
)
SELECT f.credential_id AS entity_id, f.agent_id, f.task_id, f.credential_id,
    f.issued_at AS first_seen, coalesce(f.revoked_at, f.as_of) AS last_seen,
    coalesce(ev.ids, []) AS evidence_event_ids,
    f.credential_kind || coalesce(' of ' || f.principal, '') || ' '
        || CASE WHEN f.revoked_at IS NULL THEN 'active for ' ELSE 'was active for ' END
        || CAST(floor(f.age_days) AS BIGINT) || ' days'
        || CASE WHEN f.too_old THEN ' (maximum ' || $max_age_days || ')' ELSE '' END
        || CASE WHEN f.too_idle THEN '; unused for ' || CAST(floor(f.idle_days) AS BIGINT) || ' days (maximum '
                || $max_idle_days || ')' ELSE '' END AS detail
FROM flagged f LEFT JOIN evidence ev ON ev.credential_id = f.credential_id
WHERE f.too_old OR f.too_idle
