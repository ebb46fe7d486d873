-- task_sequences: per task, its actions in order (ties broken by event_id), the action-class path,
-- the systems and destinations it touched and the credentials it used.

CREATE OR REPLACE TABLE task_sequences AS
SELECT a.task_id,
    mode(a.agent_id) AS agent_id,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS n_actions,
    list(struct_pack(ts := a.ts, event_id := a.event_id, tool := a.tool, system := a.system,
                     action_class := a.action_class, sensitivity := a.sensitivity, external := a.external,
                     destination := a.destination, outcome := a.outcome, credential_id := a.credential_id)
         ORDER BY a.ts, a.event_id) AS actions,
    string_agg(a.action_class, '>' ORDER BY a.ts, a.event_id) AS class_path,
    list_sort(list(DISTINCT a.system) FILTER (WHERE a.system IS NOT NULL)) AS systems,
    list_sort(list(DISTINCT a.destination) FILTER (WHERE a.destination IS NOT NULL)) AS destinations,
    list_sort(list(DISTINCT a.credential_id) FILTER (WHERE a.credential_id IS NOT NULL)) AS credentials
FROM agent_actions a
WHERE a.task_id IS NOT NULL
GROUP BY a.task_id;
