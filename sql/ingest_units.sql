-- Stage 1 of every parse: raw units (lines, or whole documents) -> JSON values or rejects.
-- Input temp tables: batch_files(source_file, source_format), units(source_file, is_document,
-- unit_line, unit_offset, raw BLOB, raw_len). Output: unit_json and the first rows of p_records.

CREATE OR REPLACE TEMP TABLE unit_text AS
SELECT u.source_file, f.source_format, u.is_document, u.unit_line, u.unit_offset, u.raw_len,
       octet_length(u.raw) AS kept_len, u.unit_error,
       rtrim(try(decode(u.raw)), chr(13) || chr(10)) AS text,
       -- The bytes are only needed when they are not text.
       CASE WHEN try(decode(u.raw)) IS NULL THEN u.raw END AS raw
FROM units u JOIN batch_files f USING (source_file);

DROP TABLE units;

CREATE OR REPLACE TEMP TABLE unit_checked AS
SELECT *,
    CASE
        WHEN unit_error IS NOT NULL THEN unit_error
        WHEN raw_len > CASE WHEN is_document THEN $max_document_bytes ELSE $max_record_bytes END
            THEN 'record too large: ' || raw_len || ' bytes exceeds the limit of '
                 || CASE WHEN is_document THEN $max_document_bytes ELSE $max_record_bytes END || ' bytes'
        WHEN text IS NULL THEN 'invalid UTF-8 byte sequence'
        WHEN NOT json_valid(text) THEN
            CASE WHEN is_document THEN 'malformed JSON document (invalid syntax or truncated)'
                 ELSE 'malformed JSON (invalid syntax or truncated line)' END
    END AS reason
FROM unit_text
-- Blank lines separate records; they are not records themselves.
WHERE text IS NULL OR trim(text) <> '' OR raw_len > kept_len;

DROP TABLE unit_text;

CREATE OR REPLACE TEMP TABLE p_records (
    source_format VARCHAR, source_file VARCHAR, source_line BIGINT, source_offset BIGINT,
    source_record INTEGER, event_id VARCHAR, preference INTEGER, reason VARCHAR,
    raw_text VARCHAR, raw_bytes BIGINT
);

-- Text of a record that is not valid UTF-8: the blob's escapes undone for the printable bytes,
-- so that redaction patterns still match around the invalid ones.
CREATE OR REPLACE TEMP MACRO cw_blob_text(b) AS
    rtrim(replace(replace(replace(replace(replace(b::VARCHAR, '\x22', '"'), '\x5C', '\'),
        '\x0A', chr(10)), '\x0D', chr(13)), '\x09', chr(9)), chr(13) || chr(10));

INSERT INTO p_records
SELECT source_format, source_file, unit_line, unit_offset, 0,
       -- Content identifies a rejected record; a truncated one also by its true length.
       'reject:' || cw_keyed('reject:' || source_format, coalesce(text, cw_blob_text(raw))
           || CASE WHEN raw_len > kept_len THEN '#' || raw_len ELSE '' END),
       0, reason,
       left(cw_redact(left(coalesce(text, cw_blob_text(raw)), 65536)), $reject_text_chars),
       raw_len
FROM unit_checked WHERE reason IS NOT NULL;

-- A file with no records at all is itself reported, so that it is never silently skipped.
INSERT INTO p_records
SELECT f.source_format, f.source_file, 0, 0, 0,
       'reject:' || cw_keyed('reject:' || f.source_format, 'empty file#' || f.source_file),
       0, 'empty file: no records', NULL, 0
FROM batch_files f
WHERE NOT EXISTS (SELECT 1 FROM unit_checked c WHERE c.source_file = f.source_file);

CREATE OR REPLACE TEMP TABLE unit_json AS
SELECT source_file, source_format, unit_line, unit_offset, text::JSON AS j
FROM unit_checked WHERE reason IS NULL;

DROP TABLE unit_checked;
