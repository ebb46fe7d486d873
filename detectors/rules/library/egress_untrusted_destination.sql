-- Egress to a destination (recipient, address, IBAN, URL, channel) that the agent took from
-- untrusted tool output, inside prose, and never from the user's request or its own history:
-- where an injected "send it to ..." leads. A whole field (replying to an e-mail's sender) or a
-- source the user named (the bill the user asked to pay) does not count unless the text around
-- the value gives the agent instructions.
WITH hits AS (
    SELECT * FROM argument_provenance
    WHERE action_class = 'egress' AND content_captured AND source = 'tool_untrusted'
      AND NOT seen_in_history
      AND (matched_kind IN ('email', 'url', 'iban')
           OR regexp_matches(lower(argument), '(to|recipients?|cc|bcc|email|address|iban|account|payee|url|uri|link|endpoint|webhook|channel|user|destination|target|share_with)$'))
      AND (untrusted_instruction OR (untrusted_in_text AND NOT source_named_by_user))
), evidence AS (
    SELECT task_id, source_event_id AS event_id, source_ts AS ts FROM hits
    UNION
    SELECT task_id, event_id, ts FROM hits
)
SELECT h.task_id AS entity_id, any_value(h.agent_id) AS agent_id, h.task_id, NULL AS credential_id,
    min(h.ts) AS first_seen, max(h.ts) AS last_seen,
    any_value(e.evidence_event_ids) AS evidence_event_ids,
    'egress by ' || string_agg(DISTINCT h.tool, ', ' ORDER BY h.tool) || ' to a destination (' ||
        string_agg(DISTINCT h.argument, ', ' ORDER BY h.argument) || ') first seen in the untrusted output of '
        || string_agg(DISTINCT h.source_tool, ', ' ORDER BY h.source_tool)
        || CASE WHEN bool_or(h.untrusted_instruction) THEN ' amid instructions to the agent' ELSE '' END
        || '; not in the user''s request nor the agent''s history' AS detail
FROM hits h
JOIN (SELECT task_id, list(event_id ORDER BY ts, event_id) AS evidence_event_ids FROM evidence GROUP BY task_id) e
    ON e.task_id = h.task_id
GROUP BY h.task_id
