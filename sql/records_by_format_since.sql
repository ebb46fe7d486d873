-- Files and records per source format among the files ingested since $since.
SELECT source_format, count(*) AS files, sum(records) AS records, sum(loaded) AS loaded,
       sum(rejected) AS rejected, sum(duplicates) AS duplicates
FROM ingest_files
WHERE started_at >= $since
GROUP BY 1
ORDER BY 1
