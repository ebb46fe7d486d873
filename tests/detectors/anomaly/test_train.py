"""Training: per-group Isolation Forests, their stored rows, cold start and the window."""

from __future__ import annotations

import json
from datetime import datetime

import sklearn

from detectors.anomaly.score import score_tasks
from detectors.anomaly.signals import FEATURES, HOUR_FEATURE
from detectors.anomaly.train import train_models
from tests.detectors.anomaly.conftest import SCORE_SINCE, TRAIN_UNTIL, scores_of


def test_model_row_carries_features_params_version_and_window(features):
    infos = train_models(features, train_until=TRAIN_UNTIL, seed=7)
    big = next(i for i in infos if i.peer_group == "big")
    assert (big.model_id, big.version, big.n_train, big.skipped) == ("iforest:big", 1, 200, False)
    row = features.execute(
        """SELECT model_id, version, peer_group, features, params, sklearn_version, n_train,
               train_from, train_until, len(feature_median), len(train_score_quantiles),
               octet_length(model) FROM anomaly_models"""
    ).fetchall()
    assert len(row) == 1
    (mid, version, group, feats, params, skv, n_train, t_from, t_until, n_med, n_q, size) = row[0]
    assert (mid, version, group, n_train) == ("iforest:big", 1, "big", 200)
    assert feats == [*FEATURES, HOUR_FEATURE] and n_med == len(feats) and n_q == 101 and size > 1000
    assert "hour_of_day" not in feats
    params = json.loads(params)
    assert params["random_state"] == 7 and params["window_days"] == 14
    assert params["transform"].startswith("log1p") and params["estimator"] == "IsolationForest"
    assert skv == sklearn.__version__
    assert (t_from, t_until) == (datetime(2026, 11, 1), TRAIN_UNTIL)


def test_cold_start_group_gets_no_model_and_noscores_of(features):
    infos = {i.peer_group: i for i in train_models(features, train_until=TRAIN_UNTIL)}
    small = infos["small"]
    assert small.skipped and small.n_train == 10 and small.model_id is None
    assert "cold start" in small.reason
    assert features.execute("SELECT list(peer_group) FROM anomaly_models").fetchone()[0] == ["big"]
    assert score_tasks(features) == 221  # every big task, none of the small group
    scored = features.execute("SELECT count(*) FROM task_anomaly_scores WHERE peer_group = 'small'")
    assert scored.fetchone()[0] == 0


def test_training_window_excludes_later_tasks(features):
    # window [Nov 8, Nov 15): big tasks from hour 168 on, small tasks of Nov 8-12
    infos = train_models(features, train_until=TRAIN_UNTIL, window_days=7, min_tasks=10)
    assert {i.peer_group: i.n_train for i in infos} == {"big": 32, "small": 5}
    assert infos[1].skipped


def test_training_is_deterministic_for_a_seed(features):
    train_models(features, train_until=TRAIN_UNTIL, seed=7)
    score_tasks(features, since=SCORE_SINCE)
    first = scores_of(features)
    train_models(features, train_until=TRAIN_UNTIL, seed=7)
    score_tasks(features, since=SCORE_SINCE)
    second = scores_of(features)
    assert {v[-1] for v in second.values()} == {2}  # scored by the new version
    assert {k: v[:-1] for k, v in first.items()} == {k: v[:-1] for k, v in second.items()}
