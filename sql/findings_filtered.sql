-- Findings matching the optional filters (a NULL parameter means no filter), most urgent first:
-- `chainwatch findings`. Only these fixed columns are compared; the values are bound.
SELECT finding_id, rule_id, severity, priority, risk_score, status, agent_id, task_id,
       credential_id, first_seen, last_seen, analytic_type, anomaly_percentile,
       evidence_event_ids, detail, explanation
FROM findings
WHERE (CAST($severity AS VARCHAR) IS NULL OR severity = $severity)
  AND (CAST($rule_id AS VARCHAR) IS NULL OR rule_id = $rule_id)
  AND (CAST($agent_id AS VARCHAR) IS NULL OR agent_id = $agent_id)
  AND (CAST($status AS VARCHAR) IS NULL OR status = $status)
  AND (CAST($since AS VARCHAR) IS NULL OR last_seen >= CAST($since AS TIMESTAMP))
ORDER BY priority DESC NULLS LAST, risk_score DESC, last_seen DESC, finding_id
