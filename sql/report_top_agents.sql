-- Agents ranked by their riskiest task (task_risk.risk_score, 0..100), then by finding priority.
WITH per_agent AS (
    SELECT agent_id, max(risk_score) AS max_task_risk FROM task_risk GROUP BY agent_id
), riskiest AS (
    SELECT agent_id, task_id AS riskiest_task
    FROM task_risk
    QUALIFY row_number() OVER (PARTITION BY agent_id ORDER BY risk_score DESC NULLS LAST, task_id) = 1
)
SELECT s.agent_id, s.peer_group, s.tasks, p.max_task_risk, r.riskiest_task, s.open_findings,
    s.open_critical, s.open_high, s.open_medium, s.open_low, s.open_informational, s.max_priority,
    s.standing_credential_hours
FROM agent_summary s
LEFT JOIN per_agent p USING (agent_id)
LEFT JOIN riskiest r USING (agent_id)
ORDER BY p.max_task_risk DESC NULLS LAST, s.max_priority DESC NULLS LAST, s.open_findings DESC,
    s.agent_id
LIMIT $limit
