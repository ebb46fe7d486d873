-- Tasks whose own tool calls changed state in at least $at_least distinct systems. State changes
-- are write / delete / admin calls, and internal HTTP requests (an egress whose destination is an
-- internal URL changes state in that service; mail and chat to colleagues do not count). Only
-- the agent's tool calls (OTLP, native) count: the API audit rows they cause (CloudTrail, Vault)
-- would repeat them under a second system name.
WITH writes AS (
    SELECT task_id, system, event_id, ts, agent_id, credential_id
    FROM agent_actions
    WHERE task_id IS NOT NULL AND system IS NOT NULL AND source_format IN ('otlp', 'native')
      AND (action_class IN ('write', 'delete', 'admin')
           OR (action_class = 'egress' AND NOT external AND destination LIKE 'http%'))
), firsts AS (
    SELECT task_id, system, arg_min(event_id, (ts, event_id)) AS event_id, min(ts) AS ts
    FROM writes GROUP BY task_id, system
), per_task AS (
    SELECT task_id, mode(agent_id) AS agent_id, max(ts) AS last_ts FROM writes GROUP BY task_id
)
-- Joins, not correlated subqueries in the select list: the same SQL runs on Spark.
SELECT f.task_id AS entity_id,
    any_value(p.agent_id) AS agent_id,
    f.task_id,
    NULL AS credential_id,
    min(f.ts) AS first_seen,
    any_value(p.last_ts) AS last_seen,
    list(f.event_id ORDER BY f.ts, f.event_id) AS evidence_event_ids,
    count(*) || ' systems changed: ' || array_to_string(list(f.system ORDER BY f.system), ', ') AS detail
FROM firsts f JOIN per_task p USING (task_id)
GROUP BY f.task_id
HAVING count(*) >= $at_least
