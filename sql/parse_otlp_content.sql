-- OTel GenAI opt-in content on OTLP spans, into p_content (read for entities, never stored raw).
-- Runs after parse_otlp.sql, only when content capture is on. Shapes read (docs/schema.md,
-- "Content capture"):
--   * gen_ai.input.messages / gen_ai.output.messages: [{"role", "parts": [...]}] with part types
--     text {content}, tool_call {id, name, arguments}, tool_call_response {id, response}; as a
--     JSON string or a structured AnyValue; OpenAI-style messages ({"role","content","tool_calls",
--     "tool_call_id"}) are read too;
--   * gen_ai.system_instructions: [parts] (or one string);
--   * gen_ai.tool.call.result on execute_tool spans;
--   * older forms: gen_ai.prompt / gen_ai.completion (JSON messages or text), the flattened
--     gen_ai.prompt.N.role|content|tool_call_id and gen_ai.completion.N.content, and span events
--     gen_ai.system.message, gen_ai.user.message, gen_ai.assistant.message, gen_ai.tool.message
--     (content, id) and gen_ai.choice (message).
-- origin by role: user|human -> user, system|developer -> system, tool|function|ipython -> tool,
-- anything else -> model. Input messages are dated at the span's start, output at its end.

-- Structured AnyValue messages (arrayValue of kvlistValue) read straight into plain JSON objects
-- with the keys the message and part shapes use: a kvlist as a map, each known key converted.
-- A repeated key keeps its first value (map_from_entries refuses duplicates).
CREATE OR REPLACE TEMP MACRO cw_kv(v) AS list_transform([coalesce(
    try(json_transform(v -> 'kvlistValue' -> 'values', '[{"key":"VARCHAR","value":"JSON"}]')), [])],
    es -> map_from_entries(list_filter(es, (e, i) -> list_position(list_transform(es, x -> x.key), e.key) = i)))[1];

CREATE OR REPLACE TEMP MACRO cw_any_items(v) AS coalesce(
    try(json_transform(v -> 'arrayValue' -> 'values', '["JSON"]')), []);

-- A string as itself; anything structured stays AnyValue JSON (its scalars are still fields).
CREATE OR REPLACE TEMP MACRO cw_any_raw(v) AS coalesce(v ->> 'stringValue', v::VARCHAR);

CREATE OR REPLACE TEMP MACRO cw_plain_part(p) AS json_object(
    'type', p['type'] ->> 'stringValue', 'content', cw_any_raw(p['content']), 'text', cw_any_raw(p['text']),
    'id', cw_any_raw(p['id']), 'name', p['name'] ->> 'stringValue',
    'arguments', cw_any_raw(p['arguments']), 'response', cw_any_raw(p['response']),
    'role', p['role'] ->> 'stringValue', 'tool_call_id', cw_any_raw(p['tool_call_id']));

-- Macro arguments are pasted, not evaluated once: each kvlist goes through cw_kv in its own
-- list_transform so that the map is built once, not once per key read from it.
CREATE OR REPLACE TEMP MACRO cw_plain_message(m) AS json_merge_patch(cw_plain_part(m), json_object(
    'parts', CASE WHEN m['parts'] IS NOT NULL
                  THEN to_json(list_transform(list_transform(cw_any_items(m['parts']), x -> cw_kv(x)),
                                              p -> cw_plain_part(p))) END));

CREATE OR REPLACE TEMP MACRO cw_role_origin(role) AS CASE
    WHEN lower(role) IN ('user', 'human') THEN 'user'
    WHEN lower(role) IN ('system', 'developer') THEN 'system'
    WHEN lower(role) IN ('tool', 'function', 'ipython', 'tool_result') THEN 'tool'
    ELSE 'model' END;

-- Tool results on the tool's own span.
-- (Each attribute is looked up once in a materialised step: macros paste their argument, so
-- cw_any_doc(cw_attr(...)) would search the attribute list once per use inside cw_any_doc.)
INSERT INTO p_content
WITH results AS MATERIALIZED (
    SELECT event_id, coalesce(end_ts, ts) AS ts, trace_id, span_id, task_id, agent_id, name,
        cw_attr(attrs, 'gen_ai.tool.call.result') AS result, cw_attr(attrs, 'gen_ai.tool.name') AS tool,
        cw_attr(attrs, 'mcp.tool.name') AS mcp_tool, cw_attr(attrs, 'gen_ai.tool.call.id') AS call_id,
        source_file, source_offset, source_line, source_record
    FROM o_resolved WHERE list_contains(list_transform(attrs, a -> a.key), 'gen_ai.tool.call.result')
)
SELECT event_id, ts, trace_id, span_id, task_id, agent_id, 'tool',
    coalesce(cw_any_text(tool), cw_any_text(mcp_tool),
             nullif(trim(regexp_replace(name, '^execute_tool', '')), ''), 'unknown_tool'),
    cw_any_text(call_id), cw_any_doc(result),
    'otlp', source_file, source_offset, source_line, source_record
