-- For every credential used by a row that has no task yet: the task and agent its issue event names.
-- Leaves linked_tasks: the tasks whose rows the linking steps can change.

CREATE OR REPLACE TEMP TABLE credential_owner AS
SELECT credential_id,
    arg_min(task_id, ts) FILTER (WHERE task_id IS NOT NULL) AS task_id,
    arg_min(agent_id, ts) FILTER (WHERE agent_id IS NOT NULL) AS agent_id
FROM credential_events
WHERE event_type = 'issue'
  AND credential_id IN (SELECT credential_id FROM agent_actions WHERE task_id IS NULL
                        UNION ALL SELECT credential_id FROM credential_events WHERE task_id IS NULL)
GROUP BY credential_id;


CREATE OR REPLACE TEMP TABLE linked_tasks AS
SELECT DISTINCT task_id FROM credential_owner WHERE task_id IS NOT NULL;
