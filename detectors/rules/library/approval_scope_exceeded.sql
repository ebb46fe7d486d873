-- Tasks that acted beyond their human approval: after an approval, a tool call whose tool is not
-- in the approved scope, any tool call more than $grace_s seconds after the approval expired, or a
-- use of a credential issued for the task after the approval expired. Each action is judged
-- against the latest approval of its task at or before it; actions before any approval are not.
WITH approvals AS (
    SELECT task_id, ts, event_id, approved_scope, approval_expires_at
    FROM task_events WHERE event_type = 'approval'
), calls AS (
    SELECT event_id, ts, agent_id, task_id, credential_id, tool FROM agent_actions
    WHERE task_id IS NOT NULL AND list_contains($tool_sources, source_format)
), latest_for_call AS (
    -- The latest approval at or before each call: a join and arg_max rather than an ASOF JOIN, so
    -- that the same SQL runs on Spark (ties broken by event id).
    SELECT c.event_id, arg_max(ap.event_id, (ap.ts, ap.event_id)) AS approval_id
    FROM calls c JOIN approvals ap ON ap.task_id = c.task_id AND c.ts >= ap.ts
    GROUP BY c.event_id
), judged_calls AS (
    SELECT c.*, ap.event_id AS approval_id, ap.approved_scope, ap.approval_expires_at,
        ap.approved_scope IS NOT NULL AND NOT list_contains(ap.approved_scope, c.tool) AS out_of_scope,
        ap.approval_expires_at IS NOT NULL
            AND c.ts > ap.approval_expires_at + to_seconds(CAST($grace_s AS BIGINT)) AS after_expiry,
        false AS credential_use
    FROM calls c JOIN latest_for_call l ON l.event_id = c.event_id JOIN approvals ap ON ap.event_id = l.approval_id
), uses AS (
    SELECT credential_id, event_id, ts FROM credential_events WHERE event_type = 'use'
    UNION
    SELECT credential_id, event_id, ts FROM agent_actions WHERE credential_id IS NOT NULL
), task_uses AS (
    SELECT u.event_id, u.ts, cl.agent_id, cl.task_id, u.credential_id, NULL::VARCHAR AS tool
    FROM uses u JOIN credential_lifecycles cl ON cl.credential_id = u.credential_id
    WHERE cl.task_id IS NOT NULL
), latest_for_use AS (
    SELECT t.event_id, t.credential_id, arg_max(ap.event_id, (ap.ts, ap.event_id)) AS approval_id
    FROM task_uses t JOIN approvals ap ON ap.task_id = t.task_id AND t.ts >= ap.ts
    GROUP BY t.event_id, t.credential_id
), judged_uses AS (
    SELECT t.*, ap.event_id AS approval_id, ap.approved_scope, ap.approval_expires_at,
        false AS out_of_scope, true AS after_expiry, true AS credential_use
    FROM task_uses t JOIN latest_for_use l ON l.event_id = t.event_id AND l.credential_id = t.credential_id
    JOIN approvals ap ON ap.event_id = l.approval_id
    WHERE ap.approval_expires_at IS NOT NULL
      AND t.ts > ap.approval_expires_at + to_seconds(CAST($grace_s AS BIGINT))
), hits AS (
    SELECT * FROM judged_calls WHERE out_of_scope OR after_expiry
    UNION ALL
    SELECT * FROM judged_uses WHERE event_id NOT IN (SELECT event_id FROM judged_calls WHERE out_of_scope OR after_expiry)
)
SELECT task_id AS entity_id, mode(agent_id) AS agent_id, task_id, mode(credential_id) AS credential_id,
    min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    concat_ws('; ',
        CASE WHEN count(*) FILTER (WHERE out_of_scope) > 0 THEN count(*) FILTER (WHERE out_of_scope)
             || ' call(s) outside the approved scope [' || array_to_string(any_value(approved_scope), ', ')
             || ']: ' || array_to_string(list_sort(list(DISTINCT tool) FILTER (WHERE out_of_scope)), ', ') END,
        CASE WHEN count(*) FILTER (WHERE after_expiry AND NOT credential_use) > 0
             THEN count(*) FILTER (WHERE after_expiry AND NOT credential_use) || ' call(s) after the approval expired at '
             || strftime(min(approval_expires_at), '%Y-%m-%d %H:%M:%S') END,
        CASE WHEN count(*) FILTER (WHERE credential_use) > 0
             THEN count(*) FILTER (WHERE credential_use) || ' use(s) of the task''s credential after the approval expired' END)
        AS detail
FROM hits
GROUP BY task_id
