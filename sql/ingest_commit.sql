-- Decide every parsed record's fate (loaded, rejected or duplicate) and write the batch into the
-- canonical tables. Runs inside one transaction opened by the caller.

CREATE OR REPLACE TEMP TABLE p_ranked AS
SELECT r.*, row_number() OVER (PARTITION BY r.event_id
                ORDER BY r.preference, r.source_file, r.source_line, r.source_record) AS rank_in_batch
FROM p_records r;

-- Entries loaded earlier that a better entry of the same event replaces (a Vault response whose
-- request came in an earlier file, a Kubernetes ResponseComplete after RequestReceived).
CREATE OR REPLACE TEMP TABLE p_superseded AS
SELECT l.* FROM ingest_ledger l
JOIN p_ranked r ON r.event_id = l.event_id AND r.rank_in_batch = 1
WHERE l.disposition = 'loaded' AND r.reason IS NULL AND r.preference < l.preference;

CREATE OR REPLACE TEMP TABLE p_fate AS
SELECT r.* EXCLUDE (rank_in_batch),
    CASE
        WHEN r.rank_in_batch > 1 THEN 'duplicate'
        WHEN r.event_id IN (SELECT event_id FROM p_superseded) THEN 'loaded'
        WHEN r.event_id IN (SELECT event_id FROM ingest_ledger) THEN 'duplicate'
        WHEN r.reason IS NOT NULL THEN 'rejected'
        ELSE 'loaded'
    END AS fate
FROM p_ranked r;

-- The replaced entry becomes a duplicate of its replacement, in its own file's counts too.
DELETE FROM agent_actions WHERE event_id IN (SELECT event_id FROM p_superseded);
DELETE FROM credential_events WHERE event_id IN (SELECT event_id FROM p_superseded);
DELETE FROM task_events WHERE event_id IN (SELECT event_id FROM p_superseded);
DELETE FROM agent_spans WHERE event_id IN (SELECT event_id FROM p_superseded);
DELETE FROM content_entities WHERE event_id IN (SELECT event_id FROM p_superseded);
DELETE FROM content_text WHERE event_id IN (SELECT event_id FROM p_superseded);
UPDATE ingest_files SET loaded = ingest_files.loaded - s.n, duplicates = ingest_files.duplicates + s.n
FROM (SELECT run_id, source_file, count(*) AS n FROM p_superseded GROUP BY ALL) s
WHERE ingest_files.run_id = s.run_id AND ingest_files.source_file = s.source_file;
DELETE FROM ingest_ledger WHERE event_id IN (SELECT event_id FROM p_superseded);

CREATE OR REPLACE TEMP TABLE p_loaded AS
SELECT source_file, source_line, source_record FROM p_fate WHERE fate = 'loaded';

-- Credentials named indirectly: a Vault accessor, or a lease prefix.
INSERT INTO p_aliases
SELECT alias_id, credential_id FROM credential_aliases
WHERE alias_id IN (SELECT alias_id FROM p_creds WHERE alias_id IS NOT NULL);

-- (Columns listed in the same order in both halves: Spark has no UNION BY NAME.)
CREATE OR REPLACE TEMP TABLE p_creds_resolved AS
SELECT c.* EXCLUDE (credential_id, alias_id, revoke_prefix, principal), c.principal,
       coalesce(c.credential_id, a.credential_id) AS credential_id
FROM p_creds c
LEFT JOIN (SELECT DISTINCT alias_id, credential_id FROM p_aliases) a ON c.credential_id IS NULL AND a.alias_id = c.alias_id
WHERE c.revoke_prefix IS NULL
UNION ALL
SELECT c.* EXCLUDE (credential_id, alias_id, revoke_prefix, principal), l.principal, l.credential_id
FROM p_creds c
JOIN (
    SELECT credential_id, principal FROM credential_events WHERE event_type = 'issue' AND credential_kind = 'vault_lease'
    UNION SELECT credential_id, principal FROM p_creds WHERE event_type = 'issue' AND credential_kind = 'vault_lease'
) l ON starts_with(l.principal || '/', c.revoke_prefix)
WHERE c.revoke_prefix IS NOT NULL;

INSERT INTO agent_actions BY NAME
SELECT a.* EXCLUDE (critical_args), $now AS ingested_at
FROM p_actions_classified a SEMI JOIN p_loaded USING (source_file, source_line, source_record);

INSERT INTO credential_events BY NAME
SELECT c.*, CAST(c.ts AS DATE) AS day, $now AS ingested_at
FROM p_creds_resolved c SEMI JOIN p_loaded USING (source_file, source_line, source_record)
WHERE c.credential_id IS NOT NULL;

INSERT INTO credential_aliases
SELECT DISTINCT a.alias_id, a.credential_id FROM p_aliases a
WHERE a.alias_id NOT IN (SELECT alias_id FROM credential_aliases);

INSERT INTO task_events BY NAME
SELECT t.*, CAST(t.ts AS DATE) AS day, $now AS ingested_at
FROM p_task_events t SEMI JOIN p_loaded USING (source_file, source_line, source_record);

INSERT INTO agent_spans BY NAME
SELECT s.*, CAST(s.ts AS DATE) AS day, $now AS ingested_at
FROM p_spans s SEMI JOIN p_loaded USING (source_file, source_line, source_record);

INSERT INTO content_entities BY NAME
SELECT e.*, CAST(e.ts AS DATE) AS day, $now AS ingested_at
FROM p_entities e SEMI JOIN p_loaded USING (source_file, source_line, source_record);

INSERT INTO content_text BY NAME
SELECT t.*, CAST(t.ts AS DATE) AS day, $now AS ingested_at
FROM p_content_text t SEMI JOIN p_loaded USING (source_file, source_line, source_record);

INSERT INTO rejected_events
SELECT event_id, source_format, source_file, source_offset, source_line, source_record, reason,
       raw_text, raw_bytes, $now
FROM p_fate WHERE fate = 'rejected';

INSERT INTO ingest_ledger
SELECT event_id, fate, preference, source_format, source_file, source_line, source_record, $run_id
FROM p_fate WHERE fate IN ('loaded', 'rejected');
