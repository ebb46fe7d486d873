-- Actions made with a credential inherit the task (and agent, if unknown) of that credential.
-- Needs credential_owner.sql first.

UPDATE agent_actions SET task_id = o.task_id, task_source = 'credential',
    agent_id = coalesce(agent_actions.agent_id, o.agent_id)
FROM credential_owner o
WHERE agent_actions.task_id IS NULL AND agent_actions.credential_id = o.credential_id
  AND o.task_id IS NOT NULL;

-- A session tag on the issue is explicit; it beats the task read from the session's name.
UPDATE agent_actions SET task_id = o.task_id, task_source = 'credential'
FROM (SELECT DISTINCT credential_id, task_id FROM tagged_credential_owner) o
WHERE agent_actions.task_source = 'sts_session_name' AND agent_actions.credential_id = o.credential_id
  AND agent_actions.task_id <> o.task_id;
