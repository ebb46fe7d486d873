-- _sequence_scores (temp): how unusual the order of each task's actions is for its peer group,
-- for the tasks started in [$score_from, $score_until) (NULL bounds: unbounded) whose group has
-- a sequence model (sequence_transitions). Never refits: probabilities come from the stored
-- counts, P(next | prev) = (n + 1) / (from_n + vocab), so unseen transitions keep a small
-- non-zero probability.
--   rarity_score        mean -ln P over the task's tool transitions,
--   class_rarity_score  the same by action class,
--   rare_transitions    DeepLog-style: tool transitions whose next tool is not among the $top_g
--                       most frequent successors of the previous tool in the group;
--   tool_rarity_score   mean -ln P(tool) over all the task's actions, P(tool) = (n + 1) / (all + vocab)
--                       from the group's tool counts: tools the peers seldom or never use.
-- A task with one action has only tool_rarity_score.

CREATE OR REPLACE TEMP TABLE _sequence_steps AS
SELECT a.task_id, g.peer_group, a.ts, a.event_id,
    lag(a.tool) OVER w AS prev_tool, a.tool,
    lag(a.action_class) OVER w AS prev_class, a.action_class
FROM agent_actions a
JOIN tasks t ON t.task_id = a.task_id
JOIN agent_peer_groups g ON g.agent_id = t.agent_id
WHERE ($score_from::TIMESTAMP IS NULL OR t.started_at >= $score_from::TIMESTAMP)
  AND ($score_until::TIMESTAMP IS NULL OR t.started_at < $score_until::TIMESTAMP)
  AND g.peer_group IN (SELECT peer_group FROM sequence_transitions)
WINDOW w AS (PARTITION BY a.task_id ORDER BY a.ts, a.event_id);

CREATE OR REPLACE TEMP TABLE _sequence_scores AS
WITH vocab AS (
    SELECT DISTINCT peer_group, kind, vocab FROM sequence_transitions
), from_counts AS (
    SELECT DISTINCT peer_group, kind, prev, from_n FROM sequence_transitions
), scored AS (
    SELECT s.task_id, s.peer_group, s.ts, s.event_id, s.prev_tool, s.tool,
        (coalesce(tp.n, 0) + 1.0) / (coalesce(tf.from_n, 0) + vt.vocab) AS p_tool,
        (coalesce(cp.n, 0) + 1.0) / (coalesce(cf.from_n, 0) + vc.vocab) AS p_class,
        tp.successor_rank,
        tp.successor_rank IS NULL OR tp.successor_rank > $top_g AS rare
    FROM _sequence_steps s
    JOIN vocab vt ON vt.peer_group = s.peer_group AND vt.kind = 'tool'
    JOIN vocab vc ON vc.peer_group = s.peer_group AND vc.kind = 'class'
    LEFT JOIN sequence_transitions tp
        ON tp.peer_group = s.peer_group AND tp.kind = 'tool' AND tp.prev = s.prev_tool AND tp.next = s.tool
    LEFT JOIN from_counts tf ON tf.peer_group = s.peer_group AND tf.kind = 'tool' AND tf.prev = s.prev_tool
    LEFT JOIN sequence_transitions cp
        ON cp.peer_group = s.peer_group AND cp.kind = 'class' AND cp.prev = s.prev_class
       AND cp.next = s.action_class
    LEFT JOIN from_counts cf ON cf.peer_group = s.peer_group AND cf.kind = 'class' AND cf.prev = s.prev_class
    WHERE s.prev_tool IS NOT NULL
), tools AS (
    SELECT s.task_id, s.peer_group,
        avg(-ln((coalesce(u.n, 0) + 1.0) / (tot.total + vu.vocab))) AS tool_rarity_score
    FROM _sequence_steps s
    JOIN vocab vu ON vu.peer_group = s.peer_group AND vu.kind = 'unigram'
    JOIN (SELECT peer_group, from_n AS total FROM from_counts WHERE kind = 'unigram') tot
        ON tot.peer_group = s.peer_group
    LEFT JOIN sequence_transitions u
        ON u.peer_group = s.peer_group AND u.kind = 'unigram' AND u.next = s.tool
    GROUP BY s.task_id, s.peer_group
), transitions AS (
    SELECT task_id, peer_group, count(*) AS n_transitions,
        avg(-ln(p_tool)) AS rarity_score,
        avg(-ln(p_class)) AS class_rarity_score,
        coalesce(
            list(struct_pack(event_id, from_tool := prev_tool, to_tool := tool,
                             probability := p_tool, successor_rank) ORDER BY ts, event_id)
                FILTER (WHERE rare),
            []) AS rare_transitions
    FROM scored
    GROUP BY task_id, peer_group
)
SELECT task_id, peer_group, coalesce(t.n_transitions, 0) AS n_transitions, t.rarity_score,
    t.class_rarity_score, coalesce(t.rare_transitions, []) AS rare_transitions,
    u.tool_rarity_score
FROM tools u LEFT JOIN transitions t USING (task_id, peer_group)
ORDER BY task_id;

DROP TABLE _sequence_steps;
