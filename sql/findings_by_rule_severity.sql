-- How many findings each rule raised at each severity, how many are open and suppressed.
SELECT rule_id, severity, count(*) AS findings,
       count_if(status IN ('new', 'in_progress')) AS open,
       count_if(status = 'suppressed') AS suppressed
FROM findings
GROUP BY ALL
ORDER BY 3 DESC, 1
