-- Calls made with an EC2 instance-profile session (credential kind aws_instance_session, or a
-- principal `arn:aws:sts::<account>:assumed-role/<role>/i-<instance id>`) from an
-- address outside the platform: the trace of instance credentials taken from a host (SSRF to
-- the metadata service, a compromised instance) and replayed from elsewhere.
-- An address is inside when it is in one of $platform_cidrs (IPv4 CIDRs, IPv4 addresses, or
-- other addresses written exactly) or, with $private_is_platform, in 10/8, 172.16/12 or
-- 192.168/16 (the VPC's own addresses, seen through VPC endpoints). Calls AWS services make for
-- the session (`AWS Internal`, a service host) carry no address and never count; an IPv6 address
-- is outside unless listed exactly.
WITH cidrs AS (
    SELECT trim(x) AS cidr FROM unnest(CAST($platform_cidrs AS VARCHAR[])) AS u(x)
    UNION ALL
    SELECT cidr FROM (VALUES ('10.0.0.0/8'), ('172.16.0.0/12'), ('192.168.0.0/16')) AS p(cidr)
    WHERE $private_is_platform
), ranges AS (
    SELECT cidr,
        CASE WHEN regexp_full_match(cidr, '[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?') THEN
            CAST(string_split(string_split(cidr, '/')[1], '.')[1] AS BIGINT) * 16777216
            + CAST(string_split(string_split(cidr, '/')[1], '.')[2] AS BIGINT) * 65536
            + CAST(string_split(string_split(cidr, '/')[1], '.')[3] AS BIGINT) * 256
            + CAST(string_split(string_split(cidr, '/')[1], '.')[4] AS BIGINT) END AS net,
        CASE WHEN regexp_full_match(cidr, '[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}')
             THEN least(CAST(string_split(cidr, '/')[2] AS INTEGER), 32) ELSE 32 END AS prefix
    FROM cidrs
), uses AS (
    SELECT e.credential_id, e.event_id, e.ts, e.source_ip,
        coalesce(c.agent_id, e.agent_id) AS agent_id, c.task_id, coalesce(c.principal, e.principal) AS principal,
        CASE WHEN regexp_full_match(e.source_ip, '[0-9]{1,3}(\.[0-9]{1,3}){3}') THEN
            CAST(string_split(e.source_ip, '.')[1] AS BIGINT) * 16777216
            + CAST(string_split(e.source_ip, '.')[2] AS BIGINT) * 65536
            + CAST(string_split(e.source_ip, '.')[3] AS BIGINT) * 256
            + CAST(string_split(e.source_ip, '.')[4] AS BIGINT) END AS ip_num
    FROM credential_events e
    LEFT JOIN credential_lifecycles c ON c.credential_id = e.credential_id
    WHERE e.event_type = 'use' AND e.source_ip IS NOT NULL
      -- an instance-profile session: by kind, or by a principal that is a session named after an
      -- EC2 instance (for sources that report the assumed-role ARN but not the kind)
      AND (e.credential_kind = 'aws_instance_session' OR c.credential_kind = 'aws_instance_session'
           OR regexp_matches(coalesce(c.principal, e.principal, ''), ':assumed-role/[^/]+/i-[0-9a-f]{8}([0-9a-f]{9})?$'))
      -- a real address: IPv4, or IPv6 (hex and colons); not `AWS Internal` nor a service host
      AND regexp_full_match(e.source_ip, '[0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*')
), inside AS (
    SELECT DISTINCT u.credential_id, u.event_id
    FROM uses u CROSS JOIN ranges r
    WHERE u.source_ip = r.cidr
       OR (u.ip_num IS NOT NULL AND r.net IS NOT NULL
           AND floor(u.ip_num / pow(2, 32 - r.prefix)) = floor(r.net / pow(2, 32 - r.prefix)))
), outside AS (
    SELECT u.* FROM uses u
    LEFT JOIN inside i ON i.credential_id = u.credential_id AND i.event_id = u.event_id
    WHERE i.event_id IS NULL
)
SELECT credential_id AS entity_id, any_value(agent_id) AS agent_id, any_value(task_id) AS task_id,
    credential_id, min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    'EC2 instance-profile session' || coalesce(' ' || any_value(principal), '') || ' used ' || count(*)
        || ' time(s) from outside the platform: '
        || array_to_string(list_sort(list(DISTINCT source_ip)), ', ') AS detail
FROM outside
GROUP BY credential_id
