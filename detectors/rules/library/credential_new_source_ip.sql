-- Uses of a credential from a source network its agent had never used before.
-- A network is the first $network_prefix_octets octets of an IPv4 address (4 = the exact address;
-- other address forms are compared whole). The baseline is every network the agent issued or used
-- any of its credentials from before the cut-off: the use itself or, for a use after the
-- credential's task ended, the task's end (so every late use from an unknown network counts).
-- Calls AWS services make for a caller (`AWS Internal`, *.amazonaws.com) are not networks.
-- The agent needs $min_baseline_uses earlier events (no verdict on a fresh agent), and addresses
-- another agent of the fleet uses ($min_baseline_uses events or more) are left to
-- credential_shared_across_agents.
WITH uses AS (
    SELECT credential_id, event_id, ts, agent_id, source_ip FROM credential_events WHERE event_type = 'use'
    UNION
    SELECT credential_id, event_id, ts, agent_id, source_ip FROM agent_actions WHERE credential_id IS NOT NULL
), events AS (
    SELECT x.credential_id, x.event_id, x.ts, x.source_ip, x.is_use,
        CASE WHEN regexp_full_match(x.source_ip, '\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}')
             THEN array_to_string(string_split(x.source_ip, '.')[1:$network_prefix_octets], '.')
             ELSE x.source_ip END AS network,
        coalesce(c.agent_id, x.agent_id) AS agent_id, c.task_id, c.task_ended_at, c.credential_kind,
        CASE WHEN c.task_ended_at IS NOT NULL AND x.ts > c.task_ended_at THEN c.task_ended_at ELSE x.ts END AS cutoff
    FROM (SELECT credential_id, event_id, ts, agent_id, source_ip, true AS is_use FROM uses
          UNION ALL
          SELECT credential_id, event_id, ts, agent_id, source_ip, false FROM credential_events
          WHERE event_type = 'issue') x
    LEFT JOIN credential_lifecycles c ON c.credential_id = x.credential_id
    WHERE x.source_ip IS NOT NULL
      -- AWS services acting for a caller (`AWS Internal`, a service host such as
      -- secretsmanager.amazonaws.com) are no network: CloudTrail ingest stores them as NULL, and
      -- a source that passes them through is not counted either.
      AND NOT regexp_matches(lower(x.source_ip), '^aws internal$|^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$')
), history AS (
    -- Each agent's events in time order, numbered: the baseline size at any time.
    SELECT agent_id, ts, row_number() OVER (PARTITION BY agent_id ORDER BY ts, event_id) AS n
    FROM events WHERE agent_id IS NOT NULL
), first_net AS (
    SELECT agent_id, network, min(ts) AS first_ts FROM events WHERE agent_id IS NOT NULL
    GROUP BY agent_id, network
), fleet_ips AS (
    SELECT source_ip, agent_id FROM events WHERE agent_id IS NOT NULL
    GROUP BY source_ip, agent_id HAVING count(*) >= $min_baseline_uses
), candidates AS (
    SELECT e.* FROM events e
    JOIN first_net f ON f.agent_id = e.agent_id AND f.network = e.network
    WHERE e.is_use AND f.first_ts >= e.cutoff
      AND NOT EXISTS (SELECT 1 FROM fleet_ips o WHERE o.source_ip = e.source_ip AND o.agent_id <> e.agent_id)
), baselines AS (
    -- The baseline of each candidate: the number of the agent's last event before the cut-off (a
    -- join and max rather than an ASOF JOIN, so that the same SQL runs on Spark).
    SELECT c.event_id, c.credential_id, max(h.n) AS baseline
    FROM candidates c JOIN history h ON h.agent_id = c.agent_id AND c.cutoff > h.ts
    GROUP BY c.event_id, c.credential_id
), fresh AS (
    SELECT c.*, b.baseline
    FROM candidates c JOIN baselines b USING (event_id, credential_id)
    WHERE b.baseline >= $min_baseline_uses
)
SELECT credential_id AS entity_id, any_value(agent_id) AS agent_id, any_value(task_id) AS task_id,
    credential_id, min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    any_value(credential_kind) || ' used ' || count(*) || ' time(s) from a network new for agent '
        || any_value(agent_id) || ': ' || array_to_string(list_sort(list(DISTINCT source_ip)), ', ')
        || ' (baseline: ' || min(baseline) || ' earlier events)' AS detail
FROM fresh
GROUP BY credential_id
