-- Anomaly hits into the temp table rule_hits (merged into findings by merge_findings.sql): tasks
-- started in [$since, $until) (NULL: unbounded) whose fused percentile reaches $alert_percentile.
-- Severity high from the 99.9th percentile; risk 50 at the alert percentile up to 80 at 100;
-- analytic type learning when the forest dominates, statistical otherwise. Evidence: the rare
-- transitions' events, else the task's first 20 actions.

INSERT INTO rule_hits BY NAME
WITH flagged AS (
    SELECT * FROM task_anomaly_scores
    WHERE fused_percentile >= $alert_percentile
      AND ($since::TIMESTAMP IS NULL OR started_at >= $since::TIMESTAMP)
      AND ($until::TIMESTAMP IS NULL OR started_at < $until::TIMESTAMP)
), first_actions AS (
    SELECT task_id, list(event_id ORDER BY ts, event_id)[1:20] AS event_ids
    FROM agent_actions WHERE task_id IN (SELECT task_id FROM flagged) GROUP BY task_id
)
SELECT $rule_id AS rule_id, s.task_id AS entity_id, s.agent_id, s.task_id,
    s.started_at AS first_seen, coalesce(s.ended_at, s.started_at) AS last_seen,
    CASE WHEN array_length(s.rare_transitions) > 0 THEN [x.event_id FOR x IN s.rare_transitions]
         ELSE coalesce(a.event_ids, []) END AS evidence_event_ids,
    printf('fused score at percentile %.1f of peer group %s (forest percentile %.1f, tail %.1f, sequence %.2f, %s dominates)',
           s.fused_percentile, s.peer_group, s.iforest_percentile, s.tail_score,
           coalesce(s.sequence_score, 0), s.dominant_signal)
      || '; ' || array_to_string(
           [printf('%s %s vs peer median %s (%.1f%% of peers at or above, z %.1f)', f.feature,
                   round(f.value, 2)::VARCHAR, round(f.peer_median, 2)::VARCHAR,
                   100 * f.peer_share, f.robust_z) FOR f IN s.top_features], ', ')
      || CASE WHEN array_length(s.rare_transitions) > 0 THEN
           '; rare transitions: ' || array_to_string(
             [printf('%s -> %s (p %.3f)', x.from_tool, x.to_tool, x.probability)
              FOR x IN s.rare_transitions[1:5]], ', ')
         ELSE '' END AS detail,
    CASE WHEN s.fused_percentile >= 99.9 THEN 'high' ELSE 'medium' END AS severity,
    CAST(round(50 + 30 * least(1, greatest(0, (s.fused_percentile - $alert_percentile)
                                              / greatest(100 - $alert_percentile, 0.001)))) AS INTEGER)
        AS risk_score,
    CASE s.dominant_signal WHEN 'iforest' THEN 'learning' ELSE 'statistical' END AS analytic_type,
    to_json({
        'peer_group': s.peer_group, 'model_id': s.model_id, 'model_version': s.version,
        'fused_score': s.fused_score, 'fused_percentile': s.fused_percentile,
        'iforest_score': s.iforest_score, 'iforest_percentile': s.iforest_percentile,
        'baseline_z': s.baseline_score, 'tail_score': s.tail_score,
        'sequence_score': s.sequence_score,
        'dominant_signal': s.dominant_signal, 'top_features': s.top_features,
        'rare_transitions': s.rare_transitions
    }) AS explanation
FROM flagged s LEFT JOIN first_actions a USING (task_id);
