-- Findings first seen on each day of the report's window, by severity (all statuses).
SELECT CAST(first_seen AS DATE) AS day, coalesce(severity, 'unknown') AS severity,
    count(*) AS findings
FROM findings
WHERE CAST(first_seen AS DATE) BETWEEN $first_day AND $last_day
GROUP BY ALL
ORDER BY day, severity
