-- Entities in captured content and in tool-call arguments (p_content), as keyed hashes with their
-- origin, into p_entities (committed to content_entities by ingest_commit.sql). Raw text stays in
-- this batch's temp tables. Inputs: p_content, p_actions_classified, tool_trust, $content_chars,
-- $content_keep_text.
--
-- Entities: e-mail addresses, URLs and hosts, IBANs, phone numbers, file names, quoted strings,
-- words with digits (ids, amounts, dates, passwords), capitalised names (one to six words), every scalar value of a JSON
-- document or field value of text (YAML lines, quoted values in reprs, HTML cells) as a whole,
-- and, for the user's request and system instructions, every word and run of 2-3 words. All are normalised the
-- same way (cw_norm_entity) so that an argument and the text it came from hash alike:
-- lower case; no scheme, "mailto:", surrounding quotes or trailing punctuation / slash; IBANs
-- without spaces; phone-like numbers as digits; "100.50" as "100.5".
-- in_text: the entity sits inside longer text (a sentence), not as a whole field value.
-- instruction_like: the text around it addresses the agent with instructions (injection markers),
-- or names one of the agent's tools (tool-knowledge injections: "call send_money with ...").

CREATE OR REPLACE TEMP MACRO cw_norm_core(v) AS
    regexp_replace(regexp_replace(regexp_replace(lower(trim(v)),
        '^(mailto:|[a-z][a-z0-9+.-]*://)', ''),
        '^[\s''"`“‘(\[<#@]+', ''),
        '[\s/.,;:!?''"`”’)\]>\\]+$', '');

CREATE OR REPLACE TEMP MACRO cw_norm_shape(x) AS CASE
    WHEN regexp_full_match(x, '[a-z]{2}[0-9]{2}( ?[a-z0-9]){10,34}') THEN replace(x, ' ', '')
    WHEN regexp_full_match(x, '\+?[0-9][0-9 ().-]{6,}[0-9]') THEN regexp_replace(x, '[^0-9+]', '', 'g')
    WHEN regexp_full_match(x, '-?[0-9]+\.[0-9]+') THEN rtrim(rtrim(x, '0'), '.')
    ELSE x END;

-- Macros paste their argument: through a lambda, cw_norm_core runs once, not once per use of x.
CREATE OR REPLACE TEMP MACRO cw_norm_entity(v) AS list_transform([cw_norm_core(v)], x -> cw_norm_shape(x))[1];

-- Injection markers: text that addresses the model or overrides its instructions.
CREATE OR REPLACE TEMP MACRO cw_instruction_like(t) AS regexp_matches(t,
    '(?i)(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)*(previous|prior|above|earlier|preceding|original|former)\s+(instructions?|prompts?|messages?|directions?|tasks?|rules)'
    || '|</?\s*(information|instructions?|system|important|admin|assistant)\s*>'
    || '|\b(important|urgent|new|updated|additional)\s+(message|instructions?|notice|directive|task)s?\s+(from|for|to)\b'
    || '|\b(before|after)\s+(you|u)\s+(can\s+|may\s+|could\s+)?(solve|complete|finish|continue|proceed|answer|do|respond)'
    || '|\b(to|for|dear|hey|attention)\s+(the\s+)?(ai|llm|assistant|agent|model|bot|chatbot)\b'
    || '|\b(ai|llm|language)\s+(assistant|agent|model)\b'
    || '|\b(you|assistant|agent)\s+(must|should|need\s+to|have\s+to|are\s+required\s+to|are\s+instructed\s+to)\s+(first\s+|now\s+|also\s+|immediately\s+|urgently\s+)?(send|transfer|pay|wire|e-?mail|forward|delete|remove|visit|open|click|go\s+to|invite|add|book|reserve|change|update|reset|share|post|upload|grant|create|schedule|make)'
    || '|\b(assistant|ai|agent|chatbot|llm|model)\s*[:,]\s*(please\s+)?(now\s+|also\s+|first\s+)?(send|transfer|pay|wire|e-?mail|forward|delete|remove|visit|open|click|go\s+to|invite|add|book|reserve|change|update|reset|share|post|upload|grant|create|schedule|make|ignore)'
    || '|\bsystem[\s_-]+(message|prompt|override|instruction|update|notice|administrator)'
    || '|\bimportant\s*!{2,}|\bstrictly\s+(adhere|follow)|\binstead\s*,?\s+(you\s+)?(should|must|will)\b'
    || '|<\|im_(start|end)\|>|\btodo\b|\bnote\s+(for|to)\s+(the\s+)?(assistant|ai|agent|model|bot)'
    || '|\b(assistant|ai|agent|model|bot)\s+(handling|reading|processing)\s+this'
    || '|\bforget\s+(about\s+)?(the\s+|your\s+)?(user''?s?|previous|original|prior)\s+(request|task|instructions?|prompt)'
    -- Tool knowledge: text that names a function the agent can call, or calls it.
    || '|\b(use|call|invoke|run|with|via|using)\s+(the\s+)?`?[a-z][a-z0-9]*(_[a-z0-9]+)+`?(\s+(tool|function))?\b'
    || '|\b[a-z][a-z0-9]*(_[a-z0-9]+)+\s*\([a-z_]*\s*[=:)]'
    || '|\b(todo|note\s+to\s+(the\s+)?(assistant|ai|agent|model))\s*:'
    || '|\b(do\s+not|don''t|never)\s+(tell|inform|mention|notify|reveal\s+(this\s+)?to|let)\s+(this\s+)?(to\s+)?the\s+user'
    || '|\bwithout\s+(telling|informing|asking|notifying)\s+the\s+user'
    || '|\[\s*(system|admin|instructions?|inst)\s*\]|<<\s*sys\s*>>|\bnew\s+instructions?\s*:');

