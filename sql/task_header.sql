-- One task with its risk (analyst database): the header of `chainwatch show`.
SELECT t.task_id, t.agent_id, t.started_at, t.ended_at, t.status, t.actions,
       r.risk_score, r.anomaly_percentile, r.rule_findings
FROM tasks t LEFT JOIN task_risk r USING (task_id)
WHERE t.task_id = $task_id
