-- Tasks with any activity on the days in temp table target_days(day), plus those the linking step changed.

CREATE OR REPLACE TEMP TABLE affected_tasks AS
SELECT DISTINCT task_id FROM (
    SELECT task_id FROM agent_actions WHERE day IN (SELECT day FROM target_days)
    UNION ALL SELECT task_id FROM credential_events WHERE day IN (SELECT day FROM target_days)
    UNION ALL SELECT task_id FROM task_events WHERE day IN (SELECT day FROM target_days)
    UNION ALL SELECT task_id FROM agent_spans WHERE day IN (SELECT day FROM target_days)
    UNION ALL SELECT task_id FROM linked_tasks
) WHERE task_id IS NOT NULL;