-- Tool results repeat in every later prompt of a conversation: keep the first copy of each.
CREATE OR REPLACE TEMP TABLE c_rows AS
WITH called AS (
    -- Equality-only joins: an extra condition in ON turns DuckDB's hash join into a nested loop.
    SELECT c.*, coalesce(c.tool, a.tool, m.tool, w.tool) AS tool_name,
        CASE WHEN c.origin IN ('tool', 'argument') THEN pa.output_trust END AS action_trust
    FROM p_content c
    LEFT JOIN (SELECT trace_id, call_id, any_value(tool) AS tool FROM p_content
               WHERE origin = 'argument' AND call_id IS NOT NULL GROUP BY ALL) a
        ON a.trace_id = c.trace_id AND a.call_id = c.call_id
    LEFT JOIN (SELECT trace_id, call_id, any_value(tool) AS tool FROM p_content
               WHERE origin = 'model' AND call_id IS NOT NULL AND tool IS NOT NULL GROUP BY ALL) m
        ON m.trace_id = c.trace_id AND m.call_id = c.call_id
    -- A tool result repeated in a later file: the call's tool as an earlier batch stored it.
    LEFT JOIN (SELECT trace_id, call_id, any_value(tool) AS tool FROM content_entities
               WHERE call_id IS NOT NULL AND tool IS NOT NULL AND origin IN ('argument', 'tool')
                 AND (trace_id, call_id) IN (SELECT (trace_id, call_id) FROM p_content WHERE origin = 'tool' AND tool IS NULL)
               GROUP BY ALL) w
        ON w.trace_id = c.trace_id AND w.call_id = c.call_id
    LEFT JOIN (SELECT event_id, any_value(output_trust) AS output_trust FROM p_actions_classified GROUP BY ALL) pa
        ON pa.event_id = c.event_id
    WHERE c.body IS NOT NULL AND c.body <> ''
), named AS (
    SELECT c.* EXCLUDE (action_trust), coalesce(c.action_trust, tt.output_trust) AS own_trust
    FROM called c LEFT JOIN tool_trust tt ON tt.tool = c.tool_name
)
SELECT event_id, ts, trace_id, span_id, task_id, agent_id, origin, tool_name AS tool, call_id,
    CASE WHEN origin = 'tool' THEN coalesce(own_trust, 'untrusted') END AS trust,
    body,
    -- JSON escapes (\n) would hide word boundaries from the markers.
    cw_instruction_like(regexp_replace(body, '\\[nrt"]', ' ', 'g'))
        OR list_has_any(regexp_extract_all(lower(body), '[a-z][a-z0-9]*(?:_[a-z0-9]+)+'),
                        (SELECT coalesce(list(DISTINCT lower(tool)), []) FROM p_actions WHERE contains(tool, '_')))
        AS instruction_like,
    -- The user's request asks for an action (not only to read, find or summarise): an agent that
    -- pays, sends or deletes on a read-only request acts on something else's instructions.
    CASE WHEN origin = 'user' THEN regexp_matches(lower(body),
        '\b(send|sent|pay|transfer|wire|refund|book|reserve|invite|add|post|publish|share|forward|reply|respond|answer|e-?mail|mail|message|text|call|delete|remove|cancel|change|update|reset|set|create|schedule|make|write|upload|buy|order|purchase|move|rename|submit|grant|notify|tell|inform|let\s+\w+\s+know|do\s+(it|that|this|so|what)|go\s+ahead|proceed|follow|complete|handle|take\s+care|act\s+on|sign|register|subscribe|rent|join|put|place|give|provide|fill|apply|approve|accept|decline|confirm|arrange|organi[sz]e|save|store|file|request|return|mark|assign|close|archive|back\s+up|backup|fix|set\s+up|execute|run|perform|enrol+|hire|upgrade|renew|reschedule)\b')
    END AS asks_to_act,
    source_format, source_file, source_offset, source_line, source_record,
    row_number() OVER () AS content_no
