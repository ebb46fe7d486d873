-- recommendations: least-privilege recommendations per agent, from what it was granted and what it
-- did in the window (docs/schema.md, "recommendations").
-- Window: the last $window_days UTC days of data, ending with the day of the newest action or
-- credential event (as_of), both ends included. No data: no as_of, no window, no rows.
-- Categories:
--   scope:  every scope on credentials issued to the agent in the window; used when an action in
--           the window (not denied) was made with a credential of the agent that carries it.
--   access: every (system, access) the agent acted on in the window; access is read (read), write
--           (write, delete), delegate (delegate, credential, admin: handing power to another
--           principal), egress (egress), unknown.
--   ttl:    per credential kind, the TTL issued in the window against
--           max($ttl_floor_s, p95 task duration x $ttl_margin), rounded up to the minute.
-- Reads the canonical tables, `tasks` and the temporary view `recommendation_peer_groups` that
-- detectors/analyst/recommend.py creates (agent_peer_groups, or empty when there is none).

CREATE OR REPLACE TEMP MACRO recommendation_duration(s) AS
    CASE WHEN s IS NULL THEN NULL
         WHEN s <= 0 THEN '0s'
         ELSE concat_ws('',
             CASE WHEN s // 86400 > 0 THEN (s // 86400) || 'd' END,
             CASE WHEN s % 86400 // 3600 > 0 THEN (s % 86400 // 3600) || 'h' END,
             CASE WHEN s % 3600 // 60 > 0 THEN (s % 3600 // 60) || 'm' END,
             CASE WHEN s % 60 > 0 THEN (s % 60) || 's' END) END;

