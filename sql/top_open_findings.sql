-- The $limit most urgent open findings with their first evidence events.
SELECT finding_id, severity, priority, rule_id, coalesce(task_id, '-') AS task_id,
       coalesce(agent_id, '-') AS agent_id, left(detail, 70) AS detail,
       array_to_string(evidence_event_ids[1:4], ' ') AS first_evidence
FROM findings
WHERE status IN ('new', 'in_progress')
ORDER BY priority DESC NULLS LAST, risk_score DESC, last_seen DESC, finding_id
LIMIT $limit
