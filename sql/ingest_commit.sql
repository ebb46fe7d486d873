-- Decide every parsed record's fate (loaded, rejected or duplicate) and write the batch into the
-- canonical tables. Runs inside one transaction opened by the caller.

CREATE OR REPLACE TEMP TABLE p_fate AS
SELECT r.*,
    CASE
        WHEN row_number() OVER (PARTITION BY r.event_id
                 ORDER BY r.preference, r.source_file, r.source_line, r.source_record) > 1 THEN 'duplicate'
        WHEN r.event_id IN (SELECT event_id FROM ingest_ledger) THEN 'duplicate'
        WHEN r.reason IS NOT NULL THEN 'rejected'
        ELSE 'loaded'
    END AS fate
FROM p_records r;

CREATE OR REPLACE TEMP TABLE p_loaded AS
SELECT source_file, source_line, source_record FROM p_fate WHERE fate = 'loaded';

-- Credentials named indirectly: a Vault accessor, or a lease prefix.
INSERT INTO p_aliases
SELECT alias_id, credential_id FROM credential_aliases
WHERE alias_id IN (SELECT alias_id FROM p_creds WHERE alias_id IS NOT NULL);

CREATE OR REPLACE TEMP TABLE p_creds_resolved AS
SELECT c.* EXCLUDE (credential_id, alias_id, revoke_prefix), coalesce(c.credential_id, a.credential_id) AS credential_id
FROM p_creds c
LEFT JOIN (SELECT DISTINCT alias_id, credential_id FROM p_aliases) a ON c.credential_id IS NULL AND a.alias_id = c.alias_id
WHERE c.revoke_prefix IS NULL
UNION ALL BY NAME
SELECT c.* EXCLUDE (credential_id, alias_id, revoke_prefix, principal), l.credential_id, l.principal
FROM p_creds c
JOIN (
    SELECT credential_id, principal FROM credential_events WHERE event_type = 'issue' AND credential_kind = 'vault_lease'
    UNION SELECT credential_id, principal FROM p_creds WHERE event_type = 'issue' AND credential_kind = 'vault_lease'
) l ON starts_with(l.principal || '/', c.revoke_prefix)
WHERE c.revoke_prefix IS NOT NULL;

INSERT INTO agent_actions
SELECT a.*, $now FROM p_actions_classified a SEMI JOIN p_loaded USING (source_file, source_line, source_record);

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

INSERT INTO rejected_events
SELECT event_id, source_format, source_file, source_offset, source_line, source_record, reason,
       raw_text, raw_bytes, $now
FROM p_fate WHERE fate = 'rejected';

INSERT INTO ingest_ledger
SELECT event_id, fate, source_format, source_file, source_line, source_record, $run_id
FROM p_fate WHERE fate IN ('loaded', 'rejected');
