-- The evidence event ids of a task's findings, one list per finding.
SELECT evidence_event_ids FROM findings WHERE task_id = $task_id
