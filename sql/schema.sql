-- Canonical tables of the warehouse. All timestamps are UTC (TIMESTAMP, microseconds).
-- Column meanings: docs/schema.md.

CREATE TABLE IF NOT EXISTS agent_actions (
    event_id        VARCHAR NOT NULL,
    ts              TIMESTAMP NOT NULL,
    day             DATE NOT NULL,
    agent_id        VARCHAR,
    task_id         VARCHAR,
    task_source     VARCHAR,
    trace_id        VARCHAR,
    span_id         VARCHAR,
    parent_span_id  VARCHAR,
    tool            VARCHAR NOT NULL,
    system          VARCHAR,
    action_class    VARCHAR NOT NULL,
    classified_by   VARCHAR NOT NULL,
    destination     VARCHAR,
    sensitivity     VARCHAR NOT NULL,
    external        BOOLEAN NOT NULL,
    outcome         VARCHAR NOT NULL,
    error_type      VARCHAR,
    duration_ms     DOUBLE,
    credential_id   VARCHAR,
    source_ip       VARCHAR,
    args            VARCHAR,
    args_digest     VARCHAR,
    source_format   VARCHAR NOT NULL,
    source_file     VARCHAR NOT NULL,
    source_offset   BIGINT NOT NULL,
    source_line     BIGINT NOT NULL,
    source_record   INTEGER NOT NULL,
    ingested_at     TIMESTAMP NOT NULL,
    -- Added after the first release: last here, where the ALTER below puts it in older warehouses.
    bytes_out       BIGINT
);

-- Upgrades a warehouse created before the column existed (a no-op otherwise).
ALTER TABLE agent_actions ADD COLUMN IF NOT EXISTS bytes_out BIGINT;
-- Added with content provenance: whether the tool's output is trusted, and what decided it.
ALTER TABLE agent_actions ADD COLUMN IF NOT EXISTS output_trust VARCHAR;
ALTER TABLE agent_actions ADD COLUMN IF NOT EXISTS trust_by VARCHAR;