FROM named
QUALIFY origin = 'argument' OR row_number() OVER (
    PARTITION BY coalesce(trace_id, 'task:' || task_id, 'event:' || event_id), origin, coalesce(call_id, ''), md5(body)
    ORDER BY ts, event_id) = 1;

-- Segments: each JSON scalar (with its top-level key), each "key: value" line's value, and the
-- whole text of a non-JSON body.
CREATE OR REPLACE TEMP TABLE c_segments AS
WITH checked AS (
    SELECT *, coalesce(CASE WHEN json_valid(body) THEN json_type(body::JSON) IN ('OBJECT', 'ARRAY') END, false) AS is_json FROM c_rows
), parsed AS (
    -- Text that is not JSON may still carry escapes (a YAML dump's double-quoted strings fold
    -- long lines with a trailing backslash, and write \n): undone, so that "ID 1Jbw...\" and
    -- "\nmark@x.com" do not glue a backslash or an "n" to the value.
    SELECT *, CASE WHEN is_json THEN body ELSE
        regexp_replace(regexp_replace(regexp_replace(body,
            '\\\r?\n[ \t]*\\ ', ' ', 'g'), '\\\r?\n[ \t]*', '', 'g'), '\\[nrt]', ' ', 'g') END AS text
    FROM checked
), leaves AS (
    SELECT p.content_no, regexp_extract(jt.fullkey, '^\$\.("([^"]*)"|([^.\[]+))', 0) AS top_key,
        cw_json_body(jt.atom) AS seg, true AS is_field, true AS scan
    FROM (SELECT content_no, body::JSON AS j FROM parsed WHERE is_json) p, json_tree(p.j) jt
    WHERE jt.atom IS NOT NULL AND json_type(jt.atom) <> 'NULL'
), scalars AS (
    SELECT content_no, '$' AS top_key,
        CASE WHEN coalesce(CASE WHEN json_valid(body) THEN json_type(body::JSON) = 'VARCHAR' END, false) THEN body::JSON ->> '$' ELSE text END AS seg,
        length(body) <= 200 AND NOT contains(body, chr(10)) AS is_field, true AS scan
    FROM parsed WHERE NOT is_json
), lines AS (
    -- Field values inside text: "key: value" lines (YAML), quoted values after ':', '=', '[' or
    -- ',' (Python reprs, logs), and HTML cell / element text.
    SELECT content_no, '$' AS top_key, unnest(
        regexp_extract_all(text, '(?m)^[ \t]*(?:-[ \t]+)?[A-Za-z_][A-Za-z0-9_ .-]{0,40}:[ \t]+(\S.*?)[ \t]*$', 1)
        || regexp_extract_all(text, '[:=\[,(]\s*''([^''\n]{1,200})''', 1)
        || regexp_extract_all(text, '[:=\[,(]\s*"([^"\n]{1,200})"', 1)
        || regexp_extract_all(text, '>\s*([^<>\n]{1,200}?)\s*<', 1)) AS seg,
        true AS is_field, false AS scan
    FROM parsed WHERE NOT is_json AND origin <> 'argument'
)
-- Only whole texts and JSON scalars are scanned for entities; the field values found inside a
-- text are already part of it and only add their whole value (kept as a field, see p_entities).
SELECT content_no, regexp_replace(top_key, '^\$\.("|)|"$', '', 'g') AS top_key, seg,
    is_field, scan
