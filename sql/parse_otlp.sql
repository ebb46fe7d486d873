-- OTLP/JSON trace exports (single documents or JSON lines of documents) using the GenAI
-- semantic conventions. execute_tool spans (and MCP tools/call spans) are agent actions; other
-- spans (invoke_agent, chat, ...) go to agent_spans. Agent and task come from the span, else its
-- nearest ancestor that has them, else any span of the trace, else resource / trace id.

-- Variants read: {"resourceSpans": [...]} (OTLP/JSON), {"batches": [...]} (Grafana Tempo's export,
-- same entries), and in each entry scopeSpans {scope, spans} or the older exporters'
-- instrumentationLibrarySpans {instrumentationLibrary, spans}.
CREATE OR REPLACE TEMP TABLE o_docs AS
SELECT source_file, unit_line, unit_offset, j,
    CASE WHEN json_type(j) = 'OBJECT' AND (j -> 'resourceSpans') IS NULL AND json_type(j -> 'batches') = 'ARRAY'
         THEN 'batches' ELSE 'resourceSpans' END AS top_key,
    CASE WHEN json_type(j) = 'OBJECT' AND json_type(coalesce(j -> 'resourceSpans', j -> 'batches')) = 'ARRAY'
         THEN json_transform(coalesce(j -> 'resourceSpans', j -> 'batches'),
            '[{"resource":{"attributes":[{"key":"VARCHAR","value":"JSON"}]},"scopeSpans":[{"scope":{"name":"VARCHAR"},"spans":["JSON"]}],"instrumentationLibrarySpans":[{"instrumentationLibrary":{"name":"VARCHAR"},"spans":["JSON"]}]}]')
    END AS rs
FROM unit_json WHERE source_format = 'otlp';

-- A document that is not a trace export is one rejected record.
INSERT INTO p_records
SELECT 'otlp', source_file, unit_line, unit_offset, 0,
    'reject:' || cw_keyed('reject:otlp', j::VARCHAR), 0,
    CASE WHEN json_type(j) <> 'OBJECT' THEN 'document is not a JSON object (got ' || cw_json_kind(j) || ')'
         WHEN (j -> 'resourceSpans') IS NULL AND (j -> 'batches') IS NULL
             THEN 'not an OTLP trace export: missing resourceSpans'
         WHEN (j -> 'resourceSpans') IS NULL THEN 'wrong type for batches: expected array, got ' || cw_json_kind(j -> 'batches')
         ELSE 'wrong type for resourceSpans: expected array, got ' || cw_json_kind(j -> 'resourceSpans') END,
    left(cw_redact(left(j::VARCHAR, 65536)), $reject_text_chars), strlen(j::VARCHAR)
FROM o_docs WHERE rs IS NULL;

CREATE OR REPLACE TEMP TABLE o_raw AS
WITH r1 AS (
    SELECT source_file, unit_line, unit_offset, unnest(rs) AS r, unnest(range(len(rs))) AS ri
    FROM o_docs WHERE rs IS NOT NULL
), s1 AS (
    SELECT source_file, unit_line, unit_offset, ri, r.resource.attributes AS res_attrs,
           unnest(scopes) AS s, unnest(range(len(scopes))) AS si
    FROM (SELECT *, coalesce(r.scopeSpans, []) || coalesce(list_transform(r.instrumentationLibrarySpans,
                        x -> {'scope': {'name': x.instrumentationLibrary.name}, 'spans': x.spans}), []) AS scopes
          FROM r1)
), p1 AS (
    SELECT source_file, unit_line, unit_offset, ri, si, res_attrs, s.scope.name AS scope_name,
           unnest(s.spans) AS span, unnest(range(len(s.spans))) AS pi
    FROM s1
)
SELECT source_file, unit_line AS source_line, unit_offset AS source_offset,
    (row_number() OVER (PARTITION BY source_file, unit_line ORDER BY ri, si, pi) - 1)::INTEGER AS source_record,
    res_attrs, span,
    CASE WHEN json_type(span) = 'OBJECT' THEN json_transform(span, '{
        "traceId":"VARCHAR","spanId":"VARCHAR","parentSpanId":"VARCHAR","name":"VARCHAR","kind":"VARCHAR",
        "startTimeUnixNano":"JSON","endTimeUnixNano":"JSON",
        "attributes":[{"key":"VARCHAR","value":"JSON"}],"status":{"code":"VARCHAR","message":"VARCHAR"},
        "events":[{"name":"VARCHAR","timeUnixNano":"JSON","attributes":[{"key":"VARCHAR","value":"JSON"}]}]}') END AS s
