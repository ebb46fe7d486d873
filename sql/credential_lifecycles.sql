-- credential_lifecycles: one row per credential, from its events, the actions made with it and its
-- task. "as_of" is the newest event time in the warehouse (not the wall clock), so reruns over the
-- same data give the same table. Agent spans' ends count: a task's end may come from one, and as_of
-- must not precede a task end the table uses. A credential whose issue is not in the warehouse
-- takes its issue time, TTL, expiry, scopes, principal and agent from its first use that states
-- them (every Vault request carries its token's; a CloudTrail call its session's creation time),
-- and its task only from Vault token metadata; an issue event, when there is one, wins.

CREATE OR REPLACE TABLE credential_lifecycles AS
WITH as_of AS (
    SELECT greatest(
        (SELECT max(ts) FROM agent_actions), (SELECT max(ts) FROM credential_events),
        (SELECT max(ts) FROM task_events), (SELECT max(coalesce(end_ts, ts)) FROM agent_spans)) AS as_of
), issue_ids AS (
    SELECT DISTINCT credential_id FROM credential_events WHERE event_type = 'issue'
), issue_rows AS (
    SELECT credential_id, ts, credential_kind, principal, agent_id, task_id,
        coalesce(issued_at, ts) AS issued_at, expires_at, ttl_s, parent_credential_id, scopes, source_ip,
        true AS from_issue
    FROM credential_events WHERE event_type = 'issue'
    UNION ALL
    -- A use names the credential's own task only when the credential itself states it (a Vault
    -- token's metadata rides on every request made with it). A CloudTrail call's task is the
    -- caller's or that of the session it asks for, not the task its own session was issued for.
    SELECT u.credential_id, u.ts, u.credential_kind, u.principal, u.agent_id,
        CASE WHEN u.task_source = 'vault_metadata' THEN u.task_id END,
        u.issued_at, u.expires_at, u.ttl_s, u.parent_credential_id, u.scopes, u.source_ip,
        false AS from_issue
    FROM credential_events u
    LEFT JOIN issue_ids i ON i.credential_id = u.credential_id
    WHERE u.event_type = 'use' AND u.issued_at IS NOT NULL AND i.credential_id IS NULL
), issue AS (
    SELECT credential_id,
        arg_min(credential_kind, ts) AS credential_kind, arg_min(principal, ts) AS principal,
        arg_min(agent_id, ts) AS agent_id, arg_min(task_id, ts) AS task_id,
        min(issued_at) AS issued_at, arg_min(expires_at, ts) AS issue_expires_at,
        arg_min(ttl_s, ts) AS ttl_s, arg_min(parent_credential_id, ts) AS parent_credential_id,
        arg_min(scopes, ts) AS scopes, arg_min(source_ip, ts) AS issue_source_ip,
        count(*) FILTER (WHERE from_issue) > 0 AS issue_seen
    FROM issue_rows GROUP BY credential_id
), events AS (
    SELECT credential_id,
        mode(credential_kind) AS any_kind,
        min(ts) FILTER (WHERE event_type = 'revoke') AS revoked_at,
        min(ts) FILTER (WHERE event_type = 'expire') AS expired_event_at,
        count(*) FILTER (WHERE event_type = 'renew') AS renewals,
        max(ts) FILTER (WHERE event_type = 'renew') AS last_renewed_at,
        arg_max(expires_at, ts) FILTER (WHERE event_type = 'renew' AND expires_at IS NOT NULL) AS renewed_expires_at
    FROM credential_events GROUP BY credential_id
), ends AS (
    SELECT i.credential_id, least(e.revoked_at, coalesce(e.renewed_expires_at, i.issue_expires_at)) AS end_at
    FROM issue i JOIN events e USING (credential_id)
), cascaded AS (
    -- Vault ends a token's child tokens and leases when the token is revoked or expires (orphan
    -- tokens aside): up to two generations (token -> child token -> lease) inherit that end.
    SELECT i.credential_id,
        least(pe.revoked_at, gpe.revoked_at) AS parent_revoked_at,
        least(pend.end_at, gpend.end_at) AS parent_end_at
    FROM issue i
    LEFT JOIN events pe ON pe.credential_id = i.parent_credential_id
    LEFT JOIN ends pend ON pend.credential_id = i.parent_credential_id
    LEFT JOIN issue pi ON pi.credential_id = i.parent_credential_id
    LEFT JOIN events gpe ON gpe.credential_id = pi.parent_credential_id
    LEFT JOIN ends gpend ON gpend.credential_id = pi.parent_credential_id
    WHERE i.credential_kind IN ('vault_token', 'vault_lease') AND i.parent_credential_id IS NOT NULL
), use_rows AS (
    SELECT credential_id, event_id, ts, task_id, agent_id, source_ip FROM credential_events
    WHERE event_type = 'use'
    UNION
    SELECT credential_id, event_id, ts, task_id, agent_id, source_ip FROM agent_actions
    WHERE credential_id IS NOT NULL
), uses AS (
    SELECT credential_id, min(ts) AS first_use, max(ts) AS last_use, count(DISTINCT event_id) AS uses,
        count(DISTINCT task_id) AS distinct_tasks, count(DISTINCT agent_id) AS distinct_agents,
        count(DISTINCT source_ip) AS distinct_source_ips,
        list_sort(list(DISTINCT task_id) FILTER (WHERE task_id IS NOT NULL)) AS tasks_used_in,
        list_sort(list(DISTINCT agent_id) FILTER (WHERE agent_id IS NOT NULL)) AS agents_used_by,
        list_sort(list(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL)) AS source_ips
    FROM use_rows GROUP BY credential_id
), joined AS (
    SELECT e.credential_id,
        coalesce(i.credential_kind, e.any_kind) AS credential_kind,
        i.principal, i.agent_id, i.task_id, i.issued_at, i.ttl_s,
        coalesce(e.renewed_expires_at, i.issue_expires_at) AS expires_at,
        least(e.revoked_at, c.parent_revoked_at) AS revoked_at,
        e.revoked_at IS NULL AND c.parent_revoked_at IS NOT NULL AS revoked_via_parent,
        c.parent_end_at,
        c.parent_end_at IS NOT NULL
            AND c.parent_end_at < coalesce(least(e.revoked_at, coalesce(e.renewed_expires_at, i.issue_expires_at)), TIMESTAMP '9999-12-31')
            AS ended_with_parent,
        e.expired_event_at, e.renewals, e.last_renewed_at,
        t.ended_at AS task_ended_at, t.end_source AS task_end_source,
        u.first_use, u.last_use, coalesce(u.uses, 0) AS uses,
        coalesce(u.distinct_tasks, 0) AS distinct_tasks, coalesce(u.distinct_agents, 0) AS distinct_agents,
        coalesce(u.distinct_source_ips, 0) AS distinct_source_ips,
        u.tasks_used_in, u.agents_used_by, u.source_ips,
        i.parent_credential_id, i.scopes, p.scopes AS parent_scopes,
        coalesce(i.issue_seen, false) AS issue_seen,
        (SELECT as_of FROM as_of) AS as_of
    FROM events e
    LEFT JOIN issue i USING (credential_id)
    LEFT JOIN cascaded c USING (credential_id)
    LEFT JOIN uses u USING (credential_id)
    LEFT JOIN tasks t ON t.task_id = i.task_id
    LEFT JOIN issue p ON p.credential_id = i.parent_credential_id
), bounded AS (
    SELECT *,
        -- The end of the credential's usable life: revoked, expired, or (unknown) still open.
        least(revoked_at, expires_at, expired_event_at, parent_end_at) AS validity_end,
        CASE WHEN revoked_at IS NOT NULL AND revoked_at <= coalesce(least(expires_at, expired_event_at), revoked_at) THEN 'revoked'
             WHEN least(expires_at, expired_event_at, parent_end_at) <= as_of THEN 'expired'
             WHEN least(expires_at, expired_event_at, parent_end_at) IS NOT NULL THEN 'valid'
             ELSE 'open' END AS ended_by
    FROM joined
), after_task_end AS (
    -- A join, not a correlated subquery: Spark plans that one as an aggregate over every column of
    -- the outer row, which never finished at 1M actions.
    SELECT b.credential_id, count(DISTINCT u.event_id) AS uses_after_task_end
    FROM bounded b JOIN use_rows u ON u.credential_id = b.credential_id AND u.ts > b.task_ended_at
    GROUP BY b.credential_id
)
SELECT credential_id, credential_kind, principal, agent_id, task_id, issued_at, expires_at, revoked_at,
    revoked_via_parent, ended_with_parent, renewals, last_renewed_at, ttl_s, task_ended_at, task_end_source,
    first_use, last_use, uses,
    coalesce(a.uses_after_task_end, 0) AS uses_after_task_end,
    distinct_tasks, distinct_agents, distinct_source_ips, tasks_used_in, agents_used_by, source_ips,
    validity_end, validity_end IS NOT NULL AS validity_end_known, ended_by,
    CASE WHEN task_ended_at IS NOT NULL
         THEN greatest(0, epoch(coalesce(validity_end, as_of)) - epoch(task_ended_at)) END AS validity_after_task_s,
    CASE WHEN issued_at IS NOT NULL AND coalesce(validity_end, as_of) > issued_at
         THEN least(1.0, greatest(0.0,
             (epoch(coalesce(validity_end, as_of)) - epoch(greatest(coalesce(last_use, issued_at), issued_at)))
             / (epoch(coalesce(validity_end, as_of)) - epoch(issued_at)))) END AS idle_validity_share,
    parent_credential_id, scopes, parent_scopes,
    CASE WHEN parent_scopes IS NOT NULL THEN list_filter(scopes, s -> NOT list_contains(parent_scopes, s)) END
        AS scopes_beyond_parent,
    issue_seen, as_of
FROM bounded b LEFT JOIN after_task_end a USING (credential_id);
