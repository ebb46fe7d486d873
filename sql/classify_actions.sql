-- Classify parsed actions with the tool catalog, format hints, MCP annotation hints and the
-- tool's name; find destinations; decide sensitivity and whether the action leaves the
-- organisation. Matching runs once per distinct (tool, system), not per action.
-- Each tool's output is trusted or untrusted (catalog output_trust, else MCP openWorldHint, else
-- the tool's name: web pages, inboxes, messages, channels, reviews, files, calendars and other
-- content that outsiders can write are untrusted), and its critical arguments are listed.
-- Inputs: p_actions, p_content (tools named only in captured content), catalog(entry_no,
-- tool_pattern, system_pattern, is_glob, action_class, sensitivity, external, destination_args,
-- output_trust, critical_args), $internal_domains.

CREATE OR REPLACE TEMP TABLE tool_pairs AS
SELECT DISTINCT tool, system FROM p_actions
UNION SELECT DISTINCT tool, NULL FROM p_content WHERE tool IS NOT NULL;

CREATE OR REPLACE TEMP TABLE tool_class AS
WITH matched AS (
    SELECT p.tool, p.system, c.entry_no, c.system AS catalog_system, c.system_pattern IS NOT NULL AS system_named,
           c.action_class, c.sensitivity, c.external,
           c.destination_args, c.output_trust, c.critical_args
    FROM tool_pairs p JOIN catalog c
      ON (p.tool = c.tool_pattern OR (c.is_glob AND p.tool GLOB c.tool_pattern))
     AND (c.system_pattern IS NULL OR coalesce(p.system, '') GLOB c.system_pattern)
    QUALIFY row_number() OVER (
        PARTITION BY p.tool, p.system
        ORDER BY c.is_glob, (c.system_pattern IS NULL), length(c.tool_pattern) DESC, c.entry_no) = 1
), words AS (
    SELECT tool, system,
        string_split(lower(regexp_replace(regexp_replace(tool, '([a-z0-9])([A-Z])', '\1_\2', 'g'),
                                          '[^A-Za-z0-9]+', '_', 'g')), '_') AS tokens
    FROM tool_pairs
)
SELECT w.tool, w.system, m.entry_no, m.catalog_system, m.system_named, m.action_class AS catalog_class, m.sensitivity AS catalog_sensitivity,
    m.external AS catalog_external, m.destination_args, m.output_trust AS catalog_trust,
    coalesce(m.critical_args, []) AS catalog_critical_args,
    CASE WHEN list_has_any(w.tokens, ['web', 'webpage', 'page', 'pages', 'url', 'http', 'https', 'browse',
            'browser', 'fetch', 'scrape', 'crawl', 'search', 'google', 'bing', 'email', 'emails', 'mail',
            'mails', 'inbox', 'message', 'messages', 'msg', 'channel', 'channels', 'slack', 'chat', 'review',
            'reviews', 'rating', 'ratings', 'comment', 'comments', 'post', 'posts', 'feed', 'rss', 'news',
            'article', 'articles', 'tweet', 'tweets', 'download', 'shared', 'file', 'files', 'document',
            'documents', 'doc', 'docs', 'drive', 'calendar', 'event', 'events', 'transaction',
            'transactions', 'ticket', 'tickets', 'issue', 'issues', 'notification', 'notifications',
            'received', 'unread', 'contacts', 'forum', 'wiki', 'retrieve', 'rag', 'notes', 'note'])
         THEN 'untrusted' END AS name_trust,
    list_filter(list_transform(w.tokens, t -> CASE
        WHEN t IN ('assume', 'issue', 'token', 'tokens', 'login', 'mint', 'impersonate', 'credential', 'credentials', 'rotate') THEN 'credential'
        WHEN t IN ('spawn', 'delegate', 'handoff', 'handover', 'dispatch', 'subagent', 'assign') THEN 'delegate'
        WHEN t IN ('grant', 'permission', 'permissions', 'policy', 'sudo', 'escalate', 'admin', 'chmod', 'chown') THEN 'admin'
        WHEN t IN ('delete', 'remove', 'destroy', 'drop', 'purge', 'terminate', 'erase', 'truncate', 'unlink', 'wipe') THEN 'delete'
        WHEN t IN ('send', 'post', 'share', 'email', 'mail', 'upload', 'invite', 'publish', 'notify', 'forward', 'tweet', 'transfer', 'wire', 'pay', 'payout', 'sms', 'webhook') THEN 'egress'
        WHEN t IN ('create', 'update', 'write', 'put', 'set', 'insert', 'modify', 'edit', 'patch', 'append', 'add', 'commit', 'merge', 'save', 'tag', 'attach', 'copy', 'move', 'rename', 'run', 'execute', 'exec', 'invoke', 'start', 'stop', 'restart', 'deploy', 'apply', 'push', 'comment', 'close', 'open_pr', 'reserve', 'book', 'booking', 'schedule', 'cancel', 'register', 'subscribe', 'order', 'purchase', 'buy', 'rent', 'reset', 'change') THEN 'write'
        WHEN t IN ('get', 'read', 'list', 'search', 'fetch', 'query', 'describe', 'lookup', 'find', 'retrieve', 'view', 'download', 'head', 'scan', 'select', 'browse', 'load', 'check', 'count', 'summarize', 'inspect', 'cat', 'grep') THEN 'read'
    END), x -> x IS NOT NULL)[1] AS name_class
