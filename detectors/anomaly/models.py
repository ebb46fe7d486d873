"""Behaviour unlike peers: peer groups, Isolation Forests, sequence rarity, and their fusion.

Refit (:func:`refit`, scheduled on its own) and scoring (:func:`score_tasks`, every run) are
separate; scoring never fits anything.

1. :func:`assign_peer_groups` puts agents in peer groups (``agent_peer_groups``): ``agent_clusters``
   clusters them by tool-usage profile (share of each tool among the agent's actions; KMeans, fixed
   seed) and keeps each group's mean profile in ``peer_group_profiles``, ``roles`` reads a role from
   the agent id with a regular expression (named group ``role``), ``single`` puts everyone in one
   group. Agents first seen after the refit are placed at scoring time
   (:func:`place_new_agents`): nearest profile, their role, or the single group.
2. :func:`train_models` fits, for each peer group with at least ``min_tasks`` tasks started in the
   training window, a sequence model (``sequence_transitions``, ``sql/sequence_transitions.sql``)
   and one ``IsolationForest``, stored as a new version in ``anomaly_models`` with the window,
   features, parameters and library version. A smaller group is skipped and logged (cold start):
   it gets no model, so nothing of it is scored or flagged.
3. :func:`score_tasks` scores tasks with their group's latest models into ``task_anomaly_scores``.

Three signals per task, each normalised by its spread over the group's training tasks
(``(value - median) / (1.4826 * MAD)``, see :func:`_spread`):

* ``iforest``: the forest's anomaly score (``-score_samples``) on :data:`FEATURES` as
  ``ln(1 + value)`` plus ``start_hour_rarity`` (``-ln`` of the smoothed share of the group's
  training tasks that started in the task's UTC hour: off-hours work is rare for most groups);
* ``baseline``: the simple baseline, the largest robust z above the peer median over the count
  features. The robust z of a feature is ``(ln(1 + value) - peer median) / scale``, ``scale`` being
  ``1.4826 * MAD`` of the training tasks, or ``1.2533 * mean absolute deviation`` when the MAD is 0
  (a feature most peers have at one value), floored at ``MIN_LOG_SCALE``;
* ``sequence``: mean ``-ln P`` of the task's tool transitions under the group's smoothed
  transition probabilities (``sql/sequence_rarity.sql``), with DeepLog-style rare transitions.

``fused_score`` (:func:`fuse`) combines the normalised signals; ``fused_percentile`` places it
among the training tasks' fused scores. ``top_features`` (largest robust z, raw units) and
``rare_transitions`` explain a score.

Models are stored pickled in the warehouse: the warehouse is trusted storage, since whoever can
write it can make the scoring process run code.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import sklearn
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest

from detectors.core.faults import crash_point
from detectors.core.settings import PEER_METHODS, AnomalyParams
from detectors.core.sqlfiles import run_sql
from detectors.core.warehouse import has_table

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
    "egress_bytes",
    "duration_s",
    "errors",
    "denials",
    "credentials_used",
    "max_ttl_s",
    "max_validity_after_task_s",
    "new_tools",
    "new_destinations",
    "repeat_external_sends",
)
HOUR_FEATURE = "start_hour_rarity"
# Fused signals; "baseline" (robust z) is the comparator the evaluation reports beside them.
SIGNALS: tuple[str, ...] = ("iforest", "tail", "sequence")
TAIL_P = 0.05  # a feature adds to the tail signal once fewer than 5 % of the peers reach its value
MIN_LOG_SCALE = 0.1
MIN_SIGNAL_SCALE = 1e-6
SHARE_TOLERANCE = 1e-12  # relative: values this close count as equal in upper_tail_share
TOP_FEATURES = 3
N_ESTIMATORS = 200
SINGLE_GROUP = "all"
OTHER_ROLE = "other"
ANOMALY_RULE_ID = "task_behaviour_anomaly"

PeerMethod = Literal["agent_clusters", "roles", "single"]


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


# ---------------------------------------------------------------------------------------------
# Peer groups


def default_n_groups(n_agents: int) -> int:
    """min(8, agents // 3), at least 1."""
    return max(1, min(8, n_agents // 3))


def _known_agents(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(
        r[0]
        for r in con.execute(
            """SELECT agent_id FROM agent_actions WHERE agent_id IS NOT NULL
               UNION SELECT agent_id FROM tasks WHERE agent_id IS NOT NULL"""
        ).fetchall()
    )


def _roles(agents: list[str], role_pattern: str) -> list[str]:
    pattern = re.compile(role_pattern)
    out = []
    for agent in agents:  # once per agent, not per event
        m = pattern.search(agent)
        out.append(m.group("role") if m and m.group("role") else OTHER_ROLE)
    return out


def _write_groups(con: duckdb.DuckDBPyConnection, table: str, data: dict[str, list]) -> None:
    arrow = pa.table(
        {k: pa.array(v, pa.string() if k != "share" else pa.float64()) for k, v in data.items()}
    )
    con.register("_groups_in", arrow)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _groups_in")  # noqa: S608 - fixed names
    finally:
        con.unregister("_groups_in")


def assign_peer_groups(
    con: duckdb.DuckDBPyConnection,
    method: PeerMethod = "agent_clusters",
    n_groups: int | None = None,
    *,
    seed: int = 7,
    role_pattern: str = AnomalyParams.role_pattern,
) -> dict[str, str]:
    """Rebuild ``agent_peer_groups(agent_id, peer_group, method)``; agent -> peer group.

    ``agent_clusters``: KMeans on each agent's tool shares, ``n_groups`` clusters (default
    :func:`default_n_groups`, capped by the number of distinct profiles), named ``tools-0``,
    ``tools-1``, ... in order of their first agent by id (independent of KMeans' label order); each
    group's mean profile goes to ``peer_group_profiles``. ``roles``: the ``role`` group of
    ``role_pattern`` matched in the agent id (``other`` when it does not match). ``single``: every
    agent in ``all``. Agents come from ``agent_actions`` and ``tasks``.
    """
    if method not in PEER_METHODS:
        raise ValueError(f"unknown peer group method {method!r}")
    agents = _known_agents(con)
    con.execute(
        """CREATE OR REPLACE TABLE agent_peer_groups (agent_id VARCHAR NOT NULL,
               peer_group VARCHAR NOT NULL, method VARCHAR NOT NULL);
           CREATE OR REPLACE TABLE peer_group_profiles (peer_group VARCHAR NOT NULL,
               tool VARCHAR NOT NULL, share DOUBLE NOT NULL)"""
    )
    if method == "single" or not agents:
        labels = [SINGLE_GROUP] * len(agents)
    elif method == "roles":
        labels = _roles(agents, role_pattern)
    else:
        labels = _cluster_by_tools(con, agents, n_groups or default_n_groups(len(agents)), seed)
    _write_groups(
        con,
        "agent_peer_groups",
        {"agent_id": agents, "peer_group": labels, "method": [method] * len(agents)},
    )
    if method == "agent_clusters":
        con.execute(
            """INSERT INTO peer_group_profiles
               WITH shares AS (
                   SELECT agent_id, tool, count(*) / sum(count(*)) OVER (PARTITION BY agent_id) AS share
                   FROM agent_actions WHERE agent_id IS NOT NULL GROUP BY agent_id, tool
               ), sizes AS (SELECT peer_group, count(*) AS n FROM agent_peer_groups GROUP BY 1)
               SELECT g.peer_group, s.tool, sum(s.share) / any_value(z.n) AS share
               FROM shares s JOIN agent_peer_groups g USING (agent_id) JOIN sizes z USING (peer_group)
               GROUP BY g.peer_group, s.tool ORDER BY 1, 2"""
        )
    return dict(zip(agents, labels, strict=True))


def _cluster_by_tools(
    con: duckdb.DuckDBPyConnection, agent_ids: list[str], n_groups: int, seed: int
) -> list[str]:
    agents = np.array(agent_ids, dtype=str)
    shares = con.execute(
        """SELECT agent_id, tool, count(*)::DOUBLE / sum(count(*)) OVER (PARTITION BY agent_id)
                  AS share
           FROM agent_actions WHERE agent_id IS NOT NULL
           GROUP BY agent_id, tool ORDER BY agent_id, tool"""
    ).fetchnumpy()
    tools = np.unique(shares["tool"].astype(str)) if len(shares["tool"]) else np.array([])
    matrix = np.zeros((len(agents), max(1, len(tools))))
    if len(tools):
        rows = np.searchsorted(agents, shares["agent_id"].astype(str))
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


def place_new_agents(
    con: duckdb.DuckDBPyConnection, role_pattern: str = AnomalyParams.role_pattern
) -> int:
    """Give agents seen since the last refit a peer group without refitting; how many were placed.

    With ``agent_clusters`` an agent joins the group whose mean tool profile is nearest (squared
    Euclidean distance, ties by group name); with ``roles`` its role; with ``single`` ``all``.
    """
    _require_peer_groups(con)
    method_row = con.execute("SELECT any_value(method) FROM agent_peer_groups").fetchone()
    known = {r[0] for r in con.execute("SELECT agent_id FROM agent_peer_groups").fetchall()}
    new = [a for a in _known_agents(con) if a not in known]
    if not new or method_row[0] is None:
        return 0
    method = method_row[0]
    if method == "agent_clusters":
        rows = con.execute(
            """WITH shares AS (
                   SELECT agent_id, tool, count(*) / sum(count(*)) OVER (PARTITION BY agent_id) AS share
                   FROM agent_actions WHERE list_contains($new, agent_id) GROUP BY agent_id, tool
               ), a2 AS (SELECT agent_id, sum(share * share) AS n2 FROM shares GROUP BY 1),
               c2 AS (SELECT peer_group, sum(share * share) AS n2 FROM peer_group_profiles GROUP BY 1),
               dot AS (
                   SELECT s.agent_id, p.peer_group, sum(s.share * p.share) AS d
                   FROM shares s JOIN peer_group_profiles p USING (tool) GROUP BY 1, 2
               )
               SELECT n.agent_id, c2.peer_group
               FROM unnest($new) n(agent_id) CROSS JOIN c2
               LEFT JOIN a2 USING (agent_id)
               LEFT JOIN dot ON dot.agent_id = n.agent_id AND dot.peer_group = c2.peer_group
               QUALIFY row_number() OVER (PARTITION BY n.agent_id
                   ORDER BY coalesce(a2.n2, 0) + c2.n2 - 2 * coalesce(dot.d, 0), c2.peer_group) = 1""",
            {"new": new},
        ).fetchall()
        placed = dict(rows)
        labels = [placed.get(a, "tools-0") for a in new]
    elif method == "roles":
        labels = _roles(new, role_pattern)
    else:
        labels = [SINGLE_GROUP] * len(new)
    _write_groups(
        con,
        "agent_peer_groups",
        {"agent_id": new, "peer_group": labels, "method": [method] * len(new)},
    )
    log.info("placed %d new agents in peer groups without refitting", len(new))
    return len(new)


def _require_peer_groups(con: duckdb.DuckDBPyConnection) -> None:
    if not has_table(con, "agent_peer_groups"):
        log.info("no agent_peer_groups table: assigning peer groups with the defaults")
        assign_peer_groups(con)


# ---------------------------------------------------------------------------------------------
# Signals


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _counts(columns: dict[str, np.ndarray], features: list[str] | tuple[str, ...]) -> np.ndarray:
    """Raw count-feature values, one row per task (NULL -> 0, negatives -> 0), as float."""
    raw = np.column_stack(
        [np.nan_to_num(np.asarray(columns[f], dtype=float), nan=0.0) for f in features]
    )
    return np.maximum(raw, 0.0)


def _hour_shares(hours: np.ndarray) -> np.ndarray:
    """Add-one smoothed share of tasks starting in each UTC hour."""
    h = np.asarray(hours, dtype=int)
    counts = np.bincount(h[h >= 0], minlength=24)
    return (counts + 1.0) / (counts.sum() + 24.0)


def _hour_rarity(hours: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """-ln(share of the task's start hour); 0 (never unusual) when the start is unknown (-1)."""
    h = np.asarray(hours, dtype=int)
    return np.where(h >= 0, -np.log(np.asarray(shares)[h % 24]), 0.0)


def _quantiles(values: np.ndarray) -> list[float]:
    """101 quantiles (0..100 %) of a signal over the training tasks (NaN ignored)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return np.quantile(v, np.linspace(0, 1, 101)).tolist() if len(v) else [0.0] * 101


def _percentile(values: np.ndarray, quantiles: list[float]) -> np.ndarray:
    return np.interp(values, np.asarray(quantiles), np.linspace(0, 100, 101))


def upper_tail_share(train_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per value (and column, for 2-D input), the add-one smoothed share of training values at or
    above it: ``(count(train >= value) + 1) / (n + 1)``. ``train_sorted`` is sorted ascending along
    axis 0; NaN values get 1 (nothing unusual)."""
    train = np.asarray(train_sorted, dtype=float)
    vals = np.asarray(values, dtype=float)
    flat = vals.ndim == 1
    if flat:
        train, vals = train[:, None], vals[:, None]
    n = train.shape[0]
    share = np.empty_like(vals)
    # "At or above" with a relative tolerance of 1e-12: the same value summed in another order
    # (Spark's engine, another platform) differs in the last bits and must not leave a tie.
    probe = vals - SHARE_TOLERANCE * np.maximum(np.abs(vals), 1.0)
    for j in range(vals.shape[1]):  # one vectorised search per feature
        at_or_above = n - np.searchsorted(train[:, j], probe[:, j], side="left")
        share[:, j] = (at_or_above + 1.0) / (n + 1.0)
    share[np.isnan(vals)] = 1.0
    return share[:, 0] if flat else share


def tail_score(shares: np.ndarray) -> np.ndarray:
    """Per task, the summed surprise of the features fewer than ``TAIL_P`` of the peers reach:
    sum over features of ``max(0, ln(TAIL_P / share))``."""
    return np.maximum(np.log(TAIL_P / np.asarray(shares)), 0.0).sum(axis=1)


def fuse(shares: dict[str, np.ndarray]) -> np.ndarray:
    """Fused score from each signal's upper-tail share among the training tasks (:data:`SIGNALS`):
    ``sum(-ln share)`` (Fisher's combination). A task far out on one signal scores high, one
    moderately out on several scores higher than on any one alone; typical values add little."""
    return -np.log(np.column_stack([np.asarray(shares[s], dtype=float) for s in SIGNALS])).sum(
        axis=1
    )


def _robust_z(
    x: np.ndarray, log_median: list[float] | np.ndarray, log_scale: list[float] | np.ndarray
) -> np.ndarray:
    return (x - np.asarray(log_median)) / np.asarray(log_scale)


def _top(surprise: np.ndarray, z: np.ndarray, names: list[str]) -> np.ndarray:
    """Per task, the column indexes of the TOP_FEATURES most surprising features (fewest peers at
    or above the value), then largest |z|, then by name."""
    by_name = np.argsort(np.asarray(names, dtype=str), kind="stable")
    key = surprise[:, by_name] * 1e6 + np.abs(z[:, by_name])
    ranked = np.argsort(-key, axis=1, kind="stable")
    return by_name[ranked[:, :TOP_FEATURES]]


def _top_features(
    sig: _Signals, top: np.ndarray, names: list[str], median: list[float]
) -> pa.ListArray:
    rows = np.arange(len(sig.raw))[:, None]
    k = top.shape[1]
    items = pa.StructArray.from_arrays(
        [
            pa.array(np.asarray(names, dtype=object)[top].ravel().tolist(), pa.string()),
            pa.array(sig.raw[rows, top].ravel(), pa.float64()),
            pa.array(np.asarray(median, dtype=float)[top].ravel(), pa.float64()),
            pa.array(sig.z[rows, top].ravel(), pa.float64()),
            pa.array(sig.feature_share[rows, top].ravel(), pa.float64()),
        ],
        names=["feature", "value", "peer_median", "robust_z", "peer_share"],
    )
    return pa.ListArray.from_arrays(
        pa.array(np.arange(0, len(sig.raw) * k + 1, k), pa.int32()), items
    )


@dataclass
class _Signals:
    raw: np.ndarray  # counts, then start_hour_rarity
    z: np.ndarray  # robust z per model feature
    feature_share: np.ndarray  # per model feature, share of training tasks at or above the value
    iforest: np.ndarray
    tail: np.ndarray
    baseline: np.ndarray
    sequence: np.ndarray  # transition rarity + tool rarity (NaN: no sequence score)


def _signals(
    model: dict[str, Any],
    counts: np.ndarray,
    hour_rarity: np.ndarray,
    sequence: np.ndarray,
    tools: np.ndarray,
    log_median: Any,
    log_scale: Any,
) -> _Signals:
    """Every per-task signal from a group model (``{"iforest", "train_sorted"}``)."""
    x = np.column_stack([np.log1p(counts), hour_rarity])
    z = _robust_z(x, log_median, log_scale)
    share = upper_tail_share(model["train_sorted"], x)
    return _Signals(
        raw=np.column_stack([counts, hour_rarity]),
        z=z,
        feature_share=share,
        iforest=-model["iforest"].score_samples(x),
        tail=tail_score(share),
        baseline=np.maximum(z[:, : counts.shape[1]].max(axis=1), 0.0),
        sequence=_sequence_signal(sequence, tools),
    )


def _sequence_signal(transitions: np.ndarray, tools: np.ndarray) -> np.ndarray:
    """The sequence model's signal: mean -ln P of the transitions plus mean -ln P of the tools
    (a missing part counts 0; NaN when the task has neither)."""
    t, u = np.asarray(transitions, dtype=float), np.asarray(tools, dtype=float)
    both_missing = np.isnan(t) & np.isnan(u)
    return np.where(both_missing, np.nan, np.nan_to_num(t) + np.nan_to_num(u))


def _signal_shares(sig: _Signals, signals_sorted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {s: upper_tail_share(signals_sorted[s], getattr(sig, s)) for s in SIGNALS}


def _feature_spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log_median = np.median(x, axis=0)
    deviation = np.abs(x - log_median)
    mad, mean_ad = np.median(deviation, axis=0), deviation.mean(axis=0)
    return log_median, np.maximum(np.where(mad > 0, 1.4826 * mad, 1.2533 * mean_ad), MIN_LOG_SCALE)


def _in_window(started: str = "f.started_at") -> str:
    return f"{started} >= $since AND {started} < $until"


# ---------------------------------------------------------------------------------------------
# Training


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
    _require_peer_groups(con)
    until = _naive_utc(train_until)
    since = until - timedelta(days=window_days)
    window = {"since": since, "until": until}
    sizes = dict(
        con.execute(
            f"""SELECT g.peer_group, count(f.task_id)
                FROM agent_peer_groups g LEFT JOIN task_features f
                    ON f.agent_id = g.agent_id AND {_in_window()}
                GROUP BY 1 ORDER BY 1""",  # noqa: S608 - fixed text
            window,
        ).fetchall()
    )
    trainable = [g for g, n in sizes.items() if n >= min_tasks]
    results: list[ModelInfo] = []
    for group, n in sizes.items():
        if n < min_tasks:
            reason = f"cold start: {n} training tasks < min_tasks {min_tasks}"
            log.info("peer group %s skipped: %s", group, reason)
            results.append(ModelInfo(group, n, skipped=True, reason=reason))
    trained_at = datetime.now(UTC).replace(tzinfo=None)
    run_sql(
        con,
        "sequence_transitions",
        {"train_from": since, "train_until": until, "groups": trainable, "trained_at": trained_at},
    )
    run_sql(con, "sequence_rarity", {"score_from": since, "score_until": until, "top_g": top_g})
    data = con.execute(
        f"""SELECT g.peer_group, f.* REPLACE (coalesce(f.hour_of_day, -1) AS hour_of_day),
                s.rarity_score AS sequence_score, s.tool_rarity_score
            FROM task_features f JOIN agent_peer_groups g USING (agent_id)
            LEFT JOIN _sequence_scores s USING (task_id)
            WHERE {_in_window()} AND list_contains($groups, g.peer_group)
            ORDER BY g.peer_group, f.task_id""",  # noqa: S608 - fixed text
        {**window, "groups": trainable},
    ).fetchnumpy()
    group_col = np.asarray(data["peer_group"], dtype=object)
    params = {
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
    names = [*features, HOUR_FEATURE]
    for group in trainable:
        mask = group_col == group
        counts = _counts({f: np.asarray(data[f])[mask] for f in features}, features)
        hours = np.asarray(data["hour_of_day"])[mask]
        shares = _hour_shares(hours)
        hour_rarity = _hour_rarity(hours, shares)
        x = np.column_stack([np.log1p(counts), hour_rarity])
        forest = IsolationForest(
            n_estimators=N_ESTIMATORS, max_samples="auto", contamination="auto", random_state=seed
        ).fit(x)
        model = {"iforest": forest, "train_sorted": np.sort(x, axis=0)}
        log_median, log_scale = _feature_spread(x)
        sig = _signals(
            model,
            counts,
            hour_rarity,
            np.asarray(data["sequence_score"], dtype=float)[mask],
            np.asarray(data["tool_rarity_score"], dtype=float)[mask],
            log_median,
            log_scale,
        )
        # Each signal's training values, sorted: scoring places new tasks among them.
        model["signals_sorted"] = {
            s: np.sort(v[~np.isnan(v)]) for s in SIGNALS if (v := getattr(sig, s)) is not None
        }
        fused = fuse(_signal_shares(sig, model["signals_sorted"]))
        stats = {s: {"quantiles": _quantiles(getattr(sig, s))} for s in (*SIGNALS, "baseline")}
        stats["fused"] = {"quantiles": _quantiles(fused)}
        stats["hour_shares"] = shares.tolist()
        model_id = f"iforest:{group}"
        version = con.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM anomaly_models WHERE model_id = $m",
            {"m": model_id},
        ).fetchone()[0]
        con.execute(
            """INSERT INTO anomaly_models VALUES ($model_id, $version, $peer_group, $trained_at,
                   $train_from, $train_until, $features, $params, $sklearn_version, $n_train,
                   $median, $log_median, $log_scale, $quantiles, $signal_stats, $model)""",
            {
                "model_id": model_id,
                "version": version,
                "peer_group": group,
                "trained_at": trained_at,
                "train_from": since,
                "train_until": until,
                "features": names,
                "params": json.dumps(params),
                "sklearn_version": sklearn.__version__,
                "n_train": int(mask.sum()),
                "median": np.median(sig.raw, axis=0).tolist(),
                "log_median": log_median.tolist(),
                "log_scale": log_scale.tolist(),
                "quantiles": stats["iforest"]["quantiles"],
                "signal_stats": json.dumps(stats),
                "model": pickle.dumps(model),
            },
        )
        log.info("peer group %s: trained %s v%s on %d tasks", group, model_id, version, mask.sum())
        results.append(ModelInfo(group, int(mask.sum()), model_id=model_id, version=version))
    return sorted(results, key=lambda m: m.peer_group)


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


# ---------------------------------------------------------------------------------------------
# Scoring


MODEL_COLUMNS = (
    "model_id, version, peer_group, features, model, feature_median, feature_log_median, "
    "feature_log_scale, signal_stats"
)


def score_group(model_row: tuple, data: dict[str, np.ndarray]) -> pa.Table:
    """Score one peer group's tasks with its model (a row of MODEL_COLUMNS). ``data`` holds the
    task_features columns (hour_of_day with -1 for unknown) plus sequence_score and
    tool_rarity_score. Shared by the DuckDB engine and the Spark engine (inside mapInArrow)."""
    model_id, version, group, names, blob, median, log_median, log_scale, stats = model_row
    n = len(data["task_id"])
    stats = json.loads(stats) if isinstance(stats, str) else stats
    model = pickle.loads(blob)  # noqa: S301 - the warehouse is trusted storage (module doc)
    features = [f for f in names if f != HOUR_FEATURE]
    counts = _counts({f: np.asarray(data[f]) for f in features}, features)
    hour_rarity = _hour_rarity(np.asarray(data["hour_of_day"]), stats["hour_shares"])
    sig = _signals(
        model,
        counts,
        hour_rarity,
        np.asarray(data["sequence_score"], dtype=float),
        np.asarray(data["tool_rarity_score"], dtype=float),
        log_median,
        log_scale,
    )
    shares = _signal_shares(sig, model["signals_sorted"])
    fused = fuse(shares)
    dominant = np.asarray(SIGNALS, dtype=object)[
        np.argmin(np.column_stack([shares[s] for s in SIGNALS]), axis=1)
    ]
    return pa.table(
        {
            "task_id": pa.array(np.asarray(data["task_id"]).tolist(), pa.string()),
            "peer_group": pa.array([group] * n, pa.string()),
            "model_id": pa.array([model_id] * n, pa.string()),
            "version": pa.array([version] * n, pa.int32()),
            "iforest_score": pa.array(sig.iforest, pa.float64()),
            "iforest_percentile": pa.array(
                _percentile(sig.iforest, stats["iforest"]["quantiles"]), pa.float64()
            ),
            "baseline_score": pa.array(sig.baseline, pa.float64()),
            "fused_score": pa.array(fused, pa.float64()),
            "fused_percentile": pa.array(
                _percentile(fused, stats["fused"]["quantiles"]), pa.float64()
            ),
            "dominant_signal": pa.array(dominant.tolist(), pa.string()),
            "tail_score": pa.array(sig.tail, pa.float64()),
            "top_features": _top_features(
                sig, _top(-np.log(sig.feature_share), sig.z, names), names, median
            ),
        }
    )


def score_tasks(
    con: duckdb.DuckDBPyConnection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    top_g: int = 3,
    role_pattern: str = AnomalyParams.role_pattern,
) -> int:
    """Score the tasks started in [since, until) (unbounded when None) with their group's latest
    models; replaces those tasks' rows in ``task_anomaly_scores`` and returns how many were scored.

    Never fits: new agents are placed in existing groups (:func:`place_new_agents`), and tasks of a
    group without a model (cold start) are not scored.
    """
    run_sql(con, "anomaly_models")
    _require_peer_groups(con)
    place_new_agents(con, role_pattern)
    models = con.execute(
        f"""SELECT {MODEL_COLUMNS} FROM anomaly_models
            QUALIFY row_number() OVER (PARTITION BY peer_group ORDER BY version DESC) = 1
            ORDER BY peer_group"""  # noqa: S608 - fixed column names
    ).fetchall()
    without = sorted(
        {r[0] for r in con.execute("SELECT DISTINCT peer_group FROM agent_peer_groups").fetchall()}
        - {m[2] for m in models}
    )
    if without:
        log.info("peer groups without a model (cold start), not scored: %s", ", ".join(without))
    if not models:
        return 0
    bounds = {
        "since": _naive_utc(since) if since else None,
        "until": _naive_utc(until) if until else None,
    }
    run_sql(
        con,
        "sequence_rarity",
        {"score_from": bounds["since"], "score_until": bounds["until"], "top_g": top_g},
    )
    data = con.execute(
        """SELECT g.peer_group, f.* REPLACE (coalesce(f.hour_of_day, -1) AS hour_of_day),
                s.rarity_score AS sequence_score, s.tool_rarity_score
           FROM task_features f JOIN agent_peer_groups g USING (agent_id)
           LEFT JOIN _sequence_scores s USING (task_id)
           WHERE ($since::TIMESTAMP IS NULL OR f.started_at >= $since::TIMESTAMP)
             AND ($until::TIMESTAMP IS NULL OR f.started_at < $until::TIMESTAMP)
             AND list_contains($groups, g.peer_group)
           ORDER BY g.peer_group, f.task_id""",
        {**bounds, "groups": [m[2] for m in models]},
    ).fetchnumpy()
    group_col = np.asarray(data["peer_group"], dtype=object)
    parts: list[pa.Table] = []
    for model in models:
        mask = group_col == model[2]
        if mask.any():
            parts.append(score_group(model, {k: np.asarray(v)[mask] for k, v in data.items()}))
    if not parts:
        return 0
    scored = pa.concat_tables(parts)
    con.register("_anomaly_scores_in", scored)
    try:
        con.begin()
        con.execute(
            "DELETE FROM task_anomaly_scores "
            "WHERE task_id IN (SELECT task_id FROM _anomaly_scores_in)"
        )
        con.execute(
            """INSERT INTO task_anomaly_scores BY NAME
               SELECT i.*, f.agent_id, f.started_at, t.ended_at,
                   s.rarity_score AS sequence_score, s.tool_rarity_score, s.class_rarity_score AS class_sequence_score,
                   coalesce(s.rare_transitions, []) AS rare_transitions, $scored_at AS scored_at
               FROM _anomaly_scores_in i JOIN task_features f USING (task_id)
               LEFT JOIN tasks t USING (task_id)
               LEFT JOIN _sequence_scores s USING (task_id)
               ORDER BY i.task_id""",
            {"scored_at": datetime.now(UTC).replace(tzinfo=None)},
        )
        con.commit()
    except Exception:
        con.rollback()
        raise
    finally:
        con.unregister("_anomaly_scores_in")
    return scored.num_rows


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
