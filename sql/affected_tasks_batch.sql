-- Tasks touched by the batch just committed (plus those the linking step changed).

CREATE OR REPLACE TEMP TABLE affected_tasks AS
SELECT DISTINCT task_id FROM (
    SELECT task_id FROM p_actions_classified
    UNION ALL SELECT task_id FROM p_creds_resolved
    UNION ALL SELECT task_id FROM p_task_events
    UNION ALL SELECT task_id FROM p_spans
    UNION ALL SELECT task_id FROM linked_tasks
) WHERE task_id IS NOT NULL;

