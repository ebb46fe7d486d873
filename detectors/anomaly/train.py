"""Training: per peer group, a sequence model and an Isolation Forest on a window of tasks.

:func:`refit` (scheduled on its own, never part of scoring) reassigns peer groups and calls
:func:`train_models` in one transaction; each trained group gets a new version of
``iforest:<peer_group>`` in ``anomaly_models``, a group with too few tasks none (cold start).
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest

from detectors.anomaly.common import naive_utc
from detectors.anomaly.peers import assign_peer_groups, require_peer_groups
from detectors.anomaly.signals import (
    FEATURES,
    HOUR_FEATURE,
    SIGNALS,
    TAIL_P,
    feature_counts,
    feature_spread,
    fuse,
    hour_rarity,
    hour_shares,
    quantiles_of,
    signal_shares,
    task_signals,
)
from detectors.core.faults import crash_point
from detectors.core.settings import AnomalyParams
from detectors.core.sqlfiles import run_sql

log = logging.getLogger(__name__)

N_ESTIMATORS = 200


@dataclass(frozen=True)
class ModelInfo:
    """One peer group's outcome of a training run; ``skipped`` when it got no model."""

    peer_group: str
    n_train: int
    model_id: str | None = None
    version: int | None = None
    skipped: bool = False
    reason: str | None = None


@dataclass
class RefitReport:
    """What :func:`refit` did: peer groups, and per group a model or a cold-start skip."""

    groups: dict[str, int] = field(default_factory=dict)  # peer group -> agents
    models: list[ModelInfo] = field(default_factory=list)

    @property
    def trained(self) -> list[str]:
        return [m.peer_group for m in self.models if not m.skipped]

    @property
    def skipped(self) -> list[str]:
        return [m.peer_group for m in self.models if m.skipped]


def _in_window(started: str = "f.started_at") -> str:
    return f"{started} >= $since AND {started} < $until"


def train_models(
    con: duckdb.DuckDBPyConnection,
    *,
    train_until: datetime,
    window_days: int = 14,
    seed: int = 7,
    min_tasks: int = 50,
    top_g: int = 3,
    features: tuple[str, ...] = FEATURES,
) -> list[ModelInfo]:
    """Fit, per peer group, a sequence model and an IsolationForest on the tasks started in
    [train_until - window_days, train_until); store the forest as the next version of
    ``iforest:<peer_group>`` in ``anomaly_models`` and replace ``sequence_transitions``.

    A group with fewer than ``min_tasks`` training tasks is skipped (logged; ``skipped=True``) and
    gets no model. Needs ``task_features``; assigns default peer groups if there are none.
    """
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise ValueError(f"not model features: {sorted(unknown)}")
    run_sql(con, "anomaly_models")
    require_peer_groups(con)
    until = naive_utc(train_until)
    since = until - timedelta(days=window_days)
    sizes = _training_sizes(con, since, until)
    trainable = [g for g, n in sizes.items() if n >= min_tasks]
    results = _cold_starts(sizes, min_tasks)
    trained_at = datetime.now(UTC).replace(tzinfo=None)
    data = _training_data(con, since, until, trainable, top_g=top_g, trained_at=trained_at)
    group_col = np.asarray(data["peer_group"], dtype=object)
    params = _model_params(seed, window_days, min_tasks, top_g)
    stored = {
        "trained_at": trained_at,
        "train_from": since,
        "train_until": until,
        "features": [*features, HOUR_FEATURE],
        "params": json.dumps(params),
        "sklearn_version": sklearn.__version__,
    }
    for group in trainable:
        mask = group_col == group
        row = _fit_group(data, mask, features, seed)
        model_id = f"iforest:{group}"
        version = _store_model(con, {**stored, **row, "model_id": model_id, "peer_group": group})
        log.info("peer group %s: trained %s v%s on %d tasks", group, model_id, version, mask.sum())
        results.append(ModelInfo(group, int(mask.sum()), model_id=model_id, version=version))
    return sorted(results, key=lambda m: m.peer_group)


def _training_sizes(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime
) -> dict[str, int]:
    """Peer group -> tasks started in the training window (0 for a group without any)."""
    return dict(
        con.execute(
            f"""SELECT g.peer_group, count(f.task_id)
                FROM agent_peer_groups g LEFT JOIN task_features f
                    ON f.agent_id = g.agent_id AND {_in_window()}
                GROUP BY 1 ORDER BY 1""",  # noqa: S608 - fixed text
            {"since": since, "until": until},
        ).fetchall()
    )


def _cold_starts(sizes: dict[str, int], min_tasks: int) -> list[ModelInfo]:
    """The groups with fewer than ``min_tasks`` training tasks, skipped and logged."""
    skipped: list[ModelInfo] = []
    for group, n in sizes.items():
        if n < min_tasks:
            reason = f"cold start: {n} training tasks < min_tasks {min_tasks}"
            log.info("peer group %s skipped: %s", group, reason)
            skipped.append(ModelInfo(group, n, skipped=True, reason=reason))
    return skipped


