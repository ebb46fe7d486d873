"""Scoring: tasks scored with their peer group's latest models; never fits anything.

:func:`score_tasks` places agents seen since the refit in existing groups, scores each group's
tasks with :func:`score_group` (shared with the Spark engine) and replaces their rows in
``task_anomaly_scores``. A group without a model (cold start) is not scored.
"""

from __future__ import annotations

import json
import logging
import pickle
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from detectors.anomaly.common import naive_utc
from detectors.anomaly.peers import place_new_agents, require_peer_groups
from detectors.anomaly.signals import (
    HOUR_FEATURE,
    SIGNALS,
    feature_counts,
    fuse,
    hour_rarity,
    percentile_in,
    signal_shares,
    task_signals,
    top_features,
    top_indexes,
)
from detectors.core.settings import AnomalyParams
from detectors.core.sqlfiles import run_sql

log = logging.getLogger(__name__)

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
    model = pickle.loads(blob)  # noqa: S301 - the warehouse is trusted storage (package doc)
    features = [f for f in names if f != HOUR_FEATURE]
    counts = feature_counts({f: np.asarray(data[f]) for f in features}, features)
    rarity = hour_rarity(np.asarray(data["hour_of_day"]), stats["hour_shares"])
    sig = task_signals(
        model,
        counts,
        rarity,
        np.asarray(data["sequence_score"], dtype=float),
        np.asarray(data["tool_rarity_score"], dtype=float),
        log_median,
        log_scale,
    )
    shares = signal_shares(sig, model["signals_sorted"])
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
                percentile_in(sig.iforest, stats["iforest"]["quantiles"]), pa.float64()
            ),
            "baseline_score": pa.array(sig.baseline, pa.float64()),
            "fused_score": pa.array(fused, pa.float64()),
            "fused_percentile": pa.array(
                percentile_in(fused, stats["fused"]["quantiles"]), pa.float64()
            ),
            "dominant_signal": pa.array(dominant.tolist(), pa.string()),
            "tail_score": pa.array(sig.tail, pa.float64()),
            "top_features": top_features(
                sig, top_indexes(-np.log(sig.feature_share), sig.z, names), names, median
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
    require_peer_groups(con)
    place_new_agents(con, role_pattern)
    models = _latest_models(con)
    if not models:
        return 0
    bounds = {
        "since": naive_utc(since) if since else None,
        "until": naive_utc(until) if until else None,
    }
    data = _scoring_data(con, bounds, [m[2] for m in models], top_g)
    group_col = np.asarray(data["peer_group"], dtype=object)
    parts: list[pa.Table] = []
    for model in models:
        mask = group_col == model[2]
        if mask.any():
            parts.append(score_group(model, {k: np.asarray(v)[mask] for k, v in data.items()}))
    if not parts:
        return 0
    scored = pa.concat_tables(parts)
    _replace_scores(con, scored)
    return scored.num_rows


def _latest_models(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Each peer group's latest model as a MODEL_COLUMNS row; groups without one are logged."""
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
    return models


def _scoring_data(
    con: duckdb.DuckDBPyConnection, bounds: dict, groups: list[str], top_g: int
) -> dict[str, np.ndarray]:
    """The features and sequence scores of the ``groups``' tasks started within ``bounds``
    (``_sequence_scores`` rebuilt for them), ordered by group and task."""
    run_sql(
        con,
        "sequence_rarity",
        {"score_from": bounds["since"], "score_until": bounds["until"], "top_g": top_g},
    )
    return con.execute(
        """SELECT g.peer_group, f.* REPLACE (coalesce(f.hour_of_day, -1) AS hour_of_day),
                s.rarity_score AS sequence_score, s.tool_rarity_score
           FROM task_features f JOIN agent_peer_groups g USING (agent_id)
           LEFT JOIN _sequence_scores s USING (task_id)
           WHERE ($since::TIMESTAMP IS NULL OR f.started_at >= $since::TIMESTAMP)
             AND ($until::TIMESTAMP IS NULL OR f.started_at < $until::TIMESTAMP)
             AND list_contains($groups, g.peer_group)
           ORDER BY g.peer_group, f.task_id""",
        {**bounds, "groups": groups},
    ).fetchnumpy()


def _replace_scores(con: duckdb.DuckDBPyConnection, scored: pa.Table) -> None:
    """Replace the scored tasks' rows of ``task_anomaly_scores`` in one transaction."""
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
