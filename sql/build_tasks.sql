-- Rebuild the rows of `tasks` named in temp table affected_tasks(task_id) from the canonical tables:
-- explicit start/end events first, then invoke_agent span bounds, then first/last activity.

DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM affected_tasks);

INSERT INTO tasks
WITH acts AS (
    SELECT task_id, mode(agent_id) AS agent_id, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS actions
    FROM agent_actions WHERE task_id IN (SELECT task_id FROM affected_tasks) GROUP BY task_id
), spans AS (
    SELECT task_id, mode(agent_id) AS agent_id, min(ts) AS first_ts, max(coalesce(end_ts, ts)) AS last_ts
    FROM agent_spans WHERE operation = 'invoke_agent' AND task_id IN (SELECT task_id FROM affected_tasks)
    GROUP BY task_id
), creds AS (
    SELECT task_id, count(DISTINCT credential_id) AS issued, min(ts) AS first_ts, mode(agent_id) AS agent_id
    FROM credential_events WHERE event_type = 'issue' AND task_id IN (SELECT task_id FROM affected_tasks)
    GROUP BY task_id
), te AS (
    SELECT task_id,
        arg_min(agent_id, ts) FILTER (WHERE agent_id IS NOT NULL) AS agent_id,
        min(ts) FILTER (WHERE event_type = 'start') AS started,
        max(ts) FILTER (WHERE event_type = 'end') AS ended,
        arg_max(status, ts) FILTER (WHERE event_type = 'end') AS status,
        arg_max(approved_by, ts) FILTER (WHERE event_type = 'approval') AS approved_by,
        max(ts) FILTER (WHERE event_type = 'approval') AS approved_at,
        arg_max(approved_scope, ts) FILTER (WHERE event_type = 'approval') AS approved_scope,
        arg_max(approval_expires_at, ts) FILTER (WHERE event_type = 'approval') AS approval_expires_at,
        min(ts) AS first_ts, max(ts) AS last_ts
    FROM task_events WHERE task_id IN (SELECT task_id FROM affected_tasks) GROUP BY task_id
)
SELECT t.task_id,
    coalesce(te.agent_id, spans.agent_id, acts.agent_id, creds.agent_id),
    coalesce(te.started, spans.first_ts, least(acts.first_ts, creds.first_ts, te.first_ts)),
    coalesce(te.ended, spans.last_ts, greatest(acts.last_ts, creds.first_ts, te.last_ts)),
    CASE WHEN te.started IS NOT NULL THEN 'task_event' WHEN spans.first_ts IS NOT NULL THEN 'agent_span'
         ELSE 'first_activity' END,
    CASE WHEN te.ended IS NOT NULL THEN 'task_event' WHEN spans.last_ts IS NOT NULL THEN 'agent_span'
         ELSE 'last_activity' END,
    coalesce(te.status, 'unknown'),
    coalesce(acts.actions, 0), coalesce(creds.issued, 0),
    te.approved_by, te.approved_at, te.approved_scope, te.approval_expires_at,
    $now
FROM affected_tasks t
LEFT JOIN acts USING (task_id) LEFT JOIN spans USING (task_id)
LEFT JOIN creds USING (task_id) LEFT JOIN te USING (task_id);
