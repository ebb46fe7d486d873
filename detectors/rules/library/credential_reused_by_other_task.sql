-- Credentials issued for one task and used by another task of the same agent.
-- A use belongs to another task when its own record names that task, or, for sources that only
-- know the credential's task (Vault metadata, STS session names), when it happened outside its
-- task's run and within $match_window_s seconds of a tool call the agent made in another task.
-- Uses by other agents are reported by credential_shared_across_agents, not here.
WITH uses AS (
    SELECT credential_id, event_id, ts, task_id, agent_id FROM credential_events WHERE event_type = 'use'
    UNION
    SELECT credential_id, event_id, ts, task_id, agent_id FROM agent_actions WHERE credential_id IS NOT NULL
), owned AS (
    SELECT u.*, c.task_id AS own_task, coalesce(c.agent_id, u.agent_id) AS owner_agent,
        c.credential_kind, t.started_at, t.ended_at
    FROM uses u
    JOIN credential_lifecycles c ON c.credential_id = u.credential_id
    LEFT JOIN tasks t ON t.task_id = c.task_id
    WHERE c.task_id IS NOT NULL
), tool_calls AS (
    SELECT event_id, ts, agent_id, task_id FROM agent_actions
    WHERE list_contains($tool_sources, source_format) AND task_id IS NOT NULL AND agent_id IS NOT NULL
), named AS (
    -- The use's own record names another task.
    SELECT credential_id, event_id, ts, task_id AS other_task, own_task, owner_agent, credential_kind
    FROM owned
    WHERE task_id IS NOT NULL AND task_id <> own_task AND coalesce(agent_id, owner_agent) = owner_agent
), correlated AS (
    -- The use sits outside its own task and next to a tool call of another task of the same agent.
    SELECT o.credential_id, o.event_id, o.ts, arg_min(tc.task_id, abs(epoch(tc.ts) - epoch(o.ts))) AS other_task,
        any_value(o.own_task) AS own_task, any_value(o.owner_agent) AS owner_agent,
        any_value(o.credential_kind) AS credential_kind
    FROM owned o
    JOIN tool_calls tc ON tc.agent_id = o.owner_agent AND tc.task_id <> o.own_task
        AND tc.ts BETWEEN o.ts - to_seconds(CAST($match_window_s AS DOUBLE))
                      AND o.ts + to_seconds(CAST($match_window_s AS DOUBLE))
    WHERE o.started_at IS NOT NULL AND o.ended_at IS NOT NULL
      AND (o.ts < o.started_at - to_seconds(CAST($grace_s AS BIGINT))
           OR o.ts > o.ended_at + to_seconds(CAST($grace_s AS BIGINT)))
    GROUP BY o.credential_id, o.event_id, o.ts
), other_uses AS (
    SELECT * FROM named
    UNION ALL
    SELECT * FROM correlated WHERE event_id NOT IN (SELECT event_id FROM named)
), per_task AS (
    SELECT credential_id, other_task, any_value(own_task) AS own_task, any_value(owner_agent) AS owner_agent,
        any_value(credential_kind) AS credential_kind, min(ts) AS first_ts, max(ts) AS last_ts,
        arg_min(event_id, (ts, event_id)) AS first_event, count(DISTINCT event_id) AS n_uses
    FROM other_uses GROUP BY credential_id, other_task
)
SELECT credential_id AS entity_id, any_value(owner_agent) AS agent_id, any_value(own_task) AS task_id,
    credential_id, min(first_ts) AS first_seen, max(last_ts) AS last_seen,
    list(first_event ORDER BY first_ts, first_event) AS evidence_event_ids,
    any_value(credential_kind) || ' issued for task ' || any_value(own_task) || ' used by '
        || count(*) || ' other task(s) of the same agent: '
        || string_agg(other_task || ' (' || n_uses || ' use(s))', ', ' ORDER BY first_ts) AS detail
FROM per_task
GROUP BY credential_id