FROM p1;

-- A resourceSpans / scopeSpans entry that is not an object, or scopeSpans / spans that is not an
-- array, hides its spans: each such part is one rejected record (numbered after the spans), never
-- silently nothing. Absent or null parts hold no spans, unless the entry carries keys this parser
-- does not know in their place (a misspelt "scopeSpan"): then it is rejected too. Only documents
-- whose typed read has a NULL part (absent, null or of the wrong type) are re-read here:
-- re-reading every document as JSON would cost as much as parsing it.
CREATE OR REPLACE TEMP TABLE o_broken AS
WITH r1 AS (
    SELECT source_file, unit_line, unit_offset, j, top_key, unnest(rl) AS r, unnest(range(len(rl))) AS ri
    FROM (SELECT *, json_transform(j -> top_key, '["JSON"]') AS rl FROM o_docs
          WHERE rs IS NOT NULL
            AND len(list_filter(rs, r -> r IS NULL OR (r.scopeSpans IS NULL AND r.instrumentationLibrarySpans IS NULL)
                    OR len(list_filter(coalesce(r.scopeSpans, []), s -> s IS NULL OR s.spans IS NULL)) > 0
                    OR len(list_filter(coalesce(r.instrumentationLibrarySpans, []), s -> s IS NULL OR s.spans IS NULL)) > 0)) > 0)
), scopes AS (
    SELECT *, 'scopeSpans' AS scope_key FROM r1
    UNION ALL
    SELECT *, 'instrumentationLibrarySpans' FROM r1 WHERE (r -> 'instrumentationLibrarySpans') IS NOT NULL
), s1 AS (
    SELECT source_file, unit_line, unit_offset, j, top_key, ri, scope_key, unnest(sl) AS s, unnest(range(len(sl))) AS si
    FROM (SELECT *, json_transform(r -> scope_key, '["JSON"]') AS sl FROM scopes
          WHERE json_type(r) = 'OBJECT' AND json_type(r -> scope_key) = 'ARRAY')
)
SELECT source_file, unit_line, unit_offset, j, top_key || '[' || ri || ']' AS part_path,
       coalesce(r, 'null'::JSON) AS part, 'object' AS expected
FROM r1 WHERE coalesce(json_type(r), 'NULL') <> 'OBJECT'
UNION ALL
SELECT source_file, unit_line, unit_offset, j, top_key || '[' || ri || '].' || scope_key, r -> scope_key, 'array'
FROM scopes WHERE json_type(r) = 'OBJECT' AND json_type(r -> scope_key) NOT IN ('ARRAY', 'NULL')
UNION ALL
-- No spans, and keys the parser does not know: a misspelt scopeSpans.
SELECT source_file, unit_line, unit_offset, j, top_key || '[' || ri || ']', r, 'scopeSpans'
FROM r1 WHERE json_type(r) = 'OBJECT' AND (r -> 'scopeSpans') IS NULL AND (r -> 'instrumentationLibrarySpans') IS NULL
    AND len(list_filter(json_keys(r), k -> k NOT IN ('resource', 'schemaUrl', 'scopeSpans', 'instrumentationLibrarySpans'))) > 0