FROM (SELECT * FROM leaves UNION ALL SELECT * FROM scalars UNION ALL SELECT * FROM lines)
WHERE seg IS NOT NULL AND seg <> '';

CREATE OR REPLACE TEMP TABLE c_found AS
WITH exact AS (
    SELECT content_no, top_key, 'value' AS kind, seg AS raw, false AS in_text
    FROM c_segments WHERE is_field AND length(seg) <= 200
), inside AS (
    -- One expression per pattern: a pattern taken from a column would be compiled for every row.
    SELECT s.content_no, s.top_key, r.origin, unnest([
            {'kind': 'email', 'hits': regexp_extract_all(s.seg, '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}')},
            {'kind': 'url', 'hits': regexp_extract_all(s.seg, '(?i)(?:https?://|www\.)[^\s"''<>\\)\]}`,;]+')},
            {'kind': 'host', 'hits': regexp_extract_all(s.seg, '(?i)\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|org|net|io|dev|ai|co|uk|de|fr|info|biz|app|xyz|me|us|eu|ch|site|online|gov|edu|ru|cn|in|nl|es|it|se|no|pl|top|tech|store|shop|link|live|cloud|example)\b')},
            {'kind': 'iban', 'hits': regexp_extract_all(s.seg, '(?i)\b[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{10,30}|(?: [A-Z0-9]{4}){2,7}(?: [0-9]{1,4})?)\b')},
            {'kind': 'phone', 'hits': regexp_extract_all(s.seg, '\+?[0-9][0-9 ().-]{7,18}[0-9]')},
            {'kind': 'quoted', 'hits': regexp_extract_all(s.seg, '''([^''\n]{1,120})''', 1)},
            {'kind': 'quoted', 'hits': regexp_extract_all(s.seg, '"([^"\n]{1,120})"', 1)},
            {'kind': 'quoted', 'hits': regexp_extract_all(s.seg, '“([^”\n]{1,120})”', 1)},
            {'kind': 'quoted', 'hits': regexp_extract_all(s.seg, '`([^`\n]{1,120})`', 1)},
            {'kind': 'file', 'hits': regexp_extract_all(s.seg, '(?i)[A-Za-z0-9_./~-]*[A-Za-z0-9_-]\.(?:txt|pdf|docx?|xlsx?|csv|json|md|pptx?|png|jpe?g|gif|html?|ya?ml|zip|log|eml|ics|py|sh)\b')},
            {'kind': 'token', 'hits': regexp_extract_all(s.seg, '[^\s"''`<>()\[\]{},;]*[0-9][^\s"''`<>()\[\]{},;]*')},
            {'kind': 'name', 'hits': regexp_extract_all(s.seg, '\b[A-Z][A-Za-z''&.-]{2,}(?:[ ](?:[A-Z][A-Za-z''&.-]+|of|the|de|la|le|du|and|&|[0-9]+)){0,5}')}
        ]) AS found
    FROM c_segments s JOIN c_rows r USING (content_no)
    WHERE s.scan
)
SELECT * FROM exact
UNION ALL
-- What the user says, word by word and in runs of two and three words: anything the user named
-- (a channel, a topic, a hotel) counts as named by the user. (System instructions are long and
-- repeat on every task; their addresses, ids, names and quoted values are entities like any text.)
SELECT content_no, top_key, 'phrase', unnest(w
        || list_transform(range(1, len(w)), i -> w[i] || ' ' || w[i + 1])
        || list_transform(range(1, len(w) - 1), i -> w[i] || ' ' || w[i + 1] || ' ' || w[i + 2])), true
FROM (SELECT content_no, top_key, regexp_extract_all(lower(seg), '[^\s,;!?()\[\]{}<>"“”]+') AS w
      FROM c_segments JOIN c_rows USING (content_no) WHERE origin = 'user')
