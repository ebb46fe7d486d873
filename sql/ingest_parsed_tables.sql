-- Per-batch parse outputs, filled by the format-specific parse_*.sql files and consumed by
-- classify_actions.sql and ingest_commit.sql. TEMP: raw input never reaches the warehouse file.

CREATE OR REPLACE TEMP TABLE p_actions (
    event_id VARCHAR, ts TIMESTAMP, agent_id VARCHAR, task_id VARCHAR, task_source VARCHAR,
    trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, tool VARCHAR, system VARCHAR,
    class_hint VARCHAR, destination_hint VARCHAR, sensitivity_hint VARCHAR, external_hint BOOLEAN,
    hint_read_only BOOLEAN, hint_destructive BOOLEAN, hint_open_world BOOLEAN,
    outcome VARCHAR, error_type VARCHAR, duration_ms DOUBLE, credential_id VARCHAR,
    source_ip VARCHAR, args VARCHAR, bytes_out BIGINT,
    source_format VARCHAR, source_file VARCHAR, source_offset BIGINT, source_line BIGINT,
    source_record INTEGER
);

CREATE OR REPLACE TEMP TABLE p_creds (
    event_id VARCHAR, ts TIMESTAMP, event_type VARCHAR, credential_id VARCHAR,
    credential_kind VARCHAR, principal VARCHAR, agent_id VARCHAR, task_id VARCHAR,
    task_source VARCHAR, parent_credential_id VARCHAR, scopes VARCHAR[], ttl_s BIGINT,
    issued_at TIMESTAMP, expires_at TIMESTAMP, source_ip VARCHAR, outcome VARCHAR,
    -- Set instead of credential_id when the source names the credential indirectly.
    alias_id VARCHAR, revoke_prefix VARCHAR,
    source_format VARCHAR, source_file VARCHAR, source_offset BIGINT, source_line BIGINT,
    source_record INTEGER
);

CREATE OR REPLACE TEMP TABLE p_aliases (alias_id VARCHAR, credential_id VARCHAR);

CREATE OR REPLACE TEMP TABLE p_task_events (
    event_id VARCHAR, ts TIMESTAMP, event_type VARCHAR, task_id VARCHAR, agent_id VARCHAR,
    status VARCHAR, approved_by VARCHAR, approved_scope VARCHAR[], approval_expires_at TIMESTAMP,
    source_format VARCHAR, source_file VARCHAR, source_offset BIGINT, source_line BIGINT,
    source_record INTEGER
);

CREATE OR REPLACE TEMP TABLE p_spans (
    event_id VARCHAR, ts TIMESTAMP, end_ts TIMESTAMP, trace_id VARCHAR, span_id VARCHAR,
    parent_span_id VARCHAR, operation VARCHAR, name VARCHAR, agent_id VARCHAR, task_id VARCHAR,
    task_source VARCHAR, model VARCHAR, outcome VARCHAR,
    source_format VARCHAR, source_file VARCHAR, source_offset BIGINT, source_line BIGINT,
    source_record INTEGER
);

-- Captured content (prompts, messages, tool results) and tool-call arguments, raw, for entity
-- extraction (content_entities.sql): one row per message part or argument document. origin:
-- user, system, tool (a tool's result), model, argument (the call's own arguments). Never stored.
CREATE OR REPLACE TEMP TABLE p_content (
    event_id VARCHAR, ts TIMESTAMP, trace_id VARCHAR, span_id VARCHAR, task_id VARCHAR,
    agent_id VARCHAR, origin VARCHAR, tool VARCHAR, call_id VARCHAR, body VARCHAR,
    source_format VARCHAR, source_file VARCHAR, source_offset BIGINT, source_line BIGINT,
    source_record INTEGER
);
