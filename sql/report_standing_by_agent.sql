-- Standing-credential hours per agent: validity its credentials kept after their tasks ended.
SELECT agent_id, standing_credential_hours, credentials_outliving_task
FROM agent_summary
WHERE standing_credential_hours > 0
ORDER BY standing_credential_hours DESC, agent_id
LIMIT $limit