def _training_data(
    con: duckdb.DuckDBPyConnection,
    since: datetime,
    until: datetime,
    groups: list[str],
    *,
    top_g: int,
    trained_at: datetime,
) -> dict[str, np.ndarray]:
    """Replace ``sequence_transitions`` for ``groups``, then their training tasks' features and
    sequence scores, ordered by group and task."""
    run_sql(
        con,
        "sequence_transitions",
        {"train_from": since, "train_until": until, "groups": groups, "trained_at": trained_at},
    )
    run_sql(con, "sequence_rarity", {"score_from": since, "score_until": until, "top_g": top_g})
    return con.execute(
        f"""SELECT g.peer_group, f.* REPLACE (coalesce(f.hour_of_day, -1) AS hour_of_day),
                s.rarity_score AS sequence_score, s.tool_rarity_score
            FROM task_features f JOIN agent_peer_groups g USING (agent_id)
            LEFT JOIN _sequence_scores s USING (task_id)
            WHERE {_in_window()} AND list_contains($groups, g.peer_group)
            ORDER BY g.peer_group, f.task_id""",  # noqa: S608 - fixed text
        {"since": since, "until": until, "groups": groups},
    ).fetchnumpy()


def _model_params(seed: int, window_days: int, min_tasks: int, top_g: int) -> dict[str, Any]:
    return {
        "estimator": "IsolationForest",
        "n_estimators": N_ESTIMATORS,
        "max_samples": "auto",
        "contamination": "auto",
        "random_state": seed,
        "transform": "log1p counts; start_hour_rarity as is",
        "window_days": window_days,
        "min_tasks": min_tasks,
        "top_g": top_g,
        "fusion": "sum of -ln(upper-tail share among training tasks) over " + ", ".join(SIGNALS),
        "tail_p": TAIL_P,
    }


def _fit_group(
    data: dict[str, np.ndarray], mask: np.ndarray, features: tuple[str, ...], seed: int
) -> dict[str, Any]:
    """Fit one group's forest on its training tasks (``mask``); the model row's fitted values."""
    counts = feature_counts({f: np.asarray(data[f])[mask] for f in features}, features)
    hours = np.asarray(data["hour_of_day"])[mask]
    shares = hour_shares(hours)
    rarity = hour_rarity(hours, shares)
    x = np.column_stack([np.log1p(counts), rarity])
    forest = IsolationForest(
        n_estimators=N_ESTIMATORS, max_samples="auto", contamination="auto", random_state=seed
    ).fit(x)
    model = {"iforest": forest, "train_sorted": np.sort(x, axis=0)}
    log_median, log_scale = feature_spread(x)
    sig = task_signals(
        model,
        counts,
        rarity,
        np.asarray(data["sequence_score"], dtype=float)[mask],
        np.asarray(data["tool_rarity_score"], dtype=float)[mask],
        log_median,
        log_scale,
    )
    # Each signal's training values, sorted: scoring places new tasks among them.
    model["signals_sorted"] = {
        s: np.sort(v[~np.isnan(v)]) for s in SIGNALS if (v := getattr(sig, s)) is not None
    }
    fused = fuse(signal_shares(sig, model["signals_sorted"]))
    stats = {s: {"quantiles": quantiles_of(getattr(sig, s))} for s in (*SIGNALS, "baseline")}
    stats["fused"] = {"quantiles": quantiles_of(fused)}
    stats["hour_shares"] = shares.tolist()
    return {
        "n_train": int(mask.sum()),
        "median": np.median(sig.raw, axis=0).tolist(),
        "log_median": log_median.tolist(),
        "log_scale": log_scale.tolist(),
        "quantiles": stats["iforest"]["quantiles"],
        "signal_stats": json.dumps(stats),
        "model": pickle.dumps(model),
    }


def _store_model(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> int:
    """Insert ``row`` as the next version of its model id; that version."""
    version = con.execute(
        "SELECT coalesce(max(version), 0) + 1 FROM anomaly_models WHERE model_id = $m",
        {"m": row["model_id"]},
    ).fetchone()[0]
    con.execute(
        """INSERT INTO anomaly_models VALUES ($model_id, $version, $peer_group, $trained_at,
               $train_from, $train_until, $features, $params, $sklearn_version, $n_train,
               $median, $log_median, $log_scale, $quantiles, $signal_stats, $model)""",
        {**row, "version": version},
    )
    return version


def refit(
    con: duckdb.DuckDBPyConnection, params: AnomalyParams, *, train_until: datetime
) -> RefitReport:
    """Reassign peer groups and retrain every group's models on the window before ``train_until``,
    in one transaction: a refit that dies leaves the previous models whole."""
    con.begin()
    try:
        groups = assign_peer_groups(
            con,
            params.peer_method,  # type: ignore[arg-type]
            params.n_groups or None,
            seed=params.seed,
            role_pattern=params.role_pattern,
        )
        sizes: dict[str, int] = {}
        for group in groups.values():
            sizes[group] = sizes.get(group, 0) + 1
        models = train_models(
            con,
            train_until=train_until,
            window_days=params.window_days,
            seed=params.seed,
            min_tasks=params.min_tasks,
            top_g=params.top_g,
        )
        crash_point("refit.in_transaction")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return RefitReport(dict(sorted(sizes.items())), models)


def default_train_until(con: duckdb.DuckDBPyConnection) -> datetime:
    """Midnight (UTC) after the day of the newest task start: the training window covers the last
    ``window_days`` days of data, like the rules' detection window; today's midnight if no task."""
    return train_until_after(con.execute("SELECT max(started_at) FROM tasks").fetchone()[0])


def train_until_after(newest: datetime | None) -> datetime:
    """Midnight (UTC) after ``newest``; today's midnight when there is none."""
    if newest is None:
        now = datetime.now(UTC).replace(tzinfo=None)
        return datetime(now.year, now.month, now.day)
    return datetime(newest.year, newest.month, newest.day) + timedelta(days=1)
