-- Stable views of the published analyst database, created inside it (`USE published`), so the
-- names resolve to its own tables when an analyst opens the file. Documented in
-- docs/analyst-guide.md.

-- Findings someone still has to look at, most urgent first.
CREATE OR REPLACE VIEW findings_open AS
SELECT finding_id, priority, severity, risk_score, rule_id, title, analytic_type, entity_type,
    entity_id, agent_id, task_id, credential_id, first_seen, last_seen, status, triage_note,
    anomaly_percentile, detail, evidence_event_ids, explanation, frameworks
FROM findings
WHERE status IN ('new', 'in_progress')
ORDER BY priority DESC NULLS LAST, risk_score DESC, last_seen DESC, finding_id;

-- Everything that happened in a task, in order: its start / end / approval events, its actions,
-- and the credential events of the credentials issued for it (uses after the task included).
CREATE OR REPLACE VIEW task_timeline AS
SELECT t.task_id, t.agent_id, e.ts, 'task' AS kind, e.event_type AS what, NULL AS tool,
    NULL AS system, NULL AS action_class, NULL AS destination,
    coalesce(e.status, array_to_string(e.approved_scope, ',')) AS outcome,
    NULL AS credential_id, e.event_id,
    e.ts > t.ended_at AS after_task_end
FROM task_events e JOIN tasks t USING (task_id)
UNION ALL
SELECT t.task_id, t.agent_id, a.ts, 'action', a.tool, a.tool, a.system, a.action_class,
    a.destination, a.outcome, a.credential_id, a.event_id, a.ts > t.ended_at
FROM agent_actions a JOIN tasks t USING (task_id)
UNION ALL
SELECT l.task_id, t.agent_id, c.ts, 'credential', c.event_type, NULL, NULL, NULL, c.source_ip,
    c.outcome, c.credential_id, c.event_id, c.ts > t.ended_at
FROM credential_events c
JOIN credential_lifecycles l USING (credential_id)
JOIN tasks t ON t.task_id = l.task_id
ORDER BY task_id, ts, event_id;

-- One row per agent: tasks, open findings by severity, standing-credential hours (validity left
-- after their tasks ended, summed), and scopes granted on its credentials vs scopes on the
-- credentials it actually acted with.
CREATE OR REPLACE VIEW agent_summary AS
WITH agents AS (
    SELECT agent_id FROM tasks WHERE agent_id IS NOT NULL
    UNION SELECT agent_id FROM credential_lifecycles WHERE agent_id IS NOT NULL
), task_counts AS (
    SELECT agent_id, count(*) AS tasks, min(started_at) AS first_task, max(started_at) AS last_task
    FROM tasks GROUP BY agent_id
), finding_counts AS (
    SELECT agent_id,
        count_if(severity = 'critical') AS open_critical, count_if(severity = 'high') AS open_high,
        count_if(severity = 'medium') AS open_medium, count_if(severity = 'low') AS open_low,
        count_if(severity = 'informational') AS open_informational, count(*) AS open_findings,
        max(priority) AS max_priority
    FROM findings WHERE status IN ('new', 'in_progress') GROUP BY agent_id
), standing AS (
    SELECT agent_id, round(sum(coalesce(validity_after_task_s, 0)) / 3600.0, 2) AS standing_credential_hours,
        count_if(validity_after_task_s > 0) AS credentials_outliving_task
    FROM credential_lifecycles GROUP BY agent_id
), granted AS (
    SELECT agent_id, count(DISTINCT s) AS scopes_granted
    FROM (SELECT agent_id, unnest(scopes) AS s FROM credential_lifecycles) GROUP BY agent_id
), used AS (
    SELECT l.agent_id, count(DISTINCT s) AS scopes_used
    FROM (SELECT DISTINCT credential_id FROM agent_actions WHERE credential_id IS NOT NULL) a
    JOIN (SELECT credential_id, agent_id, unnest(scopes) AS s FROM credential_lifecycles) l
        USING (credential_id)
    GROUP BY l.agent_id
)
SELECT a.agent_id, g.peer_group, coalesce(t.tasks, 0) AS tasks, t.first_task, t.last_task,
    coalesce(f.open_findings, 0) AS open_findings, coalesce(f.open_critical, 0) AS open_critical,
    coalesce(f.open_high, 0) AS open_high, coalesce(f.open_medium, 0) AS open_medium,
    coalesce(f.open_low, 0) AS open_low, coalesce(f.open_informational, 0) AS open_informational,
    f.max_priority, coalesce(s.standing_credential_hours, 0) AS standing_credential_hours,
    coalesce(s.credentials_outliving_task, 0) AS credentials_outliving_task,
    coalesce(gr.scopes_granted, 0) AS scopes_granted, coalesce(u.scopes_used, 0) AS scopes_used
FROM agents a
LEFT JOIN agent_peer_groups g USING (agent_id)
LEFT JOIN task_counts t USING (agent_id)
LEFT JOIN finding_counts f USING (agent_id)
LEFT JOIN standing s USING (agent_id)
LEFT JOIN granted gr USING (agent_id)
LEFT JOIN used u USING (agent_id)
ORDER BY f.max_priority DESC NULLS LAST, standing_credential_hours DESC, a.agent_id;
