"""One detection run: rebuild derived tables, run every rule, merge findings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from detectors.derive import build_derived_tables
from detectors.rules.engine import RULES_DIR, Rule, detect, load_rules, load_suppressions
from detectors.settings import Settings


@dataclass
class DetectionReport:
    """Rows of the derived tables, hits per rule, and the findings table's size afterwards."""

    derived: dict[str, int]
    hits: dict[str, int]
    findings: int


def run_detection(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    rules: list[Rule] | None = None,
    now: datetime | None = None,
) -> DetectionReport:
    """Detect over everything loaded; findings keep their ids and triage across reruns."""
    derived = build_derived_tables(con)
    rules = rules if rules is not None else load_rules(RULES_DIR, settings.rule_parameters)
    hits = detect(con, rules, suppressions=load_suppressions(settings.suppressions_path), now=now)
    total = con.execute("SELECT count(*) FROM findings").fetchone()[0]
    return DetectionReport(derived, hits, total)


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
