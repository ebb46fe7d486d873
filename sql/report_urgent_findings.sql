-- The most urgent open findings, in the order of findings_open (priority, risk, recency).
SELECT priority, severity, risk_score, rule_id, title, agent_id, task_id, last_seen, detail
FROM findings_open
ORDER BY priority DESC NULLS LAST, risk_score DESC, last_seen DESC, finding_id
LIMIT $limit
