-- A task's findings, most urgent first.
SELECT finding_id, priority, severity, rule_id, left(detail, 90) AS detail
FROM findings
WHERE task_id = $task_id
ORDER BY priority DESC NULLS LAST, finding_id
