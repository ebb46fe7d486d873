"""Behaviour unlike peers: peer groups, Isolation Forests per peer group, sequence rarity.

1. :func:`assign_peer_groups` clusters agents by their tool-usage profile (share of each tool in
   the agent's actions; scikit-learn KMeans, fixed seed) into ``agent_peer_groups``.
2. :func:`train_models` fits one ``IsolationForest`` per peer group on the ``task_features`` of the
   tasks started in a training window and stores each as a new version in ``anomaly_models``. A
   peer group with fewer than ``min_tasks`` training tasks gets no model (cold start) and is
   returned as skipped.
3. :func:`score_tasks` loads the latest model of each peer group (never refits) and writes
   ``task_anomaly_scores``: the forest's score, its percentile among the training scores, a
   robust-z baseline and the three most deviating features. Tasks of a group without a model get
   no score.
4. :func:`build_sequence_rarity` (``sql/sequence_rarity.sql``) scores the order of each task's
   actions against its peer group's transition probabilities.

Models are stored pickled in the warehouse: the warehouse is trusted storage, since whoever can
write it can make the scoring process run code.

Features (:data:`FEATURES`) are the counts, durations and credential lifetimes of
``task_features``, given to the forest as ``ln(1 + value)``; ``hour_of_day`` and ``weekday`` are
left out (cyclic; not a count). The robust z of a feature is
``(ln(1 + value) - peer median) / scale`` on that same log scale, where ``scale`` is
``1.4826 * MAD`` of the training tasks, or ``1.2533 * mean absolute deviation`` when the MAD is 0
(a feature most peers have at one value, e.g. 0/1 counts), floored at ``MIN_LOG_SCALE`` (a
feature every peer has at the same value: any other value stands out). ``value`` and
``peer_median`` in ``top_features`` are in raw units.

The forest sees a value beyond the training range on one feature like the training tasks at that
feature's edge, so a task extreme on a single count (40 reads where peers do 3) gets a high but not
necessarily extreme ``iforest_score``; ``baseline_score`` and ``top_features`` show it plainly.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import sklearn
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest

from detectors.sqlfiles import run_sql

log = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = (
    "actions",
    "reads",
    "writes",
    "deletes",
    "egress",
    "delegations",
    "credential_actions",
    "admin_actions",
    "unknown_actions",
    "distinct_tools",
    "distinct_systems",
    "distinct_destinations",
    "sensitive_reads",
    "external_egress",
    "duration_s",
    "errors",
    "denials",
    "credentials_used",
    "max_ttl_s",
    "max_validity_after_task_s",
    "new_tools",
    "new_destinations",
)
MIN_LOG_SCALE = 0.1
TOP_FEATURES = 3
N_ESTIMATORS = 200
SINGLE_GROUP = "all"

PeerMethod = Literal["agent_clusters", "single"]


@dataclass(frozen=True)
class ModelInfo:
    """One peer group's outcome of a training run; ``skipped`` when it got no model."""

    peer_group: str
    n_train: int
    model_id: str | None = None
    version: int | None = None
    skipped: bool = False
    reason: str | None = None


# ---------------------------------------------------------------------------------------------
# Peer groups


