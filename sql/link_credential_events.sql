-- Uses, renewals and revocations inherit the task of the credential's issue event.
-- Needs credential_owner.sql first.

UPDATE credential_events SET task_id = o.task_id, task_source = 'credential',
    agent_id = coalesce(credential_events.agent_id, o.agent_id)
FROM credential_owner o
WHERE credential_events.task_id IS NULL AND credential_events.credential_id = o.credential_id
  AND o.task_id IS NOT NULL;

UPDATE credential_events SET task_id = o.task_id, task_source = 'credential'
FROM (SELECT DISTINCT credential_id, task_id FROM tagged_credential_owner) o
WHERE credential_events.event_type <> 'issue' AND credential_events.task_source = 'sts_session_name'
  AND credential_events.credential_id = o.credential_id AND credential_events.task_id <> o.task_id;
