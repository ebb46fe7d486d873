-- Credentials minted from a parent credential with scopes the parent does not have.
-- A child scope is covered when the parent holds it or a glob matching it (e.g. crm:* covers
-- crm:read). Only children of the parent's own kind are compared (a Vault lease's role path or an
-- STS session's role ARN is not in its caller's vocabulary); scopes in $ignored_scopes (Vault's
-- automatic "default" policy) are left out.
WITH pairs AS (
    SELECT c.*, p.credential_kind AS parent_kind, p.agent_id AS parent_agent, p.task_id AS parent_task,
        list_filter(c.scopes, s -> NOT list_contains($ignored_scopes, s)
            AND NOT coalesce(list_bool_or(list_transform(c.parent_scopes, ps -> s = ps OR s GLOB ps)), false)) AS beyond
    FROM credential_lifecycles c
    JOIN credential_lifecycles p ON p.credential_id = c.parent_credential_id
    WHERE c.parent_scopes IS NOT NULL AND c.scopes IS NOT NULL AND c.credential_kind = p.credential_kind
), issue_events AS (
    SELECT credential_id, list(event_id ORDER BY ts, event_id) AS ids
    FROM credential_events WHERE event_type = 'issue' GROUP BY credential_id
)
SELECT p.credential_id AS entity_id, p.agent_id, p.task_id, p.credential_id,
    p.issued_at AS first_seen, coalesce(least(p.validity_end, p.as_of), p.as_of) AS last_seen,
    coalesce(i.ids, []) AS evidence_event_ids,
    p.credential_kind || ' minted from ' || p.parent_credential_id
        || coalesce(' (agent ' || p.parent_agent || ')', '') || ' with scopes beyond the parent: '
        || array_to_string(p.beyond, ', ') || '; parent has: ' || array_to_string(p.parent_scopes, ', ') AS detail
FROM pairs p LEFT JOIN issue_events i ON i.credential_id = p.credential_id
WHERE array_length(p.beyond) > 0
