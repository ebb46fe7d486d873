-- Uses of a Kubernetes service-account token from a source address outside the cluster's
-- networks: IPv4 outside every CIDR of $cluster_cidrs, IPv6 not starting with one of
-- $cluster_ipv6_prefixes. An address a.b.c.d is inside n.n.n.n/p when both agree on their first p
-- bits: floor(ip / 2^(32 - p)) is equal (plain arithmetic, so that the same SQL runs on Spark).
WITH uses AS (
    SELECT e.credential_id, e.event_id, e.ts, e.source_ip,
        coalesce(c.agent_id, e.agent_id) AS agent_id, coalesce(c.task_id, e.task_id) AS task_id,
        coalesce(c.credential_kind, e.credential_kind) AS credential_kind
    FROM credential_events e
    LEFT JOIN credential_lifecycles c ON c.credential_id = e.credential_id
    WHERE e.event_type = 'use' AND e.source_ip IS NOT NULL AND e.source_ip <> ''
), judged AS (
    SELECT u.*,
        CASE WHEN regexp_full_match(u.source_ip, '[0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}') THEN
            CAST(regexp_extract(u.source_ip, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)[.]([0-9]+)$', 1) AS BIGINT) * 16777216
            + CAST(regexp_extract(u.source_ip, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)[.]([0-9]+)$', 2) AS BIGINT) * 65536
            + CAST(regexp_extract(u.source_ip, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)[.]([0-9]+)$', 3) AS BIGINT) * 256
            + CAST(regexp_extract(u.source_ip, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)[.]([0-9]+)$', 4) AS BIGINT)
        END AS ip_num
    FROM uses u
    WHERE list_contains($credential_kinds, u.credential_kind)
), outside AS (
    SELECT j.* FROM judged j
    WHERE CASE
        WHEN j.ip_num IS NOT NULL THEN NOT coalesce(list_bool_or(list_transform($cluster_cidrs, cidr ->
            floor(j.ip_num / power(2, 32 - CAST(regexp_extract(cidr, '/([0-9]+)$', 1) AS BIGINT)))
            = floor((CAST(regexp_extract(cidr, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)[.]([0-9]+)/', 1) AS BIGINT) * 16777216
                     + CAST(regexp_extract(cidr, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)[.]([0-9]+)/', 2) AS BIGINT) * 65536
                     + CAST(regexp_extract(cidr, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)[.]([0-9]+)/', 3) AS BIGINT) * 256
                     + CAST(regexp_extract(cidr, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)[.]([0-9]+)/', 4) AS BIGINT))
                    / power(2, 32 - CAST(regexp_extract(cidr, '/([0-9]+)$', 1) AS BIGINT))))), false)
        WHEN strpos(j.source_ip, ':') > 0 THEN NOT coalesce(list_bool_or(list_transform($cluster_ipv6_prefixes,
            p -> starts_with(lower(j.source_ip), p))), false)
        ELSE false END
)
SELECT credential_id AS entity_id, any_value(agent_id) AS agent_id, any_value(task_id) AS task_id,
    credential_id, min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    any_value(credential_kind) || ' used ' || count(*) || ' time(s) from outside the cluster networks ('
        || array_to_string($cluster_cidrs, ', ') || '): '
        || array_to_string(list_sort(list(DISTINCT source_ip)), ', ') AS detail
FROM outside
GROUP BY credential_id
