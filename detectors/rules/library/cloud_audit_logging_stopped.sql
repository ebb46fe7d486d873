-- CloudTrail logging stopped or weakened: a trail stopped or deleted (or a CloudTrail Lake event
-- data store deleted / its ingestion stopped: $stop_events), a trail updated to stop covering
-- other regions, global services or log file validation, or event selectors that drop management
-- events, write events or whole event sources; or another log or detector switched off
-- ($other_stop_calls as "<event source>:<event name>": VPC flow logs, GuardDuty, Config, Security
-- Hub, CloudWatch log groups). Successful calls only.
WITH stops AS (
    SELECT event_id, ts, agent_id, task_id, credential_id, tool,
        CASE WHEN system = 'cloudtrail.amazonaws.com' AND list_contains($stop_events, tool) THEN 'stopped'
             WHEN list_contains($other_stop_calls, system || ':' || tool) THEN 'switched off'
             WHEN system = 'cloudtrail.amazonaws.com' AND tool = 'UpdateTrail' AND regexp_matches(coalesce(args, ''),
                 '"(isMultiRegionTrail|includeGlobalServiceEvents|enableLogFileValidation)"\s*:\s*false')
                 THEN 'coverage reduced'
             WHEN system = 'cloudtrail.amazonaws.com' AND tool = 'PutEventSelectors' AND regexp_matches(coalesce(args, ''),
                 '"includeManagementEvents"\s*:\s*false|"readWriteType"\s*:\s*"ReadOnly"|"excludeManagementEventSources"\s*:\s*\[\s*"|"(eventSelectors|advancedEventSelectors)"\s*:\s*\[\s*\]')
                 THEN 'events excluded' END AS how
    FROM agent_actions
    WHERE outcome = 'ok'
      AND (system = 'cloudtrail.amazonaws.com' OR list_contains($other_stop_calls, system || ':' || tool))
)
SELECT coalesce(agent_id, credential_id, 'unknown') AS entity_id, any_value(agent_id) AS agent_id,
    any_value(task_id) AS task_id, any_value(credential_id) AS credential_id,
    min(ts) AS first_seen, max(ts) AS last_seen,
    list(event_id ORDER BY ts, event_id) AS evidence_event_ids,
    'audit logging ' || array_to_string(list(tool || ' (' || how || ')' ORDER BY ts, event_id), ', ') AS detail
FROM stops
WHERE how IS NOT NULL
GROUP BY coalesce(agent_id, credential_id, 'unknown')
