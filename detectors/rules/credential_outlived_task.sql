-- Credentials still usable more than $grace_s seconds after their task ended.
SELECT credential_id AS entity_id, agent_id, task_id, credential_id,
    task_ended_at AS first_seen,
    coalesce(least(validity_end, as_of), as_of) AS last_seen,
    [] :: VARCHAR[] AS evidence_event_ids,
    credential_kind || ' stayed usable ' || CAST(round(validity_after_task_s) AS BIGINT) || ' s after task '
        || task_id || ' ended (' || ended_by || CASE WHEN validity_end_known THEN '' ELSE ', no expiry known' END || ')'
        AS detail
FROM credential_lifecycles
WHERE task_id IS NOT NULL AND task_ended_at IS NOT NULL AND issue_seen
  AND validity_after_task_s > $grace_s
