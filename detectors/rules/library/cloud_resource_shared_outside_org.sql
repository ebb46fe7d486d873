-- Snapshots, images and buckets shared with another account or with everyone. Ingest decides
-- what a call shares (CloudTrail: ModifySnapshotAttribute / ModifyImageAttribute `add` items,
-- ModifyDB[Cluster]SnapshotAttribute `restore` valuesToAdd, PutBucketPolicy Allow principals,
-- PutBucketAcl grants to AllUsers / AuthenticatedUsers): such a call is an egress action whose
-- destination lists the accounts added other than the trail's own (`all` for everyone), and it
-- is external when there is one. Accounts in $org_account_ids are the organisation's own.
WITH shares AS (
    SELECT a.event_id, a.ts, a.agent_id, a.task_id, a.credential_id, a.tool, d.target
    FROM agent_actions a,
        LATERAL (SELECT trim(x) AS target FROM unnest(string_split(a.destination, ',')) AS t(x)) d
    WHERE list_contains($share_tools, a.tool) AND a.action_class = 'egress' AND a.external
      AND a.outcome = 'ok' AND a.destination IS NOT NULL
      AND d.target <> '' AND NOT list_contains(CAST($org_account_ids AS VARCHAR[]), d.target)
), events AS (
    SELECT coalesce(agent_id, credential_id, 'unknown') AS entity_id, event_id, any_value(ts) AS ts,
        any_value(agent_id) AS agent_id, any_value(task_id) AS task_id,
        any_value(credential_id) AS credential_id, any_value(tool) AS tool,
        array_to_string(list_sort(list(DISTINCT target)), ',') AS targets
    FROM shares
    GROUP BY coalesce(agent_id, credential_id, 'unknown'), event_id
)
SELECT entity_id, any_value(agent_id) AS agent_id, any_value(task_id) AS task_id,
    any_value(credential_id) AS credential_id, min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    count(*) || ' share(s) outside the organisation: '
        || array_to_string(list(tool || ' with ' || targets ORDER BY ts, event_id), '; ') AS detail
FROM events
GROUP BY entity_id
