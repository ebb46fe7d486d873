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

-- Credentials whose issue carries a task tag, where some row still holds the task read from the
-- session's name instead. Both the tagged task and the one the rows leave are rebuilt.
CREATE OR REPLACE TEMP TABLE tagged_credential_owner AS
WITH tagged AS (
    SELECT credential_id, arg_min(task_id, ts) AS task_id
    FROM credential_events WHERE event_type = 'issue' AND task_source = 'sts_session_tag'
    GROUP BY credential_id
), disagreeing AS (
    SELECT credential_id, task_id FROM agent_actions WHERE task_source = 'sts_session_name'
    UNION ALL
    SELECT credential_id, task_id FROM credential_events WHERE task_source = 'sts_session_name' AND event_type <> 'issue'
)
SELECT DISTINCT t.credential_id, t.task_id, d.task_id AS old_task_id
FROM tagged t JOIN disagreeing d ON d.credential_id = t.credential_id AND d.task_id <> t.task_id;

INSERT INTO linked_tasks SELECT task_id FROM tagged_credential_owner UNION SELECT old_task_id FROM tagged_credential_owner;