FROM words w LEFT JOIN matched m ON m.tool = w.tool AND m.system IS NOT DISTINCT FROM w.system;

CREATE OR REPLACE TEMP TABLE p_actions_classified AS
WITH joined AS (
    SELECT a.* EXCLUDE (system), -- The catalog renames a system it names with when_system, and fills in a missing one.
        coalesce(CASE WHEN t.system_named THEN t.catalog_system END, a.system, t.catalog_system) AS system, t.entry_no, t.catalog_class, t.catalog_sensitivity, t.catalog_external, t.name_class,
        CASE WHEN a.hint_destructive THEN 'delete'
             WHEN a.hint_read_only THEN 'read'
             WHEN a.hint_read_only = false THEN 'write' END AS annotation_class,
        list_filter(list_transform(coalesce(t.destination_args, []),
            k -> try(json_extract(a.args, '$."' || k || '"'))), x -> x IS NOT NULL AND json_type(x) <> 'NULL')[1]
            AS catalog_destination,
        t.catalog_trust, t.name_trust, t.catalog_critical_args, t.destination_args AS catalog_destination_args
    FROM p_actions a
    LEFT JOIN tool_class t ON t.tool = a.tool AND t.system IS NOT DISTINCT FROM a.system
), classed AS (
    SELECT *,
        coalesce(catalog_class, class_hint, annotation_class, name_class, 'unknown') AS action_class,
        CASE WHEN catalog_class IS NOT NULL THEN 'catalog'
             WHEN class_hint IS NOT NULL THEN 'source'
             WHEN annotation_class IS NOT NULL THEN 'mcp_annotation'
             WHEN name_class IS NOT NULL THEN 'tool_name'
             ELSE 'unknown' END AS classified_by,
        cw_redact(coalesce(
            CASE WHEN json_type(catalog_destination) = 'ARRAY'
                 THEN array_to_string(list_transform(json_transform(catalog_destination, '["JSON"]'), x -> cw_text(x)), ',')
                 ELSE cw_text(catalog_destination) END,
            destination_hint,
            nullif(regexp_extract(args, '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}'), ''),
            nullif(regexp_extract(args, 'https?://[^\s"''<>\\]+'), ''),
            nullif(regexp_extract(args, '\b[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}\b'), ''))) AS destination
    FROM joined
), domains AS (
    SELECT *,
        regexp_extract_all(coalesce(destination, ''), '@([A-Za-z0-9.-]+\.[A-Za-z]{2,})', 1)
            || regexp_extract_all(coalesce(destination, ''), 'https?://([^/:?#"\s,]+)', 1) AS dest_domains
    FROM classed
)
SELECT event_id, ts, CAST(ts AS DATE) AS day, agent_id, task_id, task_source, trace_id, span_id,
    parent_span_id, tool, system, action_class, classified_by, destination,
    coalesce(catalog_sensitivity, sensitivity_hint,
        CASE WHEN regexp_matches(lower(tool || ' ' || coalesce(destination, '') || ' ' || coalesce(system, '') || ' ' || coalesce(left(args, 512), '')),
                 'secret|password|credential|customer|pii|payroll|salary|ssn|finance|bank|payment|medical|confidential|private')
                 THEN 'high'
             WHEN action_class IN ('credential', 'admin', 'delete', 'egress', 'delegate') THEN 'medium'
             ELSE 'low' END) AS sensitivity,
    coalesce(catalog_external, hint_open_world, external_hint,
        list_bool_or(list_transform(dest_domains, d -> NOT coalesce(list_bool_or(list_transform(
            $internal_domains, i -> lower(d) = i OR ends_with(lower(d), '.' || i))), false))),
        false) AS external,
    outcome, error_type, duration_ms, credential_id, source_ip,
    left(args, $args_chars) AS args,
    CASE WHEN args IS NOT NULL THEN md5(args) END AS args_digest, bytes_out,
    source_format, source_file, source_offset, source_line, source_record,
    coalesce(catalog_trust, CASE WHEN hint_open_world THEN 'untrusted' END, name_trust,
             CASE WHEN coalesce(catalog_external, external_hint) THEN 'untrusted' END, 'trusted') AS output_trust,
    CASE WHEN catalog_trust IS NOT NULL THEN 'catalog' WHEN hint_open_world THEN 'mcp_annotation'
         WHEN name_trust IS NOT NULL THEN 'tool_name' ELSE 'default' END AS trust_by,
    list_distinct(catalog_critical_args || coalesce(catalog_destination_args, [])) AS critical_args
FROM domains;

-- Trust of tools seen only in captured content (a tool message whose call is in another batch).
CREATE OR REPLACE TEMP TABLE tool_trust AS
SELECT tool, coalesce(catalog_trust, name_trust, 'trusted') AS output_trust
FROM tool_class QUALIFY row_number() OVER (PARTITION BY tool ORDER BY system NULLS LAST) = 1;
