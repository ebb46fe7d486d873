-- The report's header: when the snapshot was published, by which version, and its headline counts.
SELECT
    (SELECT max(published_at) FROM published_info) AS published_at,
    (SELECT max(chainwatch_version) FROM published_info) AS chainwatch_version,
    (SELECT count(*) FROM findings) AS findings,
    (SELECT count(*) FROM findings_open) AS open_findings,
    (SELECT coalesce(count_if(severity = 'critical'), 0) FROM findings_open) AS open_critical,
    (SELECT coalesce(count_if(severity = 'high'), 0) FROM findings_open) AS open_high,
    (SELECT count(*) FROM agent_summary) AS agents,
    (SELECT count(*) FROM tasks) AS tasks,
    (SELECT count(*) FROM credential_lifecycles) AS credentials,
    (SELECT coalesce(count_if(validity_after_task_s > 0), 0) FROM credential_lifecycles)
        AS credentials_outliving_task,
    (SELECT round(coalesce(sum(validity_after_task_s), 0) / 3600.0, 1) FROM credential_lifecycles)
        AS standing_credential_hours,
    (SELECT min(CAST(first_seen AS DATE)) FROM findings) AS first_finding_day,
    (SELECT max(CAST(first_seen AS DATE)) FROM findings) AS last_finding_day