UNION ALL
-- A hit is inside text unless it is a whole field value, which its exact entity above records.
-- Arguments keep only their whole value and the addresses inside it.
SELECT content_no, top_key, found.kind, unnest(found.hits), true
FROM inside WHERE origin <> 'argument' OR found.kind IN ('email', 'url', 'iban');

-- One row per (content row, argument, entity): kept as-field if it is ever a whole field value.
-- Each distinct value normalised once, in a table of its own: in a CTE, the optimiser would push
-- the filters on norm below the DISTINCT and compute it for every row, twice.
CREATE OR REPLACE TEMP TABLE c_norms AS
SELECT raw, cw_norm_entity(raw) AS norm FROM (SELECT DISTINCT raw FROM c_found);

CREATE OR REPLACE TEMP TABLE p_entities AS
WITH normalised AS (
    SELECT f.content_no, CASE WHEN r.origin = 'argument' THEN nullif(f.top_key, '') END AS argument,
        f.kind, f.in_text, n.norm
    FROM c_found f
    JOIN c_norms n USING (raw)
    JOIN (SELECT content_no, origin FROM c_rows) r USING (content_no)
    -- One character is an entity only as a whole value or a quoted one (a file id '7').
    WHERE length(n.norm) >= CASE WHEN f.kind IN ('value', 'quoted') THEN 1 ELSE 2 END
      AND n.norm NOT IN ('true', 'false', 'null', 'none')
), grouped AS (
    SELECT content_no, argument, norm,
        -- The most specific kind: a URL that is a whole value is a url.
        arg_min(kind, CASE kind WHEN 'email' THEN 0 WHEN 'iban' THEN 1 WHEN 'url' THEN 2 WHEN 'phone' THEN 3
            WHEN 'file' THEN 4 WHEN 'host' THEN 5 WHEN 'value' THEN 6 WHEN 'quoted' THEN 7 WHEN 'name' THEN 8
            WHEN 'token' THEN 9 ELSE 10 END) AS entity_kind,
        bool_and(in_text) AS in_text
    FROM normalised GROUP BY content_no, argument, norm
), hashes AS (
    -- Each distinct value is hashed once (the same address recurs across many texts).
    SELECT norm, cw_keyed('content', norm) AS entity_hash FROM (SELECT DISTINCT norm FROM grouped)
)
SELECT r.event_id, r.ts, r.trace_id, r.span_id, r.task_id, r.agent_id, r.origin, r.tool, r.trust,
    r.call_id, g.argument, g.entity_kind, x.entity_hash, g.in_text,
    r.instruction_like, r.asks_to_act,
    -- Critical arguments: the catalog's critical_args and destination_args when it names any,
    -- else every argument that is not prose (a body, subject, description, query...).
    CASE WHEN r.origin = 'argument' THEN
        CASE WHEN len(coalesce(a.critical_args, [])) > 0 THEN list_contains(a.critical_args, g.argument)
             ELSE NOT regexp_full_match(lower(coalesce(g.argument, '')),
                '(body|content|contents|text|message|messages|subject|description|desc|notes?|comments?|summary|title|query|q|prompt|instructions?|reason|caption|markdown|html|data|payload|question|answer|language|format|limit|n|count|page_size|offset|sort|order)')
        END END AS critical,
    r.source_format, r.source_file, r.source_offset, r.source_line, r.source_record
FROM grouped g
JOIN hashes x USING (norm)
JOIN (SELECT * EXCLUDE (body) FROM c_rows) r USING (content_no)
-- Equality-only joins: an extra condition in ON turns DuckDB's hash join into a nested loop.
LEFT JOIN (SELECT event_id, critical_args FROM p_actions_classified) a ON a.event_id = r.event_id;

-- Opt-in (content_keep_text): the redacted text of each captured content row, for investigation.
CREATE OR REPLACE TEMP TABLE p_content_text AS
SELECT event_id, ts, trace_id, span_id, task_id, agent_id, origin, tool, trust, call_id,
    left(cw_redact(left(body, $content_chars * 2)), $content_chars) AS text, instruction_like,
    source_format, source_file, source_offset, source_line, source_record
FROM c_rows WHERE $content_keep_text AND origin <> 'argument';
