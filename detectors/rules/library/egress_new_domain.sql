-- Tasks in the detection window that sent data to a domain or host their agent never sent to in
-- the baseline period before the window (the weaker twin of egress_new_destination).
-- Window: the last $window_days UTC days of the data, ending with the day of the newest event
-- (as_of). Baseline: the $baseline_days days before the window, never overlapping it. Agents
-- with fewer than $min_baseline_egress egress actions in the baseline are not judged (cold start).
-- A destination is compared by its host (URLs), its domain (e-mail addresses), else whole;
-- comma-joined recipients are compared one by one.
WITH bounds AS (
    SELECT CAST(greatest((SELECT max(ts) FROM agent_actions), (SELECT max(ts) FROM credential_events),
                         (SELECT max(ts) FROM task_events)) AS DATE) AS as_of_day
), win AS (
    SELECT as_of_day, as_of_day - CAST($window_days AS INTEGER) + 1 AS window_start,
        as_of_day - CAST($window_days AS INTEGER) + 1 - CAST($baseline_days AS INTEGER) AS baseline_start
    FROM bounds
), egress AS (
    SELECT a.event_id, a.ts, a.day, a.agent_id, a.task_id, a.credential_id, d.dest,
        CASE WHEN regexp_matches(d.dest, '^[a-z][a-z0-9+.-]*://')
                 THEN regexp_extract(d.dest, '^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?([^/:?#]+)', 1)
             WHEN regexp_matches(d.dest, '^[^@\s]+@[^@\s]+$') THEN split_part(d.dest, '@', 2)
             ELSE d.dest END AS dest_key
    FROM agent_actions a,
        LATERAL (SELECT lower(trim(x)) AS dest FROM unnest(string_split(a.destination, ',')) AS t(x)) d
    WHERE a.action_class = 'egress' AND a.destination IS NOT NULL AND a.agent_id IS NOT NULL
      AND d.dest <> ''
), baseline AS (
    SELECT e.agent_id, list(DISTINCT e.dest_key) AS known, count(DISTINCT e.event_id) AS n
    FROM egress e, win w
    WHERE e.day >= w.baseline_start AND e.day < w.window_start
    GROUP BY e.agent_id
), novel AS (
    SELECT e.*, coalesce(b.n, 0) AS baseline_n
    FROM egress e
    CROSS JOIN win w
    LEFT JOIN baseline b ON b.agent_id = e.agent_id
    WHERE e.day >= w.window_start AND e.day <= w.as_of_day AND e.task_id IS NOT NULL
      AND coalesce(b.n, 0) >= $min_baseline_egress
      AND NOT coalesce(list_contains(b.known, e.dest_key), false)
)
SELECT task_id AS entity_id, any_value(agent_id) AS agent_id, task_id,
    mode(credential_id) AS credential_id, min(ts) AS first_seen, max(ts) AS last_seen,
    list_filter(list(event_id ORDER BY ts, event_id),
        (x, i) -> list_position(list(event_id ORDER BY ts, event_id), x) = i) AS evidence_event_ids,
    'egress to ' || count(DISTINCT dest_key) || ' domain(s) new for agent ' || any_value(agent_id)
        || ': ' || array_to_string(list_sort(list(DISTINCT dest_key)), ', ')
        || ' (baseline: ' || any_value(baseline_n) || ' egress actions over the previous '
        || $baseline_days || ' days)' AS detail
FROM novel
GROUP BY task_id
