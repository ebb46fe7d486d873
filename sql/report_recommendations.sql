-- The recommendations table as published (its columns vary by version), with its row count.
SELECT *, count(*) OVER () AS report_rows_total
FROM recommendations
ORDER BY ALL
LIMIT $limit
