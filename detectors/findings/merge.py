"""One detection run: rebuild derived tables, run every rule, score anomalies, merge findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

import duckdb
import yaml

from detectors.analyst.recommend import build_recommendations
from detectors.anomaly.models import ANOMALY_RULE_ID, score_tasks
from detectors.core.settings import AnomalyParams, Settings
from detectors.core.sqlfiles import run_sql
from detectors.derive.tables import build_derived_tables
from detectors.rules.engine import (
    RULES_DIR,
    Rule,
    RuleError,
    RuleMeta,
    Suppression,
    check_frameworks,
    detect,
    load_rules,
    load_suppressions,
    merge_hits,
    start_hits,
)

ANOMALY_META_PATH = Path(__file__).resolve().parents[1] / "anomaly" / "anomaly.yaml"


@dataclass
class DetectionReport:
    """Rows of the derived tables, hits per rule, and the findings table's size afterwards."""

    derived: dict[str, int]
    hits: dict[str, int]
    findings: int
    anomaly_scored: int = 0
    anomaly_hits: int = 0
    notes: list[str] = field(default_factory=list)


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
    suppressions: list[Suppression] = (),
    now: datetime | None = None,
) -> int:
    """Merge tasks scored at or above the alert percentile into `findings`; the number of hits.

    Reads ``task_anomaly_scores`` (run :func:`detectors.anomaly.models.score_tasks` first); finding ids
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
    con.begin()
    try:
        run_sql(con, "task_risk", {"anomaly_rule": ANOMALY_RULE_ID})
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return con.execute("SELECT count(*) FROM task_risk").fetchone()[0]


def run_detection(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    rules: list[Rule] | None = None,
    now: datetime | None = None,
) -> DetectionReport:
    """Detect over everything loaded; findings keep their ids and triage across reruns.

    Anomaly scoring uses the stored models and never refits (``chainwatch refit`` does); with no
    model yet nothing is scored or flagged, and the report says so.
    """
    derived = build_derived_tables(con)
    rules = rules if rules is not None else load_rules(RULES_DIR, settings.rule_parameters)
    suppressions = load_suppressions(settings.suppressions_path)
    hits = detect(con, rules, suppressions=suppressions, now=now)
    params = settings.anomaly
    report = DetectionReport(derived, hits, 0)
    report.anomaly_scored = score_tasks(con, top_g=params.top_g, role_pattern=params.role_pattern)
    if report.anomaly_scored:
        report.anomaly_hits = flag_anomalies(con, params, suppressions=suppressions, now=now)
    else:
        report.notes.append("no anomaly model yet (cold start): run `chainwatch refit`")
    rank_findings(con)
    report.derived["recommendations"] = build_recommendations(con)
    report.findings = con.execute("SELECT count(*) FROM findings").fetchone()[0]
    return report


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
