-- Findings first seen on each day of the report's window, by rule (all statuses).
SELECT rule_id, min(title) AS title, CAST(first_seen AS DATE) AS day, count(*) AS findings
FROM findings
WHERE CAST(first_seen AS DATE) BETWEEN $first_day AND $last_day
GROUP BY rule_id, day
ORDER BY rule_id, day
