"""Per-task signals of a peer group's model, shared by training and scoring.

From a task's count features and start hour: the robust z of each feature, its upper-tail share
among the group's training tasks, the Isolation Forest's score, the tail and baseline signals and
the sequence signal; then their fusion (:func:`fuse`) and the features that explain a score
(:func:`top_features`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

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
    "untrusted_arguments",
    "untrusted_argument_share",
)
HOUR_FEATURE = "start_hour_rarity"
# Fused signals; "baseline" (robust z) is the comparator the evaluation reports beside them.
SIGNALS: tuple[str, ...] = ("iforest", "tail", "sequence")
TAIL_P = 0.05  # a feature adds to the tail signal once fewer than 5 % of the peers reach its value
MIN_LOG_SCALE = 0.1
SHARE_TOLERANCE = 1e-12  # relative: values this close count as equal in upper_tail_share
TOP_FEATURES = 3


@dataclass
class Signals:
    """Every per-task signal of one peer group's tasks, one row per task."""

    raw: np.ndarray  # counts, then start_hour_rarity
    z: np.ndarray  # robust z per model feature
    feature_share: np.ndarray  # per model feature, share of training tasks at or above the value
    iforest: np.ndarray
    tail: np.ndarray
    baseline: np.ndarray
    sequence: np.ndarray  # transition rarity + tool rarity (NaN: no sequence score)


def feature_counts(
    columns: dict[str, np.ndarray], features: list[str] | tuple[str, ...]
) -> np.ndarray:
    """Raw count-feature values, one row per task (NULL -> 0, negatives -> 0), as float."""
    raw = np.column_stack(
        [np.nan_to_num(np.asarray(columns[f], dtype=float), nan=0.0) for f in features]
    )
    return np.maximum(raw, 0.0)


def hour_shares(hours: np.ndarray) -> np.ndarray:
    """Add-one smoothed share of tasks starting in each UTC hour."""
    h = np.asarray(hours, dtype=int)
    counts = np.bincount(h[h >= 0], minlength=24)
    return (counts + 1.0) / (counts.sum() + 24.0)


def hour_rarity(hours: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """-ln(share of the task's start hour); 0 (never unusual) when the start is unknown (-1)."""
    h = np.asarray(hours, dtype=int)
    return np.where(h >= 0, -np.log(np.asarray(shares)[h % 24]), 0.0)


def quantiles_of(values: np.ndarray) -> list[float]:
    """101 quantiles (0..100 %) of a signal over the training tasks (NaN ignored)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return np.quantile(v, np.linspace(0, 1, 101)).tolist() if len(v) else [0.0] * 101


def percentile_in(values: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Each value's percentile (0..100) among the 101 ``quantiles`` of :func:`quantiles_of`."""
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


def robust_z(
    x: np.ndarray, log_median: list[float] | np.ndarray, log_scale: list[float] | np.ndarray
) -> np.ndarray:
    """``(x - log_median) / log_scale`` per feature column."""
    return (x - np.asarray(log_median)) / np.asarray(log_scale)


def top_indexes(surprise: np.ndarray, z: np.ndarray, names: list[str]) -> np.ndarray:
    """Per task, the column indexes of the TOP_FEATURES most surprising features (fewest peers at
    or above the value), then largest |z|, then by name."""
    by_name = np.argsort(np.asarray(names, dtype=str), kind="stable")
    key = surprise[:, by_name] * 1e6 + np.abs(z[:, by_name])
    ranked = np.argsort(-key, axis=1, kind="stable")
    return by_name[ranked[:, :TOP_FEATURES]]


def top_features(
    sig: Signals, top: np.ndarray, names: list[str], median: list[float]
) -> pa.ListArray:
    """``top_features`` of ``task_anomaly_scores``: per task, the features at ``top`` (see
    :func:`top_indexes`) with the task's value, the peer median, robust z and peer share."""
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


def task_signals(
    model: dict[str, Any],
    counts: np.ndarray,
    hour_rarity: np.ndarray,
    sequence: np.ndarray,
    tools: np.ndarray,
    log_median: Any,
    log_scale: Any,
) -> Signals:
    """Every per-task signal from a group model (``{"iforest", "train_sorted"}``)."""
    x = np.column_stack([np.log1p(counts), hour_rarity])
    z = robust_z(x, log_median, log_scale)
    share = upper_tail_share(model["train_sorted"], x)
    return Signals(
        raw=np.column_stack([counts, hour_rarity]),
        z=z,
        feature_share=share,
        iforest=-model["iforest"].score_samples(x),
        tail=tail_score(share),
        baseline=np.maximum(z[:, : counts.shape[1]].max(axis=1), 0.0),
        sequence=sequence_signal(sequence, tools),
    )


def sequence_signal(transitions: np.ndarray, tools: np.ndarray) -> np.ndarray:
    """The sequence model's signal: mean -ln P of the transitions plus mean -ln P of the tools
    (a missing part counts 0; NaN when the task has neither)."""
    t, u = np.asarray(transitions, dtype=float), np.asarray(tools, dtype=float)
    both_missing = np.isnan(t) & np.isnan(u)
    return np.where(both_missing, np.nan, np.nan_to_num(t) + np.nan_to_num(u))


def signal_shares(sig: Signals, signals_sorted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per fused signal, each task's upper-tail share among the training tasks' values."""
    return {s: upper_tail_share(signals_sorted[s], getattr(sig, s)) for s in SIGNALS}


def feature_spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per model feature, the training tasks' median and robust scale (see the package doc)."""
    log_median = np.median(x, axis=0)
    deviation = np.abs(x - log_median)
    mad, mean_ad = np.median(deviation, axis=0), deviation.mean(axis=0)
    return log_median, np.maximum(np.where(mad > 0, 1.4826 * mad, 1.2533 * mean_ad), MIN_LOG_SCALE)
