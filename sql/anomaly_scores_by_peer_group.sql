-- Per peer group: tasks scored, the model used, tasks at or above the 99th percentile, the top one.
SELECT peer_group, count(*) AS tasks, any_value(model_id || ' v' || version) AS model,
       count_if(fused_percentile >= 99) AS tasks_at_p99, round(max(fused_percentile), 1) AS max_percentile
FROM task_anomaly_scores
GROUP BY 1
ORDER BY 1
