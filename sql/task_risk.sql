-- task_risk: one row per task with a rule finding or an anomaly score, combining both signals,
-- and findings.anomaly_percentile / findings.priority derived from it.
--   anomaly weight  w = 0.6 * clamp((fused_percentile - 90) / 10, 0, 1): nothing below the 90th
--                   percentile of the peer group, 0.6 at its top;
--   risk_score      100 * (1 - (1 - max rule risk / 100) * (1 - w)) (noisy-or);
--   priority        a rule finding's own risk raised the same way by its task's w, so a rule
--                   finding on an anomalous task ranks higher; an anomaly finding's risk raised by
--                   half the task's highest rule risk; findings without a task keep their risk.
-- Suppressed findings and the anomaly detector's own findings do not count as rule signals.

CREATE OR REPLACE TABLE task_risk AS
WITH rule_side AS (
    SELECT task_id, count(*) AS rule_findings, max(risk_score) AS max_rule_risk,
        any_value(agent_id) AS agent_id, min(first_seen) AS first_seen
    FROM findings
    WHERE task_id IS NOT NULL AND rule_id <> $anomaly_rule AND status <> 'suppressed'
    GROUP BY task_id
), anomaly_side AS (
    SELECT task_id, agent_id, started_at, fused_percentile,
        0.6 * greatest(0, least(1, (fused_percentile - 90) / 10)) AS anomaly_weight
    FROM task_anomaly_scores
)
SELECT k.task_id, coalesce(a.agent_id, r.agent_id) AS agent_id, coalesce(a.started_at, r.first_seen) AS started_at,
    coalesce(r.rule_findings, 0) AS rule_findings, r.max_rule_risk,
    a.fused_percentile AS anomaly_percentile,
    CAST(round(100 * (1 - (1 - coalesce(r.max_rule_risk, 0) / 100)
                        * (1 - coalesce(a.anomaly_weight, 0)))) AS INTEGER) AS risk_score
FROM (SELECT task_id FROM rule_side UNION SELECT task_id FROM anomaly_side) k
LEFT JOIN rule_side r USING (task_id)
LEFT JOIN anomaly_side a USING (task_id)
ORDER BY risk_score DESC, k.task_id;

UPDATE findings SET anomaly_percentile = NULL, priority = risk_score;

UPDATE findings SET
    anomaly_percentile = r.anomaly_percentile,
    priority = CAST(round(100 * (1 - (1 - findings.risk_score / 100) * (1 - CASE
        WHEN findings.rule_id = $anomaly_rule THEN 0.5 * coalesce(r.max_rule_risk, 0) / 100
        ELSE 0.6 * greatest(0, least(1, (coalesce(r.anomaly_percentile, 0) - 90) / 10)) END))) AS INTEGER)
FROM task_risk r
WHERE findings.task_id = r.task_id;

-- Content provenance clears a task: when its content was captured and every critical argument of
-- its acting actions is explained (it came from the user, a trusted tool or the agent's history,
-- or from an untrusted source without instructions that the user named or that held it only as a
-- whole field), its other task findings (sequences, novelty, thresholds) are what a user's own
-- request looks like and rank lower (x $cleared_factor). The provenance rules themselves, anomaly
-- and credential findings are kept.
UPDATE findings SET priority = CAST(round(priority * $cleared_factor) AS INTEGER)
WHERE entity_type = 'task' AND NOT list_contains($content_rules, rule_id) AND rule_id <> $anomaly_rule
  AND task_id IN (
    SELECT task_id FROM argument_provenance GROUP BY task_id
    HAVING bool_and(content_captured) AND bool_and(
        source IN ('user', 'tool_trusted', 'history')
        OR (source = 'tool_untrusted' AND NOT untrusted_instruction
            AND (source_named_by_user OR NOT untrusted_in_text))));