FROM results WHERE result IS NOT NULL;

-- Message documents on any span: (which list, its date, its text).
-- Every chat span repeats the conversation so far. When a list starts with the whole previous
-- list of its trace (same kind, same encoding) only its tail is parsed: reading each span's
-- history again would make a long conversation cost the square of its length. The cut is taken
-- only at an element boundary (a comma or the end); anything else is parsed whole.
CREATE OR REPLACE TEMP TABLE oc_docs AS
WITH attrs AS (
    SELECT event_id, ts, end_ts, trace_id, span_id, task_id, agent_id, source_file, source_offset,
        source_line, source_record, unnest(attrs) AS a
    FROM o_resolved
), docs AS MATERIALIZED (
    SELECT * EXCLUDE (a),
        CASE WHEN a.key IN ('gen_ai.output.messages', 'gen_ai.completion') THEN 'output'
             WHEN a.key = 'gen_ai.system_instructions' THEN 'system' ELSE 'input' END AS which,
        CASE WHEN a.key IN ('gen_ai.output.messages', 'gen_ai.completion') THEN 'assistant'
             WHEN a.key = 'gen_ai.system_instructions' THEN 'system' ELSE 'user' END AS default_role,
        CASE WHEN a.key IN ('gen_ai.output.messages', 'gen_ai.completion') THEN coalesce(end_ts, ts) ELSE ts END AS doc_ts,
        a.value ->> 'stringValue' AS doc,
        CASE WHEN (a.value -> 'arrayValue') IS NOT NULL THEN a.value::VARCHAR END AS any_array,
        CASE WHEN (a.value -> 'arrayValue') IS NULL AND (a.value -> 'kvlistValue') IS NOT NULL THEN a.value END AS any_kvlist
    FROM attrs
    WHERE a.key IN ('gen_ai.input.messages', 'gen_ai.output.messages', 'gen_ai.system_instructions',
                    'gen_ai.prompt', 'gen_ai.completion')
), chained AS MATERIALIZED (
    SELECT *,
        CASE WHEN any_array IS NOT NULL THEN '{"arrayValue":{"values":[' ELSE '[' END AS opening,
        CASE WHEN any_array IS NOT NULL THEN ']}}' ELSE ']' END AS closing,
        coalesce(any_array, doc) AS whole,
        rtrim(lag(coalesce(any_array, doc)) OVER (
            PARTITION BY trace_id, which, any_array IS NULL ORDER BY doc_ts, event_id)) AS prev
    FROM docs WHERE (doc IS NOT NULL AND doc <> '') OR any_array IS NOT NULL OR any_kvlist IS NOT NULL
), cut AS MATERIALIZED (
    SELECT * EXCLUDE (prev),
        CASE WHEN prev IS NOT NULL AND length(prev) > length(closing) AND ends_with(prev, closing)
                  AND starts_with(whole, left(prev, length(prev) - length(closing)))
             THEN substr(whole, length(prev) - length(closing) + 1) END AS rest
    FROM chained
), tails AS MATERIALIZED (
    SELECT *,
        CASE WHEN rest IS NOT NULL AND rtrim(rest) = closing THEN 'none'
             WHEN rest IS NOT NULL AND regexp_matches(rest, '^\s*,') THEN 'tail' END AS cut_kind,
        CASE WHEN rest IS NOT NULL AND regexp_matches(rest, '^\s*,')
             THEN opening || regexp_replace(rest, '^\s*,\s*', '') ELSE whole END AS to_parse
    FROM cut
)
SELECT event_id, doc_ts AS ts, trace_id, span_id, task_id, agent_id, source_file, source_offset,
    source_line, source_record, which, default_role, doc,
    -- Parsed once: a list of messages (or parts), NULL for plain text or broken JSON.
    CASE WHEN cut_kind = 'none' THEN []
         WHEN any_array IS NOT NULL
             THEN list_transform(list_transform(cw_any_items(try(to_parse::JSON)), x -> cw_kv(x)), m -> cw_plain_message(m))
         WHEN any_kvlist IS NOT NULL THEN list_transform([cw_kv(any_kvlist)], m -> cw_plain_message(m))
         WHEN regexp_matches(doc, '^\s*\[') THEN try(json_transform(to_parse, '["JSON"]'))
         WHEN regexp_matches(doc, '^\s*\{') AND json_valid(doc) THEN [doc::JSON] END AS items
