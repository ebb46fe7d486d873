-- Credentials used by an agent other than the one they were issued to.
-- Two kinds of evidence: a use whose own record names another agent, or a use from a source IP
-- that belongs to another agent and never to the owner. An IP belongs to an agent when at least
-- $min_ip_credentials of the agent's task credentials were issued or used from it; the owner must
-- have such an IP history itself (at least $min_ip_credentials task credentials seen with an IP).
WITH uses AS (
    SELECT credential_id, event_id, ts, agent_id, source_ip FROM credential_events WHERE event_type = 'use'
    UNION
    SELECT credential_id, event_id, ts, agent_id, source_ip FROM agent_actions WHERE credential_id IS NOT NULL
), owners AS (
    SELECT c.credential_id, c.task_id, c.credential_kind,
        coalesce(c.agent_id, (SELECT arg_min(u.agent_id, u.ts) FROM uses u
                              WHERE u.credential_id = c.credential_id AND u.agent_id IS NOT NULL)) AS owner_agent
    FROM credential_lifecycles c
), activity AS (
    -- Where each agent's task credentials were issued and used from.
    SELECT o.owner_agent AS agent_id, o.credential_id, x.source_ip
    FROM owners o
    JOIN (SELECT credential_id, source_ip FROM uses
          UNION ALL
          SELECT credential_id, source_ip FROM credential_events WHERE event_type = 'issue') x
      ON x.credential_id = o.credential_id
    WHERE o.task_id IS NOT NULL AND o.owner_agent IS NOT NULL AND x.source_ip IS NOT NULL
), ip_creds AS (
    SELECT source_ip, agent_id, count(DISTINCT credential_id) AS creds,
        list(DISTINCT credential_id) AS cred_ids
    FROM activity GROUP BY source_ip, agent_id
), agent_history AS (
    SELECT agent_id, count(DISTINCT credential_id) AS creds FROM activity GROUP BY agent_id
), foreign_uses AS (
    -- The use's own record names another agent.
    SELECT u.credential_id, u.event_id, u.ts, u.source_ip, u.agent_id AS other_agent, 'named' AS how
    FROM uses u JOIN owners o ON o.credential_id = u.credential_id
    WHERE u.agent_id IS NOT NULL AND o.owner_agent IS NOT NULL AND u.agent_id <> o.owner_agent
    UNION ALL
    -- The use came from another agent's IP, one the owner never used with any other credential.
    SELECT u.credential_id, u.event_id, u.ts, u.source_ip, other.agent_id AS other_agent, 'ip' AS how
    FROM uses u
    JOIN owners o ON o.credential_id = u.credential_id
    JOIN agent_history h ON h.agent_id = o.owner_agent AND h.creds >= $min_ip_credentials
    JOIN ip_creds other ON other.source_ip = u.source_ip AND other.agent_id <> o.owner_agent
        AND other.creds >= $min_ip_credentials
    LEFT JOIN ip_creds mine ON mine.source_ip = u.source_ip AND mine.agent_id = o.owner_agent
    WHERE coalesce(array_length(list_filter(mine.cred_ids, x -> x <> u.credential_id)), 0) = 0
), per_agent AS (
    SELECT credential_id, other_agent, min(ts) AS first_ts, max(ts) AS last_ts,
        arg_min(event_id, (ts, event_id)) AS first_event, count(DISTINCT event_id) AS n_uses,
        list_sort(list(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL)) AS ips,
        list_sort(list(DISTINCT how)) AS hows
    FROM foreign_uses GROUP BY credential_id, other_agent
)
SELECT p.credential_id AS entity_id, any_value(o.owner_agent) AS agent_id, any_value(o.task_id) AS task_id,
    p.credential_id, min(p.first_ts) AS first_seen, max(p.last_ts) AS last_seen,
    list_filter(list(p.first_event ORDER BY p.first_ts, p.first_event),
        (x, i) -> list_position(list(p.first_event ORDER BY p.first_ts, p.first_event), x) = i) AS evidence_event_ids,
    any_value(o.credential_kind) || ' of ' || any_value(o.owner_agent) || ' used by '
        || string_agg(p.other_agent || ' (' || p.n_uses || ' use(s)'
                      || CASE WHEN list_contains(p.hows, 'ip') THEN ' from its IP ' || array_to_string(p.ips, ', ') ELSE '' END
                      || ')', ', ' ORDER BY p.first_ts) AS detail
FROM per_agent p JOIN owners o ON o.credential_id = p.credential_id
GROUP BY p.credential_id
