-- Persistence: IAM access keys or console passwords (login profiles) created for a user other
-- than the caller. The target user is the action's destination (CloudTrail
-- requestParameters.userName); a call without one acts on the caller itself and is not counted.
-- The caller is the action's agent (for an IAM user, its user name). Successful calls only.
WITH made AS (
    SELECT event_id, ts, agent_id, task_id, credential_id, tool, destination AS target_user
    FROM agent_actions
    WHERE system = 'iam.amazonaws.com' AND list_contains($credential_tools, tool) AND outcome = 'ok'
      AND destination IS NOT NULL AND destination <> ''
      AND lower(destination) IS DISTINCT FROM lower(agent_id)
)
SELECT coalesce(agent_id, credential_id, 'unknown') AS entity_id, any_value(agent_id) AS agent_id,
    any_value(task_id) AS task_id, any_value(credential_id) AS credential_id,
    min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    coalesce(any_value(agent_id), 'an unknown caller') || ' created credentials for other user(s): '
        || array_to_string(list(tool || ' for ' || target_user ORDER BY ts, event_id), ', ') AS detail
FROM made
GROUP BY coalesce(agent_id, credential_id, 'unknown')
