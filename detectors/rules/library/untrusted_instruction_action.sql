-- Actions whose critical argument (a recipient, IBAN, URL, file id, name or amount the action
-- acts on) came from a tool that read untrusted content (a web page, an inbox, a channel, a
-- review, a shared file) and never from the user's request: the signature of an injected
-- instruction the agent obeyed. Reads whose URL or id came that way count too (a phishing visit).
-- Risk per hit, from argument_provenance:
--   base by action class (egress / credential / admin $base_egress, delete $base_delete,
--   delegate and write $base_write, read $base_read), +$high_sensitivity_bonus for a
--   high-sensitivity action;
--   +$unrequested_bonus for a change (not a read) when the user's request asked for none (only to
--   read, find or summarise);
--   +$instruction_bonus when the untrusted text around the value addresses the agent with
--   instructions (injection markers);
--   without them: -$field_discount when the value was only ever a whole field (a sender, a
--   payee column), not inside prose; -$named_discount when the user named what the tool read
--   (a file or page from the prompt); -$history_discount when the agent used the value before;
--   -$trusted_discount when a trusted tool also returned it.
-- Actions below $min_risk are not raised: a value from a source the user named or only ever a
-- whole field, with no instruction-like text around it, is what acting on a request looks like
-- (argument_provenance and the anomaly features still show it).
-- One finding per task: its riskiest action first; every flagged action and the tool result
-- that introduced its value are evidence. Tasks without captured content cannot be judged here
-- (see egress_new_destination): the finding says so when content was captured for none.
WITH flagged AS (
    SELECT p.*,
        CASE WHEN p.action_class IN ('egress', 'credential', 'admin') THEN $base_egress
             WHEN p.action_class = 'delete' THEN $base_delete
             WHEN p.action_class IN ('write', 'delegate') THEN $base_write
             ELSE $base_read END
        + CASE WHEN p.sensitivity = 'high' THEN $high_sensitivity_bonus ELSE 0 END
        + CASE WHEN NOT p.user_asked_to_act AND p.action_class <> 'read' THEN $unrequested_bonus ELSE 0 END
        + CASE WHEN p.untrusted_instruction THEN $instruction_bonus
               ELSE 0 - CASE WHEN NOT p.untrusted_in_text THEN $field_discount ELSE 0 END
                      - CASE WHEN p.source_named_by_user THEN $named_discount ELSE 0 END
                      - CASE WHEN p.seen_in_history THEN $history_discount ELSE 0 END
                      - CASE WHEN p.seen_in_trusted THEN $trusted_discount ELSE 0 END END AS raw_risk
    FROM argument_provenance p
    WHERE p.content_captured AND NOT p.seen_in_user AND p.seen_in_untrusted
), scored AS (
    SELECT *, greatest(10, least(99, raw_risk)) AS risk FROM flagged
), per_action AS (
    SELECT task_id, agent_id, event_id, ts, tool, action_class, max(risk) AS risk,
        bool_or(untrusted_instruction) AS instruction,
        string_agg(DISTINCT argument, ', ' ORDER BY argument) AS arguments,
        min(source_event_id) AS source_event_id, min(source_tool) AS source_tool,
        min(source_ts) AS source_ts
    FROM scored GROUP BY task_id, agent_id, event_id, ts, tool, action_class
    HAVING max(risk) >= $min_risk
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY task_id ORDER BY risk DESC, ts, event_id) AS rank_in_task
    FROM per_action
), evidence AS (
    SELECT task_id, source_event_id AS event_id, source_ts AS ts FROM per_action WHERE source_event_id IS NOT NULL
    UNION
    SELECT task_id, event_id, ts FROM per_action
), evidence_lists AS (
    SELECT task_id, list(event_id ORDER BY ts, event_id) AS evidence_event_ids FROM evidence GROUP BY task_id
), per_task AS (
    SELECT task_id, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS actions,
        list({'source_event_id': source_event_id, 'source_tool': source_tool, 'action_event_id': event_id,
              'tool': tool, 'arguments': arguments, 'instruction_like': instruction, 'risk': risk}
             ORDER BY risk DESC, ts, event_id) AS chain
    FROM per_action GROUP BY task_id
)
SELECT r.task_id AS entity_id, r.agent_id, r.task_id, NULL AS credential_id, t.first_seen, t.last_seen,
    e.evidence_event_ids,
    r.tool || ' (' || r.action_class || ') acted on ' || r.arguments || ' taken from the untrusted output of '
        || coalesce(r.source_tool, 'a tool') || ' (' || coalesce(r.source_event_id, '?') || ')'
        || CASE WHEN r.instruction THEN ', text that gives the agent instructions' ELSE '' END
        || ', not from the user''s request'
        || CASE WHEN t.actions > 1 THEN '; ' || (t.actions - 1) || ' more action(s) like it' ELSE '' END AS detail,
    CASE WHEN r.risk >= 90 THEN 'critical' WHEN r.risk >= 70 THEN 'high' WHEN r.risk >= 45 THEN 'medium'
         WHEN r.risk >= 25 THEN 'low' ELSE 'informational' END AS severity,
    CAST(r.risk AS INTEGER) AS risk_score,
    to_json({'chain': t.chain}) AS explanation
FROM ranked r
JOIN per_task t ON t.task_id = r.task_id
JOIN evidence_lists e ON e.task_id = r.task_id
WHERE r.rank_in_task = 1
