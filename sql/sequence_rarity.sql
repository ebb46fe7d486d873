-- task_sequence_rarity: how unusual the order of a task's actions is for its peer group.
-- Transitions are consecutive actions of a task (ordered by ts, then event_id), counted per peer
-- group over the tasks started in [$train_from, $train_until) (NULL bounds: unbounded), by tool
-- and by action class. P(next | prev) = (count(prev -> next) + 1) / (count(prev -> *) + V), V the
-- number of distinct tools (classes) the group uses: add-one smoothing, so unseen transitions keep
-- a small non-zero probability. Per task: rarity_score = mean -ln P over its tool transitions,
-- class_rarity_score the same by action class, and rare_transitions (DeepLog-style) the tool
-- transitions whose next tool is not among the $top_g most frequent successors of the previous
-- tool in the group (ties by tool name). Tasks with fewer than two actions, or whose agent has no
-- row in agent_peer_groups, have no row.

CREATE OR REPLACE TEMP TABLE _sequence_steps AS
SELECT a.task_id, g.peer_group, t.started_at, a.ts, a.event_id,
    lag(a.tool) OVER w AS prev_tool, a.tool,
    lag(a.action_class) OVER w AS prev_class, a.action_class
FROM agent_actions a
JOIN tasks t ON t.task_id = a.task_id
JOIN agent_peer_groups g ON g.agent_id = t.agent_id
WINDOW w AS (PARTITION BY a.task_id ORDER BY a.ts, a.event_id);

CREATE OR REPLACE TABLE task_sequence_rarity AS
WITH train AS (
    SELECT * FROM _sequence_steps
    WHERE prev_tool IS NOT NULL
      AND ($train_from::TIMESTAMP IS NULL OR started_at >= $train_from::TIMESTAMP)
      AND ($train_until::TIMESTAMP IS NULL OR started_at < $train_until::TIMESTAMP)
), vocab AS (
    SELECT peer_group, count(DISTINCT tool) AS v_tool, count(DISTINCT action_class) AS v_class
    FROM _sequence_steps GROUP BY peer_group
), tool_pairs AS (
    SELECT peer_group, prev_tool, tool, count(*) AS n,
        row_number() OVER (PARTITION BY peer_group, prev_tool ORDER BY count(*) DESC, tool) AS successor_rank
    FROM train GROUP BY peer_group, prev_tool, tool
), tool_from AS (
    SELECT peer_group, prev_tool, count(*) AS n FROM train GROUP BY peer_group, prev_tool
), class_pairs AS (
    SELECT peer_group, prev_class, action_class, count(*) AS n FROM train
    GROUP BY peer_group, prev_class, action_class
), class_from AS (
    SELECT peer_group, prev_class, count(*) AS n FROM train GROUP BY peer_group, prev_class
), scored AS (
    SELECT s.task_id, s.peer_group, s.ts, s.event_id, s.prev_tool, s.tool,
        (coalesce(tp.n, 0) + 1.0) / (coalesce(tf.n, 0) + v.v_tool) AS p_tool,
        (coalesce(cp.n, 0) + 1.0) / (coalesce(cf.n, 0) + v.v_class) AS p_class,
        tp.successor_rank,
        tp.successor_rank IS NULL OR tp.successor_rank > $top_g AS rare
    FROM _sequence_steps s
    JOIN vocab v USING (peer_group)
    LEFT JOIN tool_pairs tp USING (peer_group, prev_tool, tool)
    LEFT JOIN tool_from tf USING (peer_group, prev_tool)
    LEFT JOIN class_pairs cp USING (peer_group, prev_class, action_class)
    LEFT JOIN class_from cf USING (peer_group, prev_class)
    WHERE s.prev_tool IS NOT NULL
), per_task AS (
    SELECT task_id, peer_group, count(*) AS n_transitions,
        avg(-ln(p_tool)) AS rarity_score,
        avg(-ln(p_class)) AS class_rarity_score,
        list(struct_pack(event_id, from_tool := prev_tool, to_tool := tool,
                         probability := p_tool, successor_rank, rare) ORDER BY ts, event_id) AS steps
    FROM scored GROUP BY task_id, peer_group
)
SELECT task_id, peer_group, n_transitions, rarity_score, class_rarity_score,
    [struct_pack(event_id := x.event_id, from_tool := x.from_tool, to_tool := x.to_tool,
                 probability := x.probability, successor_rank := x.successor_rank)
     FOR x IN steps IF x.rare] AS rare_transitions
FROM per_task
ORDER BY task_id;

DROP TABLE _sequence_steps;
