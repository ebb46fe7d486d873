-- One row per input file that breaks conservation: every record must be loaded (with at least one
-- canonical row), rejected (with a rejected_events row) or counted as a duplicate.
-- Scope: files in temp table check_files(source_file), or every file when it is empty.

WITH scope AS (
    SELECT DISTINCT source_file FROM ingest_files
    WHERE source_file IN (SELECT source_file FROM check_files)
       OR NOT EXISTS (SELECT 1 FROM check_files)
), counted AS (
    SELECT source_file, sum(records) AS records, sum(loaded) AS loaded, sum(rejected) AS rejected,
           sum(duplicates) AS duplicates
    FROM ingest_files WHERE source_file IN (SELECT source_file FROM scope) GROUP BY source_file
), ledger AS (
    SELECT source_file, count_if(disposition = 'loaded') AS loaded, count_if(disposition = 'rejected') AS rejected
    FROM ingest_ledger WHERE source_file IN (SELECT source_file FROM scope) GROUP BY source_file
), landed AS (
    SELECT event_id FROM agent_actions UNION SELECT event_id FROM credential_events
    UNION SELECT event_id FROM task_events UNION SELECT event_id FROM agent_spans
), orphans AS (
    SELECT l.source_file, count(*) AS missing
    FROM ingest_ledger l
    WHERE l.source_file IN (SELECT source_file FROM scope) AND l.disposition = 'loaded'
      AND l.event_id NOT IN (SELECT event_id FROM landed)
    GROUP BY l.source_file
), lost_rejects AS (
    SELECT l.source_file, count(*) AS missing
    FROM ingest_ledger l
    WHERE l.source_file IN (SELECT source_file FROM scope) AND l.disposition = 'rejected'
      AND l.event_id NOT IN (SELECT event_id FROM rejected_events)
    GROUP BY l.source_file
)
SELECT c.source_file, c.records, c.loaded, c.rejected, c.duplicates,
       coalesce(g.loaded, 0) AS ledger_loaded, coalesce(g.rejected, 0) AS ledger_rejected,
       coalesce(o.missing, 0) AS loaded_without_rows, coalesce(r.missing, 0) AS rejected_without_rows
FROM counted c
LEFT JOIN ledger g USING (source_file)
LEFT JOIN orphans o USING (source_file)
LEFT JOIN lost_rejects r USING (source_file)
WHERE c.records <> c.loaded + c.rejected + c.duplicates
   OR c.loaded <> coalesce(g.loaded, 0) OR c.rejected <> coalesce(g.rejected, 0)
   OR coalesce(o.missing, 0) > 0 OR coalesce(r.missing, 0) > 0
ORDER BY c.source_file
