-- Credentials that stayed usable after their task ended, longest first.
SELECT credential_id, credential_kind, agent_id, task_id, task_ended_at, validity_end, ended_by,
    round(validity_after_task_s / 3600.0, 2) AS hours_after_task, uses_after_task_end
FROM credential_lifecycles
WHERE validity_after_task_s > 0
ORDER BY validity_after_task_s DESC, credential_id
LIMIT $limit