CREATE TABLE IF NOT EXISTS credential_events (
    event_id              VARCHAR NOT NULL,
    ts                    TIMESTAMP NOT NULL,
    day                   DATE NOT NULL,
    event_type            VARCHAR NOT NULL,
    credential_id         VARCHAR NOT NULL,
    credential_kind       VARCHAR NOT NULL,
    principal             VARCHAR,
    agent_id              VARCHAR,
    task_id               VARCHAR,
    task_source           VARCHAR,
    parent_credential_id  VARCHAR,
    scopes                VARCHAR[],
    ttl_s                 BIGINT,
    issued_at             TIMESTAMP,
    expires_at            TIMESTAMP,
    source_ip             VARCHAR,
    outcome               VARCHAR NOT NULL,
    source_format         VARCHAR NOT NULL,
    source_file           VARCHAR NOT NULL,
    source_offset         BIGINT NOT NULL,
    source_line           BIGINT NOT NULL,
    source_record         INTEGER NOT NULL,
    ingested_at           TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS task_events (
    event_id             VARCHAR NOT NULL,
    ts                   TIMESTAMP NOT NULL,
    day                  DATE NOT NULL,
    event_type           VARCHAR NOT NULL,
    task_id              VARCHAR NOT NULL,
    agent_id             VARCHAR,
    status               VARCHAR,
    approved_by          VARCHAR,
    approved_scope       VARCHAR[],
    approval_expires_at  TIMESTAMP,
    source_format        VARCHAR NOT NULL,
    source_file          VARCHAR NOT NULL,
    source_offset        BIGINT NOT NULL,
    source_line          BIGINT NOT NULL,
    source_record        INTEGER NOT NULL,
    ingested_at          TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS agent_spans (
    event_id        VARCHAR NOT NULL,
    ts              TIMESTAMP NOT NULL,
    end_ts          TIMESTAMP,
    day             DATE NOT NULL,
    trace_id        VARCHAR NOT NULL,
    span_id         VARCHAR NOT NULL,
    parent_span_id  VARCHAR,
    operation       VARCHAR,
    name            VARCHAR,
    agent_id        VARCHAR,
    task_id         VARCHAR,
    task_source     VARCHAR,
    model           VARCHAR,
    outcome         VARCHAR NOT NULL,
    source_format   VARCHAR NOT NULL,
    source_file     VARCHAR NOT NULL,
    source_offset   BIGINT NOT NULL,
    source_line     BIGINT NOT NULL,
    source_record   INTEGER NOT NULL,
    ingested_at     TIMESTAMP NOT NULL
);

-- Entities found in captured content (prompts, messages, tool results) and in tool-call
-- arguments, as keyed hashes (same key as credential ids) with where they were seen. Raw content
-- is never stored here. Column meanings: docs/schema.md, "Content capture".
CREATE TABLE IF NOT EXISTS content_entities (
    event_id          VARCHAR NOT NULL,   -- the span or record that carried the content
    ts                TIMESTAMP NOT NULL, -- when it was seen (a tool result: its span's end)
    day               DATE NOT NULL,
    trace_id          VARCHAR,
    span_id           VARCHAR,
    task_id           VARCHAR,
    agent_id          VARCHAR,
    origin            VARCHAR NOT NULL,   -- user, system, tool, model, argument
    tool              VARCHAR,            -- the tool whose result (or arguments) it is
    trust             VARCHAR,            -- tool results: trusted / untrusted
    call_id           VARCHAR,            -- gen_ai.tool.call.id
    argument          VARCHAR,            -- arguments: the top-level argument name
    entity_kind       VARCHAR NOT NULL,   -- value, email, url, host, iban, phone, quoted, token, name
    entity_hash       VARCHAR NOT NULL,
    in_text           BOOLEAN NOT NULL,   -- inside longer text rather than a whole field value
    instruction_like  BOOLEAN NOT NULL,   -- the text around it addresses the agent with instructions
    critical          BOOLEAN,            -- arguments: one the action acts on (catalog critical_args)
    asks_to_act       BOOLEAN,            -- user content: the request asks for an action, not only to read
    source_format     VARCHAR NOT NULL,
    source_file       VARCHAR NOT NULL,
    source_offset     BIGINT NOT NULL,
    source_line       BIGINT NOT NULL,
    source_record     INTEGER NOT NULL,
    ingested_at       TIMESTAMP NOT NULL
);

-- Opt-in only (content_keep_text): redacted captured text, for investigating a flagged task.
CREATE TABLE IF NOT EXISTS content_text (
    event_id          VARCHAR NOT NULL,
    ts                TIMESTAMP NOT NULL,
    day               DATE NOT NULL,
    trace_id          VARCHAR,
    span_id           VARCHAR,
    task_id           VARCHAR,
    agent_id          VARCHAR,
    origin            VARCHAR NOT NULL,
    tool              VARCHAR,
    trust             VARCHAR,
    call_id           VARCHAR,
    text              VARCHAR,
    instruction_like  BOOLEAN NOT NULL,
    source_format     VARCHAR NOT NULL,
    source_file       VARCHAR NOT NULL,
    source_offset     BIGINT NOT NULL,
    source_line       BIGINT NOT NULL,
    source_record     INTEGER NOT NULL,
    ingested_at       TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS tasks (
    task_id              VARCHAR NOT NULL,
    agent_id             VARCHAR,
    started_at           TIMESTAMP,
    ended_at             TIMESTAMP,
    start_source         VARCHAR NOT NULL,
    end_source           VARCHAR NOT NULL,
    status               VARCHAR NOT NULL,
    actions              BIGINT NOT NULL,
    credentials_issued   BIGINT NOT NULL,
    approved_by          VARCHAR,
    approved_at          TIMESTAMP,
    approved_scope       VARCHAR[],
    approval_expires_at  TIMESTAMP,
    updated_at           TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS rejected_events (
    event_id       VARCHAR NOT NULL,
    source_format  VARCHAR NOT NULL,
    source_file    VARCHAR NOT NULL,
    source_offset  BIGINT NOT NULL,
    source_line    BIGINT NOT NULL,
    source_record  INTEGER NOT NULL,
    reason         VARCHAR NOT NULL,
    raw_text       VARCHAR,
    raw_bytes      BIGINT NOT NULL,
    ingested_at    TIMESTAMP NOT NULL
);

-- One row per input record that was loaded or rejected (duplicates are counted, not listed).
CREATE TABLE IF NOT EXISTS ingest_ledger (
    event_id       VARCHAR NOT NULL,
    disposition    VARCHAR NOT NULL,
    -- Lower is better: a Vault response (0) replaces its request entry (1) loaded earlier.
    preference     INTEGER NOT NULL,
    source_format  VARCHAR NOT NULL,
    source_file    VARCHAR NOT NULL,
    source_line    BIGINT NOT NULL,
    source_record  INTEGER NOT NULL,
    run_id         VARCHAR NOT NULL
);

-- One row per file per ingest run: the conservation counts.
CREATE TABLE IF NOT EXISTS ingest_files (
    run_id         VARCHAR NOT NULL,
    source_file    VARCHAR NOT NULL,
    source_format  VARCHAR NOT NULL,
    file_sha256    VARCHAR NOT NULL,
    partition_day  DATE,
    records        BIGINT NOT NULL,
    loaded         BIGINT NOT NULL,
    rejected       BIGINT NOT NULL,
    duplicates     BIGINT NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP NOT NULL
);

-- Other names a credential is known by (e.g. a Vault token's accessor), as keyed hashes.
CREATE TABLE IF NOT EXISTS credential_aliases (
    alias_id       VARCHAR NOT NULL,
    credential_id  VARCHAR NOT NULL
);

-- One row per finding. finding_id is stable across reruns (rule + entity + window); a rerun
-- updates detection fields and never touches triage_status / triage_note.
CREATE TABLE IF NOT EXISTS findings (
    finding_id          VARCHAR NOT NULL,
    rule_id             VARCHAR NOT NULL,
    title               VARCHAR NOT NULL,
    severity            VARCHAR NOT NULL,      -- informational, low, medium, high, critical
    risk_score          INTEGER NOT NULL,      -- 0..100
    confidence          VARCHAR NOT NULL,      -- low, medium, high
    analytic_type       VARCHAR NOT NULL,      -- rule, behavioral, statistical, learning
    entity_type         VARCHAR NOT NULL,      -- task, credential, agent
    entity_id           VARCHAR NOT NULL,
    agent_id            VARCHAR,
    task_id             VARCHAR,
    credential_id       VARCHAR,
    first_seen          TIMESTAMP NOT NULL,
    last_seen           TIMESTAMP NOT NULL,
    evidence_event_ids  VARCHAR[] NOT NULL,
    detail              VARCHAR,
    frameworks          JSON,                  -- {"owasp_agentic": [...], "owasp_nhi": [...], "maestro": {...}, "nist_ai_rmf": [...]}
    status              VARCHAR NOT NULL,      -- effective: new, in_progress, suppressed, resolved
    triage_status       VARCHAR,               -- set by people: in_progress, resolved (never overwritten by a run)
    triage_note         VARCHAR,
    suppression         VARCHAR,               -- reason of the suppression entry that applies, if any
    first_detected_at   TIMESTAMP NOT NULL,
    last_detected_at    TIMESTAMP NOT NULL,
    -- Added with the anomaly models: last here, where the ALTERs below put them in older warehouses.
    explanation         JSON,                  -- anomaly findings: signals, top features vs peers, rare transitions
    anomaly_percentile  DOUBLE,                -- the task's fused anomaly percentile in its peer group, if scored
    priority            INTEGER                -- 0..100: risk_score raised by the task's other signals (sql/task_risk.sql)
);

-- Warehouses created before these columns existed gain them here (NULL until the next run).
ALTER TABLE findings ADD COLUMN IF NOT EXISTS explanation JSON;
ALTER TABLE findings ADD COLUMN IF NOT EXISTS anomaly_percentile DOUBLE;
ALTER TABLE findings ADD COLUMN IF NOT EXISTS priority INTEGER;
