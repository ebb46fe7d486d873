-- A task's timeline (analyst database), in time order.
SELECT ts, kind, what, system, action_class, destination, outcome,
       left(coalesce(credential_id, ''), 14) AS credential, event_id, after_task_end
FROM task_timeline
WHERE task_id = $task_id
ORDER BY ts, event_id