CREATE OR REPLACE TABLE recommendations AS
WITH bounds AS (
    SELECT CAST(greatest((SELECT max(ts) FROM agent_actions),
                         (SELECT max(ts) FROM credential_events)) AS DATE) AS as_of_day
), win AS (
    SELECT as_of_day - CAST($window_days AS INTEGER) + 1 AS window_from, as_of_day AS window_until
    FROM bounds WHERE as_of_day IS NOT NULL
), peer AS (
    SELECT agent_id, min(peer_group) AS peer_group
    FROM recommendation_peer_groups WHERE agent_id IS NOT NULL GROUP BY agent_id
), issue AS (
    -- Every credential's first issue: to whom, of what kind, with which scopes and TTL.
    SELECT credential_id, arg_min(agent_id, ts) AS agent_id,
        coalesce(arg_min(credential_kind, ts), 'unknown') AS credential_kind,
        list_distinct(arg_min(scopes, ts)) AS scopes, arg_min(ttl_s, ts) AS ttl_s,
        min(ts) AS issued_ts
    FROM credential_events WHERE event_type = 'issue' GROUP BY credential_id
), granted AS (
    SELECT i.* FROM issue i, win w
    WHERE i.agent_id IS NOT NULL AND CAST(i.issued_ts AS DATE) BETWEEN w.window_from AND w.window_until
), acts AS (
    SELECT a.event_id, a.ts, a.agent_id, a.credential_id, a.system,
        a.outcome IS DISTINCT FROM 'denied' AS allowed,
        CASE WHEN a.action_class = 'read' THEN 'read'
             WHEN a.action_class IN ('write', 'delete') THEN 'write'
             WHEN a.action_class IN ('delegate', 'credential', 'admin') THEN 'delegate'
             WHEN a.action_class = 'egress' THEN 'egress'
             ELSE 'unknown' END AS access
    FROM agent_actions a, win w
    WHERE a.day BETWEEN w.window_from AND w.window_until
), scope_acts AS (
    -- Actions in the window made with a credential, once per scope that credential carries,
    -- attributed to the agent the credential was issued to.
    SELECT i.agent_id, s.scope, a.event_id, a.ts, a.allowed, a.access,
        coalesce(a.system, '(none)') AS system
    FROM acts a
    JOIN issue i ON i.credential_id = a.credential_id
    CROSS JOIN LATERAL (SELECT unnest(i.scopes) AS scope) s
    WHERE i.agent_id IS NOT NULL
), scope_grants AS (
    SELECT g.agent_id, s.scope, count(DISTINCT g.credential_id) AS granted,
        array_to_string(list_sort(list(DISTINCT g.credential_kind)), ', ') AS credential_kind
    FROM granted g CROSS JOIN LATERAL (SELECT unnest(g.scopes) AS scope) s
    WHERE s.scope IS NOT NULL
    GROUP BY g.agent_id, s.scope
), scope_use AS (
    SELECT agent_id, scope,
        count(DISTINCT event_id) FILTER (WHERE allowed) AS uses,
        count(DISTINCT event_id) FILTER (WHERE NOT allowed) AS denied,
        max(ts) FILTER (WHERE allowed) AS last_used_at,
        list_sort(list(DISTINCT access) FILTER (WHERE allowed)) AS accesses,
        list_sort(list(DISTINCT system || ' (' || access || ')') FILTER (WHERE allowed)) AS systems
    FROM scope_acts GROUP BY agent_id, scope
), uncredentialed AS (
    -- Systems the agent used with no credential recorded, by name: the source prefix (mcp:,
    -- vault:, kubernetes:) and .amazonaws.com dropped, words kept, e.g. 'vault:database' -> 'database'.
    SELECT agent_id, system, count(DISTINCT event_id) AS uses,
        trim(regexp_replace(regexp_replace(regexp_replace(lower(system), '^[a-z0-9_-]+:', ''),
            '\.amazonaws\.com$', ''), '[^a-z0-9]+', ' ', 'g')) AS words
    FROM acts
    WHERE credential_id IS NULL AND system IS NOT NULL AND agent_id IS NOT NULL AND allowed
    GROUP BY agent_id, system
), scope_named AS (
    -- A scope unused by credential whose words name such a system (an ARN's account part is
    -- ignored): e.g. the Vault lease 'database/creds/app-readonly' and OTLP calls to 'database'.
    SELECT g.agent_id, g.scope, sum(u.uses) AS uses,
        array_to_string(list_sort(list(u.system)), ', ') AS systems
    FROM scope_grants g
    JOIN uncredentialed u ON u.agent_id = g.agent_id AND u.words <> ''
        AND contains(' ' || trim(regexp_replace(
                regexp_replace(lower(g.scope), '^arn:[^:]*:[^:]*:[^:]*:[^:]*:', ''),
                '[^a-z0-9]+', ' ', 'g')) || ' ',
            ' ' || u.words || ' ')
    GROUP BY g.agent_id, g.scope
), scope_rows AS (
    SELECT g.agent_id, 'scope' AS category, g.scope AS item,
        array_to_string(u.accesses, ', ') AS access, g.credential_kind, g.granted,
        coalesce(u.uses, 0) > 0 AS used, coalesce(u.uses, 0) AS uses, coalesce(u.denied, 0) AS denied,
        u.last_used_at, coalesce(u.systems, CAST([] AS VARCHAR[])) AS systems,
        CASE WHEN coalesce(u.uses, 0) > 0
                 THEN 'keep: used ' || u.uses || ' time(s) for ' || array_to_string(u.accesses, ', ')
             WHEN n.scope IS NOT NULL
                 THEN 'review: granted ' || g.granted || ' time(s), no action recorded with it in the window, '
                     || 'but the agent used ' || n.systems || ' ' || n.uses
                     || ' time(s) with no credential recorded'
             ELSE 'remove: granted ' || g.granted || ' time(s), never used in the window'
                 || CASE WHEN coalesce(u.denied, 0) > 0 THEN ' (' || u.denied || ' denied attempt(s))' ELSE '' END
        END AS recommendation
    FROM scope_grants g
    LEFT JOIN scope_use u USING (agent_id, scope)
    LEFT JOIN scope_named n USING (agent_id, scope)
), access_rows AS (
    SELECT a.agent_id, 'access' AS category, coalesce(a.system, '(none)') AS item, a.access,
        array_to_string(list_sort(list(DISTINCT i.credential_kind) FILTER (WHERE i.credential_kind IS NOT NULL)), ', ')
            AS credential_kind,
        count(DISTINCT a.event_id) FILTER (WHERE a.allowed) AS uses,
        count(DISTINCT a.event_id) FILTER (WHERE NOT a.allowed) AS denied,
        max(a.ts) FILTER (WHERE a.allowed) AS last_used_at,
        coalesce(list_sort(list_distinct(flatten(list(i.scopes) FILTER (WHERE i.scopes IS NOT NULL)))),
            CAST([] AS VARCHAR[])) AS scopes
    FROM acts a
    LEFT JOIN issue i ON i.credential_id = a.credential_id
    WHERE a.agent_id IS NOT NULL
    GROUP BY a.agent_id, coalesce(a.system, '(none)'), a.access
), access_rows_text AS (
    SELECT *, uses > 0 AS used,
        CASE WHEN uses = 0
                 THEN 'review: ' || denied || ' attempt(s), all denied: not granted, nothing to keep'
             WHEN access = 'unknown'
                 THEN 'review: used ' || uses || ' time(s) by tools of unknown class: map them in the catalog'
             ELSE 'keep ' || access || ' on ' || item || ': used ' || uses || ' time(s)'
                 || CASE WHEN denied > 0 THEN ', ' || denied || ' denied' ELSE '' END
        END AS recommendation
    FROM access_rows
), ttl_issued AS (
    SELECT agent_id, credential_kind, count(*) AS granted,
        quantile_disc(ttl_s, 0.5) AS issued_ttl_s, max(ttl_s) AS issued_ttl_max_s
    FROM granted GROUP BY agent_id, credential_kind
), task_p95 AS (
    SELECT t.agent_id, count(*) AS tasks,
        quantile_cont(epoch(t.ended_at) - epoch(t.started_at), 0.95) AS p95_task_s
    FROM tasks t, win w
    WHERE t.agent_id IS NOT NULL AND t.ended_at >= t.started_at
      AND CAST(t.started_at AS DATE) BETWEEN w.window_from AND w.window_until
    GROUP BY t.agent_id
), ttl_sized AS (
    SELECT i.*, p.tasks, p.p95_task_s,
        -- greatest() skips NULLs: no task, no recommendation (not the floor).
        CASE WHEN p.p95_task_s IS NOT NULL THEN CAST(ceil(round(greatest(CAST($ttl_floor_s AS DOUBLE),
            p.p95_task_s * CAST($ttl_margin AS DOUBLE)), 6) / 60) * 60 AS BIGINT) END AS recommended_ttl_s,
        ' (p95 task ' || recommendation_duration(CAST(ceil(p.p95_task_s) AS BIGINT))
            || ' × ' || CAST(CAST($ttl_margin AS DOUBLE) AS VARCHAR)
            || CASE WHEN p.p95_task_s * CAST($ttl_margin AS DOUBLE) <= CAST($ttl_floor_s AS DOUBLE)
                    THEN ', floor ' || recommendation_duration(CAST($ttl_floor_s AS BIGINT)) ELSE '' END
            || ')' AS basis
    FROM ttl_issued i LEFT JOIN task_p95 p USING (agent_id)
), ttl_rows AS (
    SELECT agent_id, 'ttl' AS category, credential_kind AS item, credential_kind, granted,
        issued_ttl_s, issued_ttl_max_s, recommended_ttl_s, p95_task_s, tasks,
        CASE WHEN recommended_ttl_s IS NULL
                 THEN 'review: no finished task of the agent in the window to size the TTL'
                     || CASE WHEN issued_ttl_max_s IS NULL
                             THEN ' (TTL of the ' || granted || ' issued credential(s) unknown)'
                             ELSE ' (issued up to ' || recommendation_duration(issued_ttl_max_s) || ')' END
             WHEN issued_ttl_max_s IS NULL
                 THEN 'review: TTL of the ' || granted || ' issued credential(s) unknown; recommended '
                     || recommendation_duration(recommended_ttl_s) || basis
             WHEN issued_ttl_max_s > recommended_ttl_s
                 THEN 'lower TTL from ' || recommendation_duration(issued_ttl_max_s) || ' to '
                     || recommendation_duration(recommended_ttl_s) || basis
             ELSE 'keep: issued TTL ' || recommendation_duration(issued_ttl_max_s)
                 || ' within the recommended ' || recommendation_duration(recommended_ttl_s) || basis
        END AS recommendation
    FROM ttl_sized
), all_rows AS (
    SELECT * FROM scope_rows
    UNION ALL BY NAME SELECT * FROM access_rows_text
    UNION ALL BY NAME SELECT * FROM ttl_rows
)
SELECT CAST(r.agent_id AS VARCHAR) AS agent_id,
    CAST(p.peer_group AS VARCHAR) AS peer_group,
    CAST(r.category AS VARCHAR) AS category,
    CAST(r.item AS VARCHAR) AS item,
    CAST(r.access AS VARCHAR) AS access,
    CAST(r.credential_kind AS VARCHAR) AS credential_kind,
    CAST(r.granted AS BIGINT) AS granted,
    CAST(r.used AS BOOLEAN) AS used,
    CAST(r.uses AS BIGINT) AS uses,
    CAST(r.denied AS BIGINT) AS denied,
    CAST(r.last_used_at AS TIMESTAMP) AS last_used_at,
    CAST(r.systems AS VARCHAR[]) AS systems,
    CAST(r.scopes AS VARCHAR[]) AS scopes,
    CAST(r.issued_ttl_s AS BIGINT) AS issued_ttl_s,
    CAST(r.issued_ttl_max_s AS BIGINT) AS issued_ttl_max_s,
    CAST(r.recommended_ttl_s AS BIGINT) AS recommended_ttl_s,
    CAST(r.p95_task_s AS DOUBLE) AS p95_task_s,
    CAST(r.tasks AS BIGINT) AS tasks,
    CAST(r.recommendation AS VARCHAR) AS recommendation,
    w.window_from, w.window_until
FROM all_rows r
CROSS JOIN win w
LEFT JOIN peer p USING (agent_id)
ORDER BY r.agent_id, CASE r.category WHEN 'scope' THEN 1 WHEN 'access' THEN 2 ELSE 3 END,
    r.item, r.access;

DROP MACRO IF EXISTS recommendation_duration;
