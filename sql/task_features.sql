-- task_features: one numeric row per task, the input of the anomaly models (issue: behaviour
-- unlike peers). "New for the agent" means first seen for that agent in this task, never in an
-- earlier one; an agent's first task has no baseline, so it counts nothing as new.
-- repeat_external_sends: how many of the agent's tasks in the 7 days before this one sent
-- externally to a destination this task also sends to externally (0 when it sends nothing out):
-- one small send is ordinary, the same send task after task is how slow exfiltration looks.
-- untrusted_arguments / untrusted_argument_share: critical arguments of the task's acting actions
-- whose value came from untrusted tool output and not from the user (argument_provenance), as a
-- count and as a share of its critical arguments (0 without content capture).

CREATE OR REPLACE TABLE task_features AS
WITH acts AS (
    SELECT a.*, t.started_at, t.ended_at
    FROM agent_actions a JOIN tasks t USING (task_id)
), agent_first_task AS (
    SELECT agent_id, min(started_at) AS first_task_start FROM tasks WHERE agent_id IS NOT NULL GROUP BY agent_id
), first_tool AS (
    SELECT agent_id, tool, min(ts) AS first_ts FROM acts WHERE agent_id IS NOT NULL GROUP BY agent_id, tool
), first_destination AS (
    SELECT agent_id, destination, min(ts) AS first_ts FROM acts
    WHERE agent_id IS NOT NULL AND destination IS NOT NULL GROUP BY agent_id, destination
), per_task AS (
    SELECT task_id,
        count(*) AS actions,
        count_if(action_class = 'read') AS reads,
        count_if(action_class = 'write') AS writes,
        count_if(action_class = 'delete') AS deletes,
        count_if(action_class = 'egress') AS egress,
        count_if(action_class = 'delegate') AS delegations,
        count_if(action_class = 'credential') AS credential_actions,
        count_if(action_class = 'admin') AS admin_actions,
        count_if(action_class = 'unknown') AS unknown_actions,
        count(DISTINCT tool) AS distinct_tools,
        count(DISTINCT system) AS distinct_systems,
        count(DISTINCT destination) AS distinct_destinations,
        count_if(action_class = 'read' AND sensitivity = 'high') AS sensitive_reads,
        count_if(action_class = 'egress' AND external) AS external_egress,
        sum(bytes_out) FILTER (WHERE action_class = 'egress') AS egress_bytes,
        count_if(outcome = 'error') AS errors,
        count_if(outcome = 'denied') AS denials,
        count(DISTINCT credential_id) AS credentials_used
    FROM acts GROUP BY task_id
), new_things AS (
    SELECT a.task_id,
        count(DISTINCT a.tool) FILTER (WHERE a.ts = ft.first_ts AND a.started_at > af.first_task_start) AS new_tools,
        count(DISTINCT a.destination) FILTER (WHERE a.ts = fd.first_ts AND a.started_at > af.first_task_start)
            AS new_destinations
    FROM acts a
    JOIN agent_first_task af USING (agent_id)
    JOIN first_tool ft USING (agent_id, tool)
    LEFT JOIN first_destination fd ON fd.agent_id = a.agent_id AND fd.destination = a.destination
    GROUP BY a.task_id
), external_sends AS (
    SELECT DISTINCT agent_id, task_id, started_at, destination FROM acts
    WHERE action_class = 'egress' AND external AND destination IS NOT NULL AND agent_id IS NOT NULL
), repeats AS (
    SELECT x.task_id, count(DISTINCT y.task_id) AS repeat_external_sends
    FROM external_sends x JOIN external_sends y
      ON y.agent_id = x.agent_id AND y.destination = x.destination AND y.task_id <> x.task_id
     AND y.started_at < x.started_at AND y.started_at >= x.started_at - INTERVAL 7 DAY
    GROUP BY x.task_id
), provenance AS (
    SELECT task_id,
        count(*) FILTER (WHERE seen_in_untrusted AND NOT seen_in_user) AS untrusted_arguments,
        count(*) FILTER (WHERE seen_in_untrusted AND NOT seen_in_user) / count(*) AS untrusted_argument_share
    FROM argument_provenance GROUP BY task_id
), creds AS (
    SELECT task_id, max(ttl_s) AS max_ttl_s, max(validity_after_task_s) AS max_validity_after_task_s
    FROM credential_lifecycles WHERE task_id IS NOT NULL GROUP BY task_id
)
SELECT t.task_id, t.agent_id, t.started_at,
    coalesce(p.actions, 0) AS actions, coalesce(p.reads, 0) AS reads, coalesce(p.writes, 0) AS writes,
    coalesce(p.deletes, 0) AS deletes, coalesce(p.egress, 0) AS egress,
    coalesce(p.delegations, 0) AS delegations, coalesce(p.credential_actions, 0) AS credential_actions,
    coalesce(p.admin_actions, 0) AS admin_actions, coalesce(p.unknown_actions, 0) AS unknown_actions,
    coalesce(p.distinct_tools, 0) AS distinct_tools, coalesce(p.distinct_systems, 0) AS distinct_systems,
    coalesce(p.distinct_destinations, 0) AS distinct_destinations,
    coalesce(p.sensitive_reads, 0) AS sensitive_reads, coalesce(p.external_egress, 0) AS external_egress,
    coalesce(p.egress_bytes, 0) AS egress_bytes,
    greatest(0, epoch(t.ended_at) - epoch(t.started_at)) AS duration_s,
    hour(t.started_at) AS hour_of_day, isodow(t.started_at) AS weekday,
    coalesce(p.errors, 0) AS errors, coalesce(p.denials, 0) AS denials,
    coalesce(p.credentials_used, 0) AS credentials_used,
    coalesce(c.max_ttl_s, 0) AS max_ttl_s, coalesce(c.max_validity_after_task_s, 0) AS max_validity_after_task_s,
    coalesce(n.new_tools, 0) AS new_tools, coalesce(n.new_destinations, 0) AS new_destinations,
    coalesce(r.repeat_external_sends, 0) AS repeat_external_sends,
    coalesce(v.untrusted_arguments, 0) AS untrusted_arguments,
    coalesce(v.untrusted_argument_share, 0) AS untrusted_argument_share
FROM tasks t
LEFT JOIN per_task p USING (task_id)
LEFT JOIN new_things n USING (task_id)
LEFT JOIN creds c USING (task_id)
LEFT JOIN repeats r USING (task_id)
LEFT JOIN provenance v USING (task_id);
