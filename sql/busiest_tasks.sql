-- The $limit tasks with the most actions.
SELECT task_id, agent_id, actions, started_at, ended_at, end_source, status
FROM tasks
ORDER BY actions DESC, task_id
LIMIT $limit