UNION ALL
SELECT source_file, unit_line, unit_offset, j, top_key || '[' || ri || '].' || scope_key || '[' || si || ']',
       coalesce(s, 'null'::JSON), 'object'
FROM s1 WHERE coalesce(json_type(s), 'NULL') <> 'OBJECT'
UNION ALL
SELECT source_file, unit_line, unit_offset, j, top_key || '[' || ri || '].' || scope_key || '[' || si || '].spans',
       s -> 'spans', 'array'
FROM s1 WHERE json_type(s) = 'OBJECT' AND json_type(s -> 'spans') NOT IN ('ARRAY', 'NULL')
UNION ALL
SELECT source_file, unit_line, unit_offset, j, top_key || '[' || ri || '].' || scope_key || '[' || si || ']', s, 'spans'
FROM s1 WHERE json_type(s) = 'OBJECT' AND (s -> 'spans') IS NULL
    AND len(list_filter(json_keys(s), k -> k NOT IN ('scope', 'instrumentationLibrary', 'schemaUrl', 'spans'))) > 0;

INSERT INTO p_records
SELECT 'otlp', b.source_file, b.unit_line, b.unit_offset,
    (coalesce(n.spans, 0) + row_number() OVER (PARTITION BY b.source_file, b.unit_line ORDER BY b.part_path) - 1)::INTEGER,
    'reject:' || cw_keyed('reject:otlp', b.j::VARCHAR || '#' || b.part_path), 0,
    CASE WHEN b.expected IN ('scopeSpans', 'spans')
         THEN 'no ' || b.expected || ' in ' || b.part_path || ' (unexpected keys: '
              || array_to_string(list_sort(list_filter(json_keys(b.part), k -> k NOT IN
                     ('resource', 'schemaUrl', 'scopeSpans', 'instrumentationLibrarySpans', 'scope', 'instrumentationLibrary', 'spans')))[1:8], ', ') || ')'
         ELSE 'wrong type for ' || b.part_path || ': expected ' || b.expected || ', got ' || cw_json_kind(b.part) END,
    left(cw_redact(left(b.part::VARCHAR, 65536)), $reject_text_chars), strlen(b.part::VARCHAR)
FROM o_broken b
LEFT JOIN (SELECT source_file, source_line, count(*) AS spans FROM o_raw GROUP BY ALL) n
    ON n.source_file = b.source_file AND n.source_line = b.unit_line;

