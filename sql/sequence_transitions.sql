-- sequence_transitions: the sequence model of each peer group, refit with the forests.
-- Transitions are consecutive actions of a task (ordered by ts, then event_id) of the tasks
-- started in [$train_from, $train_until), counted per peer group in $groups (those with enough
-- history), by tool (kind 'tool') and by action class (kind 'class'). One row per seen pair:
--   n         times prev was followed by next,
--   from_n    times prev was followed by anything,
--   vocab     distinct items the group used in training + 1 (room for unseen ones),
--   successor_rank  rank of next among prev's successors (most frequent first, ties by name).
-- Scoring (sequence_rarity.sql) smooths with add-one: P(next | prev) = (n + 1) / (from_n + vocab).

CREATE OR REPLACE TABLE sequence_transitions AS
WITH steps AS (
    SELECT g.peer_group,
        lag(a.tool) OVER w AS prev_tool, a.tool,
        lag(a.action_class) OVER w AS prev_class, a.action_class
    FROM agent_actions a
    JOIN tasks t ON t.task_id = a.task_id
    JOIN agent_peer_groups g ON g.agent_id = t.agent_id
    WHERE t.started_at >= $train_from AND t.started_at < $train_until
      AND list_contains($groups, g.peer_group)
    WINDOW w AS (PARTITION BY a.task_id ORDER BY a.ts, a.event_id)
), pairs AS (
    SELECT peer_group, 'tool' AS kind, prev_tool AS prev, tool AS next, count(*) AS n
    FROM steps WHERE prev_tool IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT peer_group, 'class', prev_class, action_class, count(*)
    FROM steps WHERE prev_class IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT peer_group, 'unigram', '', tool, count(*) FROM steps GROUP BY ALL
), vocab AS (
    SELECT peer_group, 'tool' AS kind, count(DISTINCT tool) + 1 AS vocab FROM steps GROUP BY ALL
    UNION ALL
    SELECT peer_group, 'unigram', count(DISTINCT tool) + 1 FROM steps GROUP BY ALL
    UNION ALL
    SELECT peer_group, 'class', count(DISTINCT action_class) + 1 FROM steps GROUP BY ALL
)
SELECT p.peer_group, p.kind, p.prev, p.next, p.n,
    sum(p.n) OVER (PARTITION BY p.peer_group, p.kind, p.prev) AS from_n,
    v.vocab,
    row_number() OVER (PARTITION BY p.peer_group, p.kind, p.prev ORDER BY p.n DESC, p.next) AS successor_rank,
    $trained_at::TIMESTAMP AS trained_at, $train_from::TIMESTAMP AS train_from,
    $train_until::TIMESTAMP AS train_until
FROM pairs p JOIN vocab v USING (peer_group, kind)
ORDER BY p.peer_group, p.kind, p.prev, successor_rank;