FROM tails;

-- One row per message. System instructions are a list of parts, not of messages.
CREATE OR REPLACE TEMP TABLE oc_msgs AS
WITH all_items AS (
    SELECT * EXCLUDE (items, doc), unnest(items) AS item FROM oc_docs WHERE items IS NOT NULL
), items AS (
    -- Every chat span repeats the conversation so far: read each message once per trace, where
    -- it first appears.
    SELECT * FROM all_items
    QUALIFY row_number() OVER (PARTITION BY trace_id, which = 'system', md5(item::VARCHAR) ORDER BY ts, event_id) = 1
)
SELECT event_id, ts, trace_id, span_id, task_id, agent_id, source_file, source_offset, source_line,
    source_record,
    CASE WHEN which = 'system' THEN 'system' ELSE coalesce(item ->> 'role', default_role) END AS role,
    CASE WHEN which = 'system' THEN [item]
         WHEN json_type(item -> 'parts') = 'ARRAY' THEN json_transform(item -> 'parts', '["JSON"]')
         WHEN json_type(item -> 'content') = 'ARRAY' THEN json_transform(item -> 'content', '["JSON"]')
         WHEN json_type(item) = 'VARCHAR' THEN [item]
         WHEN (item -> 'content') IS NOT NULL AND json_type(item -> 'content') <> 'NULL' THEN [item -> 'content']
         ELSE [] END AS parts,
    CASE WHEN json_type(item -> 'tool_calls') = 'ARRAY' THEN json_transform(item -> 'tool_calls', '["JSON"]') END AS tool_calls,
    item ->> 'tool_call_id' AS tool_call_id
FROM items
UNION ALL
-- A plain-text prompt or completion is one message.
SELECT event_id, ts, trace_id, span_id, task_id, agent_id, source_file, source_offset, source_line,
    source_record, default_role, [to_json(doc)], NULL, NULL
FROM oc_docs WHERE items IS NULL AND doc IS NOT NULL;

INSERT INTO p_content
WITH parts AS (
    SELECT * EXCLUDE (parts), unnest(parts) AS part FROM oc_msgs
)
SELECT event_id, ts, trace_id, span_id, task_id, agent_id,
    CASE WHEN part ->> 'type' = 'tool_call' THEN 'model'
         WHEN part ->> 'type' = 'tool_call_response' THEN 'tool'
         ELSE cw_role_origin(role) END,
    CASE WHEN part ->> 'type' = 'tool_call' THEN part ->> 'name' END,
    CASE WHEN part ->> 'type' IN ('tool_call', 'tool_call_response') THEN part ->> 'id'
         ELSE tool_call_id END,
    CASE WHEN json_type(part) = 'VARCHAR' THEN part ->> '$'
         WHEN part ->> 'type' = 'tool_call' THEN cw_json_body(part -> 'arguments')
         WHEN part ->> 'type' = 'tool_call_response' THEN cw_json_body(part -> 'response')
         ELSE coalesce(cw_json_body(part -> 'content'), cw_json_body(part -> 'text')) END,
    'otlp', source_file, source_offset, source_line, source_record
FROM parts
UNION ALL
-- OpenAI-style tool calls on an assistant message.
SELECT event_id, ts, trace_id, span_id, task_id, agent_id, 'model',
    coalesce(tc -> 'function' ->> 'name', tc ->> 'name'), tc ->> 'id',
    coalesce(cw_json_body(tc -> 'function' -> 'arguments'), cw_json_body(tc -> 'arguments')),
    'otlp', source_file, source_offset, source_line, source_record
FROM (SELECT *, unnest(tool_calls) AS tc FROM oc_msgs WHERE tool_calls IS NOT NULL);

