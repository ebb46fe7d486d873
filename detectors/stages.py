"""The detection stages, declared once, in the order they run.

derive → rules → score → flag → rank → recommend → export → publish

`chainwatch detect` runs :data:`DETECTION_STAGES` through :func:`run_stages`; the Dagster assets
(pipelines/) call the same stage functions, each asset tagged with its stage, and a test checks
that the asset graph never runs a stage before one listed earlier; the Spark engine
(detectors/spark/engine.py) walks :data:`STAGE_NAMES` too and names the stages it leaves to
DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import duckdb

from detectors.analyst.recommend import build_recommendations
from detectors.anomaly.score import score_tasks
from detectors.core.settings import Settings
from detectors.derive.tables import build_derived_tables
from detectors.findings.exports import (
    export_findings_ocsf,
    export_findings_parquet,
    product_version,
)
from detectors.findings.merge import flag_anomalies, rank_findings
from detectors.findings.snapshot import PublishReport, publish_with_settings
from detectors.rules.engine import (
    RULES_DIR,
    Rule,
    Suppression,
    detect,
    load_rules,
    load_suppressions,
)


@dataclass
class StageContext:
    """What every stage may need: settings resolved once, the rules, the time window."""

    settings: Settings
    rules_given: list[Rule] | None = None
    now: datetime | None = None
    since: datetime | None = None  # scoring and flagging: tasks started in [since, until)
    until: datetime | None = None

    @cached_property
    def rules(self) -> list[Rule]:
        """The rules given, else every shipped rule with the settings' parameter overrides."""
        if self.rules_given is not None:
            return self.rules_given
        return load_rules(RULES_DIR, self.settings.rule_parameters)

    @cached_property
    def suppressions(self) -> list[Suppression]:
        """The allowlist entries of the settings' suppressions file."""
        return load_suppressions(self.settings.suppressions_path)


@dataclass
class DetectionReport:
    """Rows of the derived tables, hits per rule, and the findings table's size afterwards."""

    derived: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    findings: int = 0
    anomaly_scored: int = 0
    anomaly_hits: int = 0
    ranked_tasks: int = 0
    notes: list[str] = field(default_factory=list)
    exported: dict[str, int] = field(default_factory=dict)
    exported_files: list[Path] = field(default_factory=list)
    published: PublishReport | None = None


def derive(con: duckdb.DuckDBPyConnection, ctx: StageContext, report: DetectionReport) -> None:
    """Rebuild the derived tables (sequences, lifecycles, features) from the canonical tables."""
    report.derived.update(build_derived_tables(con))


def rules(
    con: duckdb.DuckDBPyConnection,
    ctx: StageContext,
    report: DetectionReport,
    *,
    entities: tuple[str, ...] | None = None,
) -> None:
    """Run the rules (only those of `entities` when given) and merge their hits into findings."""
    chosen = [r for r in ctx.rules if entities is None or r.entity in entities]
    report.hits.update(detect(con, chosen, suppressions=ctx.suppressions, now=ctx.now))


def score(con: duckdb.DuckDBPyConnection, ctx: StageContext, report: DetectionReport) -> None:
    """Score tasks with the stored anomaly models; never refits (a cold start scores nothing)."""
    params = ctx.settings.anomaly
    report.anomaly_scored = score_tasks(
        con, since=ctx.since, until=ctx.until, top_g=params.top_g, role_pattern=params.role_pattern
    )


def flag(con: duckdb.DuckDBPyConnection, ctx: StageContext, report: DetectionReport) -> None:
    """Merge tasks scored at or above the alert percentile into findings."""
    # Over everything loaded (no window), nothing scored means no model yet; a daily partition
    # still merges (no hits), as it always has.
    if not report.anomaly_scored and ctx.since is None:
        report.notes.append("no anomaly model yet (cold start): run `chainwatch refit`")
        return
    report.anomaly_hits = flag_anomalies(
        con,
        ctx.settings.anomaly,
        since=ctx.since,
        until=ctx.until,
        suppressions=ctx.suppressions,
        now=ctx.now,
    )


def rank(con: duckdb.DuckDBPyConnection, ctx: StageContext, report: DetectionReport) -> None:
    """Rebuild task_risk and every finding's priority."""
    report.ranked_tasks = rank_findings(con)
    report.findings = con.execute("SELECT count(*) FROM findings").fetchone()[0]


def recommend(con: duckdb.DuckDBPyConnection, ctx: StageContext, report: DetectionReport) -> None:
    """Least-privilege recommendations per agent."""
    report.derived["recommendations"] = build_recommendations(con)


def export(con: duckdb.DuckDBPyConnection, ctx: StageContext, report: DetectionReport) -> None:
    """Write findings as Parquet by day and as OCSF JSON lines under the settings' findings path."""
    out = ctx.settings.findings_path
    report.exported_files = export_findings_parquet(con, out / "parquet")
    report.exported["parquet_files"] = len(report.exported_files)
    report.exported["ocsf_rows"] = export_findings_ocsf(
        con, out / "findings.ocsf.jsonl", product_version=product_version()
    )


def publish(con: duckdb.DuckDBPyConnection, ctx: StageContext, report: DetectionReport) -> None:
    """Build the analyst database beside the warehouse and swap it in atomically."""
    report.published = publish_with_settings(con, ctx.settings)


StageFunction = Callable[[duckdb.DuckDBPyConnection, StageContext, DetectionReport], None]

STAGES: dict[str, StageFunction] = {
    "derive": derive,
    "rules": rules,
    "score": score,
    "flag": flag,
    "rank": rank,
    "recommend": recommend,
    "export": export,
    "publish": publish,
}
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)
# `chainwatch detect`: everything up to the findings table; `run` and `triage` also publish.
DETECTION_STAGES = STAGE_NAMES[: STAGE_NAMES.index("recommend") + 1]
PUBLICATION_STAGES = STAGE_NAMES[STAGE_NAMES.index("export") :]


def run_stages(
    con: duckdb.DuckDBPyConnection,
    ctx: StageContext,
    names: tuple[str, ...] = STAGE_NAMES,
    report: DetectionReport | None = None,
) -> DetectionReport:
    """Run the named stages in the order of :data:`STAGE_NAMES`."""
    unknown = set(names) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; stages are {STAGE_NAMES}")
    report = report if report is not None else DetectionReport()
    for name in STAGE_NAMES:
        if name in names:
            STAGES[name](con, ctx, report)
    return report


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
    ctx = StageContext(settings, rules_given=rules, now=now)
    return run_stages(con, ctx, DETECTION_STAGES)


def export_and_publish(con: duckdb.DuckDBPyConnection, settings: Settings) -> DetectionReport:
    """Refresh the findings exports and the analyst database (after a triage, say)."""
    return run_stages(con, StageContext(settings), PUBLICATION_STAGES)