def default_n_groups(n_agents: int) -> int:
    """min(8, agents // 3), at least 1."""
    return max(1, min(8, n_agents // 3))


def assign_peer_groups(
    con: duckdb.DuckDBPyConnection,
    method: PeerMethod = "agent_clusters",
    n_groups: int | None = None,
    *,
    seed: int = 7,
) -> dict[str, str]:
    """Rebuild ``agent_peer_groups(agent_id, peer_group, method)``; agent -> peer group.

    ``agent_clusters``: KMeans on each agent's tool shares (share of each tool among its actions),
    ``n_groups`` clusters (default :func:`default_n_groups`, capped by the number of distinct
    profiles); groups are named ``tools-0``, ``tools-1``, ... in order of their first agent by id,
    so the names do not depend on KMeans' label order. ``single``: every agent in ``all``.
    Agents come from ``agent_actions`` and ``tasks``; an agent without actions has an all-zero
    profile.
    """
    if method not in ("agent_clusters", "single"):
        raise ValueError(f"unknown peer group method {method!r}")
    agents = np.array(
        sorted(
            r[0]
            for r in con.execute(
                """SELECT agent_id FROM agent_actions WHERE agent_id IS NOT NULL
                   UNION SELECT agent_id FROM tasks WHERE agent_id IS NOT NULL"""
            ).fetchall()
        ),
        dtype=object,
    )
    if method == "single" or len(agents) == 0:
        labels = [SINGLE_GROUP] * len(agents)
    else:
        labels = _cluster_by_tools(con, agents, n_groups or default_n_groups(len(agents)), seed)
    table = pa.table(
        {
            "agent_id": pa.array(agents.tolist(), pa.string()),
            "peer_group": pa.array(labels, pa.string()),
            "method": pa.array([method] * len(agents), pa.string()),
        }
    )
    con.register("_peer_groups_in", table)
    try:
        con.execute(
            "CREATE OR REPLACE TABLE agent_peer_groups AS "
            "SELECT agent_id, peer_group, method FROM _peer_groups_in ORDER BY agent_id"
        )
    finally:
        con.unregister("_peer_groups_in")
    return dict(zip(agents.tolist(), labels, strict=True))


def _cluster_by_tools(
    con: duckdb.DuckDBPyConnection, agents: np.ndarray, n_groups: int, seed: int
) -> list[str]:
    shares = con.execute(
        """SELECT agent_id, tool, count(*)::DOUBLE / sum(count(*)) OVER (PARTITION BY agent_id)
                  AS share
           FROM agent_actions WHERE agent_id IS NOT NULL
           GROUP BY agent_id, tool ORDER BY agent_id, tool"""
    ).fetchnumpy()
    tools = np.unique(shares["tool"].astype(str)) if len(shares["tool"]) else np.array([])
    matrix = np.zeros((len(agents), max(1, len(tools))))
    if len(tools):
        rows = np.searchsorted(agents.astype(str), shares["agent_id"].astype(str))
        cols = np.searchsorted(tools, shares["tool"].astype(str))
        matrix[rows, cols] = shares["share"]
    k = min(n_groups, len(np.unique(matrix, axis=0)))
    if k <= 1:
        return ["tools-0"] * len(agents)
    raw = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(matrix)
    # Canonical names: clusters numbered by their first agent in agent_id order.
    _, first = np.unique(raw, return_index=True)
    order = {int(raw[i]): n for n, i in enumerate(sorted(first))}
    return [f"tools-{order[int(label)]}" for label in raw]


# ---------------------------------------------------------------------------------------------
# Isolation forests


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _matrix(columns: dict[str, np.ndarray], features: list[str] | tuple[str, ...]) -> np.ndarray:
    """Raw feature values, one row per task (NULL -> 0), as float."""
    if not features:
        return np.zeros((0, 0))
    raw = np.column_stack(
        [np.nan_to_num(np.asarray(columns[f], dtype=float), nan=0.0) for f in features]
    )
    return np.maximum(raw, 0.0)


def _require_peer_groups(con: duckdb.DuckDBPyConnection) -> None:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'agent_peer_groups'"
    ).fetchone()[0]
    if not exists:
        log.info("no agent_peer_groups table: assigning peer groups with the defaults")
        assign_peer_groups(con)


def train_models(
    con: duckdb.DuckDBPyConnection,
    *,
    train_until: datetime,
    window_days: int = 14,
    seed: int = 7,
    min_tasks: int = 50,
    features: tuple[str, ...] = FEATURES,
) -> list[ModelInfo]:
    """Fit one IsolationForest per peer group on tasks started in [until - window_days, until).

    Each fitted model is stored as the next version of ``iforest:<peer_group>`` in
    ``anomaly_models``; a group with fewer than ``min_tasks`` training tasks is skipped (logged and
    returned with ``skipped=True``). Needs ``task_features``; assigns peer groups with the defaults
    if ``agent_peer_groups`` does not exist yet.
    """
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise ValueError(f"not model features: {sorted(unknown)}")
    run_sql(con, "anomaly_models")
    _require_peer_groups(con)
    until = _naive_utc(train_until)
    since = until - timedelta(days=window_days)
    groups = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT peer_group FROM agent_peer_groups ORDER BY peer_group"
        ).fetchall()
    ]
    data = con.execute(
        """SELECT g.peer_group, f.*
           FROM task_features f JOIN agent_peer_groups g USING (agent_id)
           WHERE f.started_at >= $since AND f.started_at < $until
           ORDER BY g.peer_group, f.task_id""",
        {"since": since, "until": until},
    ).fetchnumpy()
    group_col = np.asarray(data["peer_group"], dtype=object)
    trained_at = datetime.now(UTC).replace(tzinfo=None)
    params = {
        "estimator": "IsolationForest",
        "n_estimators": N_ESTIMATORS,
        "max_samples": "auto",
        "contamination": "auto",
        "random_state": seed,
        "transform": "log1p",
        "window_days": window_days,
        "min_tasks": min_tasks,
    }
    results: list[ModelInfo] = []
    for group in groups:
        mask = group_col == group
        n_train = int(mask.sum())
        if n_train < min_tasks:
            reason = f"cold start: {n_train} training tasks < min_tasks {min_tasks}"
            log.info("peer group %s skipped: %s", group, reason)
            results.append(ModelInfo(group, n_train, skipped=True, reason=reason))
            continue
        raw = _matrix({f: np.asarray(data[f])[mask] for f in features}, features)
        x = np.log1p(raw)
        model = IsolationForest(
            n_estimators=N_ESTIMATORS, max_samples="auto", contamination="auto", random_state=seed
        ).fit(x)
        train_scores = -model.score_samples(x)
        log_median = np.median(x, axis=0)
        deviation = np.abs(x - log_median)
        mad, mean_ad = np.median(deviation, axis=0), deviation.mean(axis=0)
        log_scale = np.maximum(np.where(mad > 0, 1.4826 * mad, 1.2533 * mean_ad), MIN_LOG_SCALE)
        model_id = f"iforest:{group}"
        version = con.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM anomaly_models WHERE model_id = $m",
            {"m": model_id},
        ).fetchone()[0]
        con.execute(
            """INSERT INTO anomaly_models VALUES ($model_id, $version, $peer_group, $trained_at,
                   $train_from, $train_until, $features, $params, $sklearn_version, $n_train,
                   $median, $log_median, $log_scale, $quantiles, $model)""",
            {
                "model_id": model_id,
                "version": version,
                "peer_group": group,
                "trained_at": trained_at,
                "train_from": since,
                "train_until": until,
                "features": list(features),
                "params": json.dumps(params),
                "sklearn_version": sklearn.__version__,
                "n_train": n_train,
                "median": np.median(raw, axis=0).tolist(),
                "log_median": log_median.tolist(),
                "log_scale": log_scale.tolist(),
                "quantiles": np.quantile(train_scores, np.linspace(0, 1, 101)).tolist(),
                "model": pickle.dumps(model),
            },
        )
        log.info("peer group %s: trained %s v%s on %d tasks", group, model_id, version, n_train)
        results.append(ModelInfo(group, n_train, model_id=model_id, version=version))
    return results