-- Flattened attributes: gen_ai.prompt.N.role / .content / .tool_call_id, gen_ai.completion.N.*.
INSERT INTO p_content
WITH flat AS (
    SELECT o.event_id, o.ts, o.end_ts, o.trace_id, o.span_id, o.task_id, o.agent_id, o.source_file,
        o.source_offset, o.source_line, o.source_record,
        regexp_extract(a.key, '^gen_ai\.(prompt|completion)\.([0-9]+)\.(role|content|tool_call_id)$', 1) AS side,
        regexp_extract(a.key, '^gen_ai\.(prompt|completion)\.([0-9]+)\.(role|content|tool_call_id)$', 2) AS idx,
        regexp_extract(a.key, '^gen_ai\.(prompt|completion)\.([0-9]+)\.(role|content|tool_call_id)$', 3) AS field,
        cw_any_doc(a.value) AS val
    FROM (SELECT event_id, ts, end_ts, trace_id, span_id, task_id, agent_id, source_file, source_offset,
                 source_line, source_record, unnest(attrs) AS a FROM o_resolved) o
    WHERE starts_with(a.key, 'gen_ai.') AND regexp_matches(a.key, '^gen_ai\.(prompt|completion)\.[0-9]+\.(role|content|tool_call_id)$')
), msgs AS (
    SELECT event_id, side, idx,
        any_value(CASE WHEN side = 'completion' THEN coalesce(end_ts, ts) ELSE ts END) AS ts,
        any_value(trace_id) AS trace_id, any_value(span_id) AS span_id, any_value(task_id) AS task_id,
        any_value(agent_id) AS agent_id, any_value(source_file) AS source_file,
        any_value(source_offset) AS source_offset, any_value(source_line) AS source_line,
        any_value(source_record) AS source_record,
        max(val) FILTER (WHERE field = 'role') AS role, max(val) FILTER (WHERE field = 'content') AS content,
        max(val) FILTER (WHERE field = 'tool_call_id') AS tool_call_id
    FROM flat GROUP BY event_id, side, idx
)
SELECT event_id, ts, trace_id, span_id, task_id, agent_id,
    cw_role_origin(coalesce(role, CASE WHEN side = 'prompt' THEN 'user' ELSE 'assistant' END)),
    NULL, tool_call_id, content, 'otlp', source_file, source_offset, source_line, source_record
FROM msgs WHERE content IS NOT NULL AND content <> '';

-- Span events of the older conventions.
INSERT INTO p_content
WITH ev_attrs AS MATERIALIZED (
    SELECT o.event_id, o.trace_id, o.span_id, o.task_id, o.agent_id, o.source_file, o.source_offset,
        o.source_line, o.source_record, o.ts AS span_ts, e.name AS event_name,
        cw_epoch_us(try_cast(e.timeUnixNano ->> '$' AS HUGEINT) // 1000) AS event_ts,
        cw_attr(e.attributes, 'content') AS a_content, cw_attr(e.attributes, 'gen_ai.event.content') AS a_event_content,
        cw_attr(e.attributes, 'body') AS a_body, cw_attr(e.attributes, 'message') AS a_message,
        cw_attr(e.attributes, 'id') AS a_id, cw_attr(e.attributes, 'tool_call_id') AS a_tool_call_id
    FROM (SELECT event_id, trace_id, span_id, task_id, agent_id, source_file, source_offset,
                 source_line, source_record, ts, unnest(events) AS e
          FROM o_resolved WHERE len(events) > 0) o
    WHERE e.name IN ('gen_ai.system.message', 'gen_ai.user.message', 'gen_ai.assistant.message',
                     'gen_ai.tool.message', 'gen_ai.choice')
), ev AS MATERIALIZED (
    SELECT * EXCLUDE (a_content, a_event_content, a_body, a_message, a_id, a_tool_call_id),
        -- One cw_any_doc for both (binding that macro costs ~0.1 s per use).
        list_transform([coalesce(a_content, a_event_content, a_body), a_message], v -> cw_any_doc(v)) AS docs,
        coalesce(cw_any_text(a_id), cw_any_text(a_tool_call_id)) AS call_id
    FROM ev_attrs
), ev_docs AS (
    SELECT * EXCLUDE (docs), docs[1] AS content, docs[2] AS message FROM ev
), bodies AS (
    SELECT *,
        CASE WHEN coalesce(CASE WHEN json_valid(coalesce(message, content)) THEN json_type(coalesce(message, content)::JSON) = 'OBJECT' END, false)
             THEN coalesce(message, content)::JSON END AS obj
    FROM ev_docs
)
SELECT event_id, coalesce(event_ts, span_ts), trace_id, span_id, task_id, agent_id,
    CASE event_name WHEN 'gen_ai.system.message' THEN 'system' WHEN 'gen_ai.user.message' THEN 'user'
        WHEN 'gen_ai.tool.message' THEN 'tool' ELSE 'model' END,
    NULL, coalesce(call_id, obj ->> 'id', obj ->> 'tool_call_id'),
    CASE WHEN obj IS NOT NULL AND (obj -> 'content') IS NOT NULL THEN cw_json_body(obj -> 'content')
         ELSE coalesce(content, message) END,
    'otlp', source_file, source_offset, source_line, source_record
FROM bodies WHERE coalesce(content, message) IS NOT NULL;
