-- argument_provenance: one row per (acting action, critical argument): where the argument's value
-- first appeared in its task. Acting actions: write, delete, egress, delegate, credential and
-- admin, plus reads whose argument is a URL or an id. Matching is on keyed hashes of normalised
-- values (content_entities); an argument matches a source when its whole value, or an address /
-- URL / IBAN inside it, was seen there at or before the action (never the action's own result).
--   source: user (the prompt or system instructions) wins; else the earliest result of a tool
--           that reads (the results of tools that change something echo the agent's own
--           arguments and are no source)
--           (tool_trusted / tool_untrusted; on a tie the untrusted one); else history (the agent
--           passed the same value in an earlier task where its user or a trusted tool gave it, or
--           where nothing was captured); else none (model-made, or not captured).
--   content_captured: the task has captured content at all; without it only history / none can
--           be said, and the rules say so.
--   user_asked_to_act: the user's request asks for an action (not only to read or summarise);
--           NULL when the request was not captured.
-- Column meanings: docs/schema.md, "argument_provenance".

CREATE OR REPLACE TABLE argument_provenance AS
WITH acting_tools AS (
    -- Tools that change something: what they return echoes the agent's own arguments (a payment's
    -- receipt), so it is no source of a value.
    SELECT tool FROM agent_actions GROUP BY tool
    HAVING max(CASE WHEN action_class NOT IN ('read', 'unknown') THEN 1 ELSE 0 END) = 1
), content AS (
    -- Content follows its carrying event into the task linking put it in.
    SELECT c.event_id, c.ts, c.origin, c.trust, c.tool, c.argument, c.entity_kind, c.entity_hash,
        c.in_text, c.instruction_like, c.critical, c.asks_to_act,
        coalesce(a.task_id, s.task_id, c.task_id) AS task_id,
        coalesce(a.agent_id, s.agent_id, c.agent_id) AS agent_id
    FROM content_entities c
    LEFT JOIN agent_actions a ON a.event_id = c.event_id
    LEFT JOIN agent_spans s ON s.event_id = c.event_id
), owned AS (
    SELECT c.* FROM content c LEFT JOIN acting_tools t ON t.tool = c.tool
    WHERE c.origin <> 'tool' OR t.tool IS NULL
), args AS (
    SELECT a.task_id, a.agent_id, a.event_id, a.ts, a.tool, a.action_class, a.sensitivity,
        a.destination, o.argument, o.entity_hash, o.entity_kind
    FROM owned o JOIN agent_actions a ON a.event_id = o.event_id
    WHERE o.origin = 'argument' AND o.critical AND a.task_id IS NOT NULL AND o.argument IS NOT NULL
      AND (a.action_class IN ('write', 'delete', 'egress', 'delegate', 'credential', 'admin')
           OR (a.action_class = 'read'
               AND (o.entity_kind = 'url' OR regexp_matches(lower(o.argument), '(^|_)(url|uri|link|href|id|ids|website|site|page)$'))))
), seen AS (
    SELECT g.event_id, g.argument, s.origin, s.trust, s.event_id AS source_event_id,
        s.tool AS source_tool, s.ts AS source_ts, s.in_text, s.instruction_like, g.entity_kind AS matched_kind
    FROM args g JOIN owned s ON s.task_id = g.task_id AND s.entity_hash = g.entity_hash
    WHERE s.origin IN ('user', 'system', 'tool') AND s.ts <= g.ts AND s.event_id <> g.event_id
), first_tool AS (
    SELECT * FROM (
        SELECT *, row_number() OVER (PARTITION BY event_id, argument
            ORDER BY source_ts, CASE WHEN trust = 'untrusted' THEN 0 ELSE 1 END, source_event_id) AS rn
        FROM seen WHERE origin = 'tool') ranked
    WHERE rn = 1
), established AS (
    -- Values an agent passed in a task where they were legitimately known: that task's user or a
    -- trusted tool gave them, or no content was captured to say otherwise. A value an earlier
    -- injection planted does not become history.
    SELECT DISTINCT h.agent_id, h.task_id, h.ts, h.entity_hash
    FROM owned h
    LEFT JOIN (SELECT DISTINCT task_id FROM owned WHERE origin IN ('user', 'system', 'tool')) c
        ON c.task_id = h.task_id
    LEFT JOIN (SELECT DISTINCT task_id, entity_hash FROM owned
               WHERE origin IN ('user', 'system') OR (origin = 'tool' AND trust = 'trusted')) k
        ON k.task_id = h.task_id AND k.entity_hash = h.entity_hash
    WHERE h.origin = 'argument' AND (c.task_id IS NULL OR k.task_id IS NOT NULL)
), history AS (
    SELECT DISTINCT g.event_id, g.argument
    FROM args g JOIN established h ON h.agent_id = g.agent_id
        AND h.entity_hash = g.entity_hash AND h.task_id <> g.task_id AND h.ts < g.ts
), evidence AS (
    SELECT event_id, argument,
        max(CASE WHEN origin IN ('user', 'system') THEN 1 ELSE 0 END) = 1 AS seen_in_user,
        max(CASE WHEN origin = 'tool' AND trust = 'trusted' THEN 1 ELSE 0 END) = 1 AS seen_in_trusted,
        max(CASE WHEN origin = 'tool' AND trust = 'untrusted' THEN 1 ELSE 0 END) = 1 AS seen_in_untrusted,
        max(CASE WHEN origin = 'tool' AND trust = 'untrusted' AND in_text THEN 1 ELSE 0 END) = 1 AS untrusted_in_text,
        max(CASE WHEN origin = 'tool' AND trust = 'untrusted' AND instruction_like THEN 1 ELSE 0 END) = 1 AS untrusted_instruction
    FROM seen GROUP BY event_id, argument
), captured AS (
    SELECT task_id,
        -- NULL when the user's request was not captured.
        max(CASE WHEN origin = 'user' THEN CASE WHEN asks_to_act THEN 1 ELSE 0 END END) AS asks_to_act
    FROM owned WHERE origin IN ('user', 'system', 'tool') GROUP BY task_id
), user_named AS (
    -- Tool calls whose own arguments came from the user (a file or page the user named).
    SELECT DISTINCT a.event_id
    FROM owned a JOIN owned u ON u.task_id = a.task_id AND u.entity_hash = a.entity_hash
    WHERE a.origin = 'argument' AND u.origin IN ('user', 'system')
), per_argument AS (
    SELECT DISTINCT task_id, agent_id, event_id, ts, tool, action_class, sensitivity, destination, argument
    FROM args
)
SELECT p.task_id, p.agent_id, p.event_id, p.ts, p.tool, p.action_class, p.sensitivity, p.destination,
    p.argument,
    CASE WHEN coalesce(e.seen_in_user, false) THEN 'user'
         WHEN f.event_id IS NOT NULL THEN 'tool_' || coalesce(f.trust, 'untrusted')
         WHEN h.event_id IS NOT NULL THEN 'history'
         ELSE 'none' END AS source,
    f.source_event_id, f.source_tool, f.source_ts, f.matched_kind,
    coalesce(e.seen_in_user, false) AS seen_in_user,
    coalesce(e.seen_in_trusted, false) AS seen_in_trusted,
    coalesce(e.seen_in_untrusted, false) AS seen_in_untrusted,
    h.event_id IS NOT NULL AS seen_in_history,
    coalesce(e.untrusted_in_text, false) AS untrusted_in_text,
    coalesce(e.untrusted_instruction, false) AS untrusted_instruction,
    un.event_id IS NOT NULL AS source_named_by_user,
    c.task_id IS NOT NULL AS content_captured,
    c.asks_to_act = 1 AS user_asked_to_act
FROM per_argument p
LEFT JOIN evidence e ON e.event_id = p.event_id AND e.argument = p.argument
LEFT JOIN first_tool f ON f.event_id = p.event_id AND f.argument = p.argument
LEFT JOIN history h ON h.event_id = p.event_id AND h.argument = p.argument
LEFT JOIN user_named un ON un.event_id = f.source_event_id
LEFT JOIN captured c ON c.task_id = p.task_id;
