"""Findings: anomaly hits merged beside rule hits, ranking by task risk, and triage decisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path

import duckdb
import yaml

from detectors.anomaly.common import ANOMALY_RULE_ID
from detectors.core.settings import AnomalyParams
from detectors.core.sqlfiles import run_sql
from detectors.core.warehouse import has_table
from detectors.rules.engine import (
    RuleError,
    RuleMeta,
    Suppression,
    check_frameworks,
    merge_hits,
    start_hits,
)

# The rules that judge where an action's arguments came from; a task their evidence clears (every
# critical argument from the user, a trusted tool or history) ranks its other findings lower.
CONTENT_RULES = ("untrusted_instruction_action", "egress_untrusted_destination")
CLEARED_PRIORITY_FACTOR = 0.6

ANOMALY_META_PATH = Path(__file__).resolve().parents[1] / "anomaly" / "anomaly.yaml"


@cache
def anomaly_meta(path: Path = ANOMALY_META_PATH) -> RuleMeta:
    """The anomaly findings' metadata (detectors/anomaly/anomaly.yaml)."""
    meta = yaml.safe_load(path.read_text())
    for key in ("id", "title", "entity", "confidence", "risk_score", "analytic_type", "frameworks"):
        if key not in meta:
            raise RuleError(f"{path}: missing required field '{key}'")
    if meta["id"] != ANOMALY_RULE_ID:
        raise RuleError(f"{path}: id must be {ANOMALY_RULE_ID!r}")
    check_frameworks(path, meta["frameworks"])
    return RuleMeta(
        meta["id"],
        meta["title"],
        "medium",
        int(meta["risk_score"]),
        meta["confidence"],
        meta["analytic_type"],
        meta["entity"],
        meta["frameworks"],
    )


def flag_anomalies(
    con: duckdb.DuckDBPyConnection,
    params: AnomalyParams,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    suppressions: Sequence[Suppression] = (),
    now: datetime | None = None,
) -> int:
    """Merge tasks scored at or above the alert percentile into `findings`; the number of hits.

    Reads ``task_anomaly_scores`` (run :func:`detectors.anomaly.score.score_tasks` first); finding ids
    are stable (rule + task + day) and triage is kept, as for rules.
    """
    run_sql(con, "anomaly_models")
    start_hits(con)
    run_sql(
        con,
        "anomaly_hits",
        {
            "rule_id": ANOMALY_RULE_ID,
            "alert_percentile": params.alert_percentile,
            "since": since,
            "until": until,
        },
    )
    hits = con.execute("SELECT count(*) FROM rule_hits").fetchone()[0]
    merge_hits(con, [anomaly_meta()], suppressions=suppressions, now=now)
    return hits


def rank_findings(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild ``task_risk`` and every finding's ``anomaly_percentile`` and ``priority``
    (sql/task_risk.sql); returns the rows of ``task_risk``."""
    run_sql(con, "anomaly_models")
    if not has_table(con, "argument_provenance"):  # a warehouse derived before provenance existed
        run_sql(con, "argument_provenance")
    con.begin()
    try:
        run_sql(
            con,
            "task_risk",
            {
                "anomaly_rule": ANOMALY_RULE_ID,
                "content_rules": list(CONTENT_RULES),
                "cleared_factor": CLEARED_PRIORITY_FACTOR,
            },
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return con.execute("SELECT count(*) FROM task_risk").fetchone()[0]


def set_triage(
    con: duckdb.DuckDBPyConnection, finding_id: str, status: str, note: str | None = None
) -> bool:
    """Record a person's triage decision; reruns never overwrite it. False if no such finding."""
    if status not in ("new", "in_progress", "resolved"):
        raise ValueError(f"triage status must be new, in_progress or resolved, got {status!r}")
    triage = None if status == "new" else status
    updated = con.execute(
        """UPDATE findings SET triage_status = ?, triage_note = coalesce(?, triage_note),
               status = coalesce(?, CASE WHEN suppression IS NOT NULL THEN 'suppressed' ELSE 'new' END)
           WHERE finding_id = ? RETURNING finding_id""",
        [triage, note, triage, finding_id],
    ).fetchall()
    return bool(updated)