def _robust_z(
    x: np.ndarray, features: list[str], log_median: list[float], log_scale: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Robust z per task and feature, and per task the column indexes of the TOP_FEATURES largest
    |z| (ties by feature name)."""
    z = (x - np.asarray(log_median)) / np.asarray(log_scale)
    by_name = np.argsort(np.asarray(features, dtype=str), kind="stable")
    ranked = np.argsort(-np.abs(z[:, by_name]), axis=1, kind="stable")
    return z, by_name[ranked[:, :TOP_FEATURES]]


def _top_features(
    raw: np.ndarray, z: np.ndarray, top: np.ndarray, features: list[str], median: list[float]
) -> pa.ListArray:
    rows = np.arange(len(raw))[:, None]
    k = top.shape[1]
    items = pa.StructArray.from_arrays(
        [
            pa.array(np.asarray(features, dtype=object)[top].ravel().tolist(), pa.string()),
            pa.array(raw[rows, top].ravel(), pa.float64()),
            pa.array(np.asarray(median, dtype=float)[top].ravel(), pa.float64()),
            pa.array(z[rows, top].ravel(), pa.float64()),
        ],
        names=["feature", "value", "peer_median", "robust_z"],
    )
    return pa.ListArray.from_arrays(pa.array(np.arange(0, len(raw) * k + 1, k), pa.int32()), items)


def score_tasks(con: duckdb.DuckDBPyConnection, *, since: datetime | None = None) -> int:
    """Score tasks started at/after ``since`` (all when None) with their group's latest model.

    Replaces those tasks' rows in ``task_anomaly_scores``; returns the number scored. Never fits:
    tasks of a peer group without a model are not scored. ``iforest_percentile`` is the score's
    position (0..100, interpolated) among the model's training scores.
    """
    run_sql(con, "anomaly_models")
    _require_peer_groups(con)
    models = con.execute(
        """SELECT model_id, version, peer_group, features, train_score_quantiles, model,
               feature_median, feature_log_median, feature_log_scale
           FROM anomaly_models
           QUALIFY row_number() OVER (PARTITION BY peer_group ORDER BY version DESC) = 1
           ORDER BY peer_group"""
    ).fetchall()
    start = _naive_utc(since) if since is not None else None
    parts: list[pa.Table] = []
    for model_id, version, group, features, quantiles, blob, *baseline in models:
        data = con.execute(
            """SELECT f.* FROM task_features f JOIN agent_peer_groups g USING (agent_id)
               WHERE g.peer_group = $group
                 AND ($since::TIMESTAMP IS NULL OR f.started_at >= $since::TIMESTAMP)
               ORDER BY f.task_id""",
            {"group": group, "since": start},
        ).fetchnumpy()
        n = len(data["task_id"])
        if n == 0:
            continue
        model = pickle.loads(blob)  # noqa: S301 - the warehouse is trusted storage (module doc)
        raw = _matrix(data, features)
        x = np.log1p(raw)
        scores = -model.score_samples(x)
        percentile = np.interp(scores, np.asarray(quantiles), np.linspace(0, 100, 101))
        median, log_median, log_scale = baseline
        z, top = _robust_z(x, features, log_median, log_scale)
        parts.append(
            pa.table(
                {
                    "task_id": pa.array(np.asarray(data["task_id"]).tolist(), pa.string()),
                    "agent_id": pa.array(np.asarray(data["agent_id"]).tolist(), pa.string()),
                    "peer_group": pa.array([group] * n, pa.string()),
                    "model_id": pa.array([model_id] * n, pa.string()),
                    "version": pa.array([version] * n, pa.int32()),
                    "iforest_score": pa.array(scores, pa.float64()),
                    "iforest_percentile": pa.array(percentile, pa.float64()),
                    "baseline_score": pa.array(np.abs(z).max(axis=1), pa.float64()),
                    "top_features": _top_features(raw, z, top, features, median),
                }
            )
        )
    skipped = sorted(
        {r[0] for r in con.execute("SELECT DISTINCT peer_group FROM agent_peer_groups").fetchall()}
        - {m[2] for m in models}
    )
    if skipped:
        log.info("peer groups without a model, not scored: %s", ", ".join(skipped))
    if not parts:
        return 0
    con.register("_anomaly_scores_in", pa.concat_tables(parts))
    try:
        con.begin()
        con.execute(
            "DELETE FROM task_anomaly_scores "
            "WHERE task_id IN (SELECT task_id FROM _anomaly_scores_in)"
        )
        con.execute(
            """INSERT INTO task_anomaly_scores
               SELECT task_id, agent_id, peer_group, model_id, version, iforest_score,
                   iforest_percentile, baseline_score, top_features, $scored_at
               FROM _anomaly_scores_in ORDER BY task_id""",
            {"scored_at": datetime.now(UTC).replace(tzinfo=None)},
        )
        con.commit()
    except Exception:
        con.rollback()
        raise
    finally:
        con.unregister("_anomaly_scores_in")
    return sum(p.num_rows for p in parts)


# ---------------------------------------------------------------------------------------------
# Sequence rarity


def build_sequence_rarity(
    con: duckdb.DuckDBPyConnection,
    *,
    top_g: int = 3,
    train_from: datetime | None = None,
    train_until: datetime | None = None,
) -> int:
    """Rebuild ``task_sequence_rarity`` (``sql/sequence_rarity.sql``); its row count.

    Transition counts come from the tasks started in [train_from, train_until) (unbounded when
    None, in which case a task's own transitions count towards its group's probabilities).
    """
    _require_peer_groups(con)
    run_sql(
        con,
        "sequence_rarity",
        {
            "top_g": top_g,
            "train_from": _naive_utc(train_from) if train_from else None,
            "train_until": _naive_utc(train_until) if train_until else None,
        },
    )
    return con.execute("SELECT count(*) FROM task_sequence_rarity").fetchone()[0]
