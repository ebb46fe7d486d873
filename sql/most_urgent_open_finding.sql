-- The first open finding in the analyst database's order (priority, risk, recency).
SELECT finding_id FROM findings_open LIMIT 1