CREATE OR REPLACE TEMP TABLE o_valid AS
SELECT *,
    cw_otlp_id(s.traceId, 16) AS trace_id,
    cw_otlp_id(s.spanId, 8) AS span_id,
    cw_otlp_id(s.parentSpanId, 8) AS parent_span_id,
    cw_epoch_us(try_cast(s.startTimeUnixNano ->> '$' AS HUGEINT) // 1000) AS ts,
    cw_epoch_us(try_cast(s.endTimeUnixNano ->> '$' AS HUGEINT) // 1000) AS end_ts,
    CASE WHEN json_type(span) <> 'OBJECT' THEN 'span is not a JSON object (got ' || cw_json_kind(span) || ')'
         WHEN s.traceId IS NULL OR s.traceId = '' THEN 'missing required field traceId'
         WHEN cw_otlp_id(s.traceId, 16) IS NULL THEN 'invalid traceId: ' || left(s.traceId, 40)
         WHEN s.spanId IS NULL OR s.spanId = '' THEN 'missing required field spanId'
         WHEN cw_otlp_id(s.spanId, 8) IS NULL THEN 'invalid spanId: ' || left(s.spanId, 40)
         WHEN s.startTimeUnixNano IS NULL THEN 'missing required field startTimeUnixNano'
         WHEN try_cast(s.startTimeUnixNano ->> '$' AS HUGEINT) IS NULL
             THEN 'unparseable timestamp in startTimeUnixNano: ' || left(s.startTimeUnixNano::VARCHAR, 40)
         WHEN try_cast(s.startTimeUnixNano ->> '$' AS HUGEINT) < 631152000000000000
              OR try_cast(s.startTimeUnixNano ->> '$' AS HUGEINT) > 7258118400000000000
             THEN 'timestamp out of range in startTimeUnixNano: ' || (s.startTimeUnixNano ->> '$')
    END AS reason
FROM o_raw;

INSERT INTO p_records
SELECT 'otlp', source_file, source_line, source_offset, source_record,
    CASE WHEN reason IS NULL THEN 'otlp:' || trace_id || ':' || span_id
         ELSE 'reject:' || cw_keyed('reject:otlp', span::VARCHAR) END,
    0, reason,
    CASE WHEN reason IS NOT NULL THEN left(cw_redact(left(span::VARCHAR, 65536)), $reject_text_chars) END,
    strlen(span::VARCHAR)
FROM o_valid;

CREATE OR REPLACE TEMP TABLE o_spans AS
SELECT source_file, source_line, source_offset, source_record, trace_id, span_id, parent_span_id, ts,
    end_ts, s.name AS name, s.attributes AS attrs, res_attrs, s.status AS status, s.events AS events,
    coalesce(cw_attr_text(s.attributes, 'gen_ai.operation.name'),
             CASE WHEN starts_with(s.name, 'execute_tool') THEN 'execute_tool' END) AS operation,
    cw_attr_text(s.attributes, 'mcp.method.name') AS mcp_method,
    s.kind AS span_kind, cw_attr_text(s.attributes, 'mcp.session.id') AS mcp_session,
    cw_attr_text(s.attributes, 'jsonrpc.request.id') AS rpc_id,
    cw_attr_text(s.attributes, 'gen_ai.agent.id') AS agent_attr_id,
    cw_attr_text(s.attributes, 'gen_ai.agent.name') AS agent_attr_name,
    coalesce(cw_attr_text(s.attributes, 'gen_ai.agent.id'), cw_attr_text(s.attributes, 'gen_ai.agent.name')) AS own_agent,
    coalesce(cw_attr_text(s.attributes, 'chainwatch.task.id'), cw_attr_text(s.attributes, 'gen_ai.conversation.id')) AS own_task
FROM o_valid WHERE reason IS NULL;

-- One agent, one id: a span naming its agent only by gen_ai.agent.name takes the gen_ai.agent.id
-- that another span of the same trace gives for that name (an invoke_agent span usually has both).
UPDATE o_spans SET own_agent = m.agent_id
FROM (SELECT trace_id, agent_attr_name, min(agent_attr_id) AS agent_id FROM o_spans
      WHERE agent_attr_id IS NOT NULL AND agent_attr_name IS NOT NULL GROUP BY ALL) m
WHERE o_spans.agent_attr_id IS NULL AND o_spans.trace_id = m.trace_id
  AND o_spans.agent_attr_name = m.agent_attr_name;

-- Nearest ancestor with an agent / task, walking parents inside the batch (depth-bounded).
CREATE OR REPLACE TEMP TABLE o_inherited AS
WITH RECURSIVE nodes AS (
    SELECT trace_id, span_id, any_value(parent_span_id) AS parent_span_id,
           any_value(own_agent) AS own_agent, any_value(own_task) AS own_task
    FROM o_spans GROUP BY trace_id, span_id
), walk(trace_id, span_id, cursor, depth, agent_id, task_id) AS (
    SELECT trace_id, span_id, parent_span_id, 0, own_agent, own_task FROM nodes
    UNION ALL
    SELECT w.trace_id, w.span_id, n.parent_span_id, w.depth + 1,
           coalesce(w.agent_id, n.own_agent), coalesce(w.task_id, n.own_task)
    FROM walk w JOIN nodes n ON n.trace_id = w.trace_id AND n.span_id = w.cursor
    WHERE (w.agent_id IS NULL OR w.task_id IS NULL) AND w.depth < 32
)
SELECT trace_id, span_id, arg_max(agent_id, depth) AS agent_id, arg_max(task_id, depth) AS task_id
FROM walk GROUP BY trace_id, span_id;

CREATE OR REPLACE TEMP TABLE o_trace AS
SELECT trace_id,
    arg_min(own_agent, ts) FILTER (WHERE own_agent IS NOT NULL) AS agent_id,
    arg_min(own_task, ts) FILTER (WHERE own_task IS NOT NULL) AS task_id,
    -- A trace with no GenAI or MCP span (a plain HTTP trace in the same export) is no agent task.
    bool_or(operation IS NOT NULL OR mcp_method IS NOT NULL OR own_agent IS NOT NULL OR own_task IS NOT NULL) AS is_agent_trace
FROM o_spans GROUP BY trace_id;

CREATE OR REPLACE TEMP TABLE o_resolved AS
SELECT o.*,
    coalesce(i.agent_id, t.agent_id, cw_attr_text(o.res_attrs, 'service.name')) AS agent_id,
    CASE WHEN t.is_agent_trace THEN coalesce(i.task_id, t.task_id, o.trace_id) END AS task_id,
    CASE WHEN NOT t.is_agent_trace THEN NULL
         WHEN o.own_task IS NOT NULL THEN 'span_attribute'
         WHEN i.task_id IS NOT NULL THEN 'ancestor_span'
         WHEN t.task_id IS NOT NULL THEN 'trace'
         ELSE 'trace_id' END AS task_source,
    'otlp:' || o.trace_id || ':' || o.span_id AS event_id,
    CASE WHEN o.status.code IN ('2', 'STATUS_CODE_ERROR') OR cw_attr_text(o.attrs, 'error.type') IS NOT NULL
         THEN CASE WHEN regexp_matches(coalesce(cw_attr_text(o.attrs, 'error.type'), '') || ' ' || coalesce(o.status.message, ''),
                                       '(?i)denied|forbidden|unauthori[sz]ed|permission|\b40[13]\b') THEN 'denied' ELSE 'error' END
         ELSE 'ok' END AS outcome,
    coalesce(o.operation = 'execute_tool' OR o.mcp_method = 'tools/call', false) AS is_tool
FROM o_spans o
LEFT JOIN o_inherited i USING (trace_id, span_id)
LEFT JOIN o_trace t USING (trace_id);

-- An MCP call traced on both sides is one call: a server span (kind SERVER) with the
-- mcp.session.id and jsonrpc.request.id of a client-side tool span (MCP forbids reusing a request
-- id within a session) goes to agent_spans under that call's agent and task, so a server span
-- exported in a trace of its own creates no second task. Two client-side spans with the same ids
-- stay two actions.
UPDATE o_resolved SET is_tool = false, agent_id = c.call_agent, task_id = c.call_task,
    task_source = c.call_task_source
FROM (
    SELECT trace_id, span_id, is_server,
        first_value(agent_id) OVER call AS call_agent, first_value(task_id) OVER call AS call_task,
        first_value(task_source) OVER call AS call_task_source,
        bool_or(NOT is_server) OVER (PARTITION BY mcp_session, rpc_id) AS has_client
    FROM (SELECT *, coalesce(span_kind IN ('2', 'SPAN_KIND_SERVER'), false) AS is_server FROM o_resolved
          WHERE is_tool AND mcp_session IS NOT NULL AND rpc_id IS NOT NULL
          QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY source_file, source_line, source_record) = 1)
    WINDOW call AS (PARTITION BY mcp_session, rpc_id ORDER BY is_server, ts, trace_id, span_id
                    ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
) c
WHERE c.is_server AND c.has_client AND o_resolved.trace_id = c.trace_id AND o_resolved.span_id = c.span_id;

-- Tool spans with their arguments converted once, for p_actions and p_content below (the
-- AnyValue converter is a large macro: binding it costs ~0.1 s per use, so it is used once).
CREATE OR REPLACE TEMP TABLE o_tools AS
WITH tools AS MATERIALIZED (
    SELECT *,
        coalesce(cw_attr_text(attrs, 'gen_ai.tool.name'), cw_attr_text(attrs, 'mcp.tool.name'),
                 nullif(trim(regexp_replace(name, '^execute_tool', '')), '')) AS tool,
        cw_attr(attrs, 'gen_ai.tool.call.arguments') AS arg_value
    FROM o_resolved WHERE is_tool
)
SELECT *,
    arg_value ->> 'stringValue' AS arg_string,
    CASE WHEN arg_value IS NOT NULL AND (arg_value -> 'stringValue') IS NULL THEN cw_any_json(arg_value) END AS arg_json
FROM tools;

INSERT INTO p_actions
SELECT event_id, ts, agent_id, task_id, task_source, trace_id, span_id, parent_span_id,
    coalesce(tool, 'unknown_tool'),
    coalesce('mcp:' || cw_attr_text(attrs, 'mcp.server.name'), cw_attr_text(attrs, 'server.address'),
             CASE WHEN mcp_method IS NOT NULL OR cw_attr_text(attrs, 'mcp.session.id') IS NOT NULL THEN 'mcp' END),
    NULL, NULL, NULL, NULL,
    try_cast(cw_attr_text(attrs, 'mcp.tool.annotations.readOnlyHint') AS BOOLEAN),
    try_cast(cw_attr_text(attrs, 'mcp.tool.annotations.destructiveHint') AS BOOLEAN),
    try_cast(cw_attr_text(attrs, 'mcp.tool.annotations.openWorldHint') AS BOOLEAN),
    outcome,
    CASE WHEN outcome <> 'ok' THEN coalesce(cw_redact(cw_attr_text(attrs, 'error.type')), left(cw_redact(status.message), 200)) END,
    try(date_diff('microsecond', ts, end_ts)) / 1000.0,
    cw_hash('native', cw_attr_text(attrs, 'chainwatch.credential.id')),
    coalesce(cw_attr_text(attrs, 'client.address'), cw_attr_text(attrs, 'source.address')),
    cw_redact(CASE
        WHEN arg_value IS NULL THEN NULL
        WHEN arg_string IS NOT NULL THEN
            CASE WHEN json_valid(arg_string) THEN json(arg_string)::VARCHAR ELSE to_json(arg_string)::VARCHAR END
        ELSE arg_json END),
    -- Bytes sent: the HTTP request body, else the message body of a messaging tool.
    coalesce(cw_byte_count(cw_attr_text(attrs, 'http.request.body.size')),
             cw_byte_count(cw_attr_text(attrs, 'messaging.message.body.size'))),
    'otlp', source_file, source_offset, source_line, source_record
FROM o_tools;

-- Every tool call's own arguments, raw, for content_entities.sql (only their hashes are kept).
INSERT INTO p_content
SELECT event_id, ts, trace_id, span_id, task_id, agent_id, 'argument', coalesce(tool, 'unknown_tool'),
    call_id, coalesce(arg_string, arg_json), 'otlp', source_file, source_offset, source_line, source_record
-- A call without arguments still names its tool for its call id (body NULL: nothing to hash).
FROM (SELECT *, cw_attr_text(attrs, 'gen_ai.tool.call.id') AS call_id FROM o_tools)
WHERE arg_value IS NOT NULL OR call_id IS NOT NULL;

INSERT INTO p_spans
SELECT event_id, ts, end_ts, trace_id, span_id, parent_span_id, operation, name, agent_id, task_id,
    task_source, coalesce(cw_attr_text(attrs, 'gen_ai.request.model'), cw_attr_text(attrs, 'gen_ai.response.model')),
    outcome, 'otlp', source_file, source_offset, source_line, source_record
FROM o_resolved WHERE NOT is_tool;
