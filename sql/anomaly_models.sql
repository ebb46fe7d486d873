-- anomaly_models: one row per trained model version (an IsolationForest per peer group), and
-- task_anomaly_scores: each task's latest scores by its peer group's latest model.
-- `model` is a pickled scikit-learn estimator: the warehouse is trusted storage (whoever can write
-- it can run code in the scoring process), so never load models from a warehouse you don't control.

CREATE TABLE IF NOT EXISTS anomaly_models (
    model_id               VARCHAR NOT NULL,    -- iforest:<peer_group>, the same for every version
    version                INTEGER NOT NULL,    -- 1, 2, ... per model_id
    peer_group             VARCHAR NOT NULL,
    trained_at             TIMESTAMP NOT NULL,  -- run time (UTC)
    train_from             TIMESTAMP NOT NULL,  -- training window: tasks started in [from, until)
    train_until            TIMESTAMP NOT NULL,
    features               VARCHAR[] NOT NULL,  -- task_features columns, in model input order
    params                 JSON NOT NULL,       -- estimator parameters, seed, window, transform
    sklearn_version        VARCHAR NOT NULL,
    n_train                BIGINT NOT NULL,
    feature_median         DOUBLE[] NOT NULL,   -- per feature, raw units, over the training tasks
    feature_log_median     DOUBLE[] NOT NULL,   -- per feature, median of ln(1 + value)
    feature_log_scale      DOUBLE[] NOT NULL,   -- per feature, robust spread of ln(1 + value): see anomaly.py
    train_score_quantiles  DOUBLE[] NOT NULL,   -- 101 quantiles (0..100 %) of the training forest scores
    signal_stats           JSON NOT NULL,       -- per signal (iforest, tail, sequence, baseline, fused): 101 quantiles; hour shares
    model                  BLOB NOT NULL        -- pickle: {"iforest": fitted IsolationForest, "train_sorted": training
                                                -- features sorted per column, "signals_sorted": training signals sorted}
);

CREATE TABLE IF NOT EXISTS task_anomaly_scores (
    task_id             VARCHAR NOT NULL,
    agent_id            VARCHAR,
    peer_group          VARCHAR NOT NULL,
    started_at          TIMESTAMP,
    ended_at            TIMESTAMP,
    model_id            VARCHAR NOT NULL,
    version             INTEGER NOT NULL,
    iforest_score       DOUBLE NOT NULL,   -- -score_samples: in (0, 1], higher is more anomalous
    iforest_percentile  DOUBLE NOT NULL,   -- 0..100 within the model's training forest scores
    baseline_score      DOUBLE NOT NULL,   -- comparator: largest robust z above the peer median over the count features
    tail_score          DOUBLE NOT NULL,   -- sum over features of max(0, ln(0.05 / share of peers at or above the value))
    sequence_score      DOUBLE,            -- mean -ln P of the task's tool transitions (NULL: < 2 actions)
    class_sequence_score DOUBLE,           -- the same by action class
    tool_rarity_score   DOUBLE,            -- mean -ln P(tool) under the group's tool counts: tools the peers seldom use
    rare_transitions    STRUCT(event_id VARCHAR, from_tool VARCHAR, to_tool VARCHAR, probability DOUBLE, successor_rank BIGINT)[],
    fused_score         DOUBLE NOT NULL,   -- sum of -ln(share of training tasks at or above) over iforest, tail, sequence (sequence = sequence_score + tool_rarity_score)
    fused_percentile    DOUBLE NOT NULL,   -- 0..100 within the model's training fused scores
    dominant_signal     VARCHAR NOT NULL,  -- iforest, tail or sequence: the signal fewest training tasks reach
    top_features        STRUCT(feature VARCHAR, "value" DOUBLE, peer_median DOUBLE, robust_z DOUBLE, peer_share DOUBLE)[],
    scored_at           TIMESTAMP NOT NULL
);
