-- Actions made with a credential whose scopes follow the convention <system-glob>:<action-class>
-- (class one of read, write, delete, egress, delegate, credential, admin, unknown, or *) where the
-- action's (system, action_class) matches none of them. The scope is split at its last ':' so
-- system globs may contain ':' themselves (vault:secret*:read). Scopes outside the convention are
-- ignored, and credentials with none in it (Vault policies, role ARNs, lease paths) are skipped.
WITH scoped AS (
    SELECT credential_id, credential_kind,
        list_transform(
            list_filter(scopes, s -> regexp_full_match(s, '.+:(read|write|delete|egress|delegate|credential|admin|unknown|\*)')),
            s -> struct_pack(sys := regexp_extract(s, '^(.*):[^:]*$', 1), cls := regexp_extract(s, ':([^:]*)$', 1))
        ) AS rules,
        list_filter(scopes, s -> regexp_full_match(s, '.+:(read|write|delete|egress|delegate|credential|admin|unknown|\*)')) AS conv
    FROM credential_lifecycles
    WHERE scopes IS NOT NULL
), outside AS (
    SELECT a.event_id, a.ts, a.agent_id, a.task_id, a.credential_id, a.tool, a.system, a.action_class,
        s.conv, s.credential_kind
    FROM agent_actions a
    JOIN scoped s ON s.credential_id = a.credential_id AND array_length(s.rules) > 0
    WHERE a.task_id IS NOT NULL
      AND NOT coalesce(list_bool_or(list_transform(s.rules,
            r -> coalesce(a.system, '') GLOB r.sys AND (r.cls = '*' OR r.cls = a.action_class))), false)
)
SELECT task_id AS entity_id, mode(agent_id) AS agent_id, task_id, mode(credential_id) AS credential_id,
    min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    count(*) || ' action(s) outside the credential''s scopes: '
        || array_to_string(list_sort(list(DISTINCT tool || ' (' || coalesce(system, 'no system') || ':' || action_class || ')')), ', ')
        || '; scopes: ' || array_to_string(any_value(conv), ', ') AS detail
FROM outside
GROUP BY task_id
