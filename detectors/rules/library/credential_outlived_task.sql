-- Credentials still usable more than $grace_s seconds after their task ended. STS sessions (and
-- the sessions AWS issues itself) and Kubernetes tokens cannot be revoked one by one: their TTL is the only control, so they get the
-- larger allowance $grace_unrevocable_s.
SELECT credential_id AS entity_id, agent_id, task_id, credential_id,
    task_ended_at AS first_seen,
    coalesce(least(validity_end, as_of), as_of) AS last_seen,
    [] :: VARCHAR[] AS evidence_event_ids,
    credential_kind || ' stayed usable ' || CAST(round(validity_after_task_s) AS BIGINT) || ' s after task '
        || task_id || ' ended (' || ended_by || CASE WHEN validity_end_known THEN '' ELSE ', no expiry known' END || ')'
        AS detail
FROM credential_lifecycles
WHERE task_id IS NOT NULL AND task_ended_at IS NOT NULL AND issue_seen
  -- A lease or child token that ends with its parent token is covered by the parent's finding.
  AND NOT ended_with_parent
  AND validity_after_task_s > CASE WHEN credential_kind IN ('sts_session', 'aws_instance_session', 'aws_service_session',
                                                           'k8s_sa_token', 'k8s_kubelet_token')
                                   THEN $grace_unrevocable_s ELSE $grace_s END
