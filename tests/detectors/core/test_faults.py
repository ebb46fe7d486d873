"""Crash safety: a run killed with SIGKILL at any of the fault points, then run again, leaves every
table as a clean run does; the analyst database is the old snapshot or the new, never a mix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from detectors.core.faults import CRASH_ENV
from tests.conftest import sample_landing

# Per table, the columns a rerun must reproduce exactly (run times and run ids left out).
STABLE = {
    "agent_actions": "event_id, ts, agent_id, task_id, task_source, tool, system, action_class, "
    "destination, outcome, credential_id, source_file, source_line",
    "credential_events": "event_id, ts, event_type, credential_id, agent_id, task_id, ttl_s, "
    "expires_at, source_file, source_line",
    "task_events": "event_id, ts, event_type, task_id, status",
    "tasks": "task_id, agent_id, started_at, ended_at, status, actions, credentials_issued",
    "rejected_events": "event_id, source_file, source_line, reason",
    "credential_lifecycles": "credential_id, task_id, issued_at, validity_end, ended_by, uses, "
    "uses_after_task_end",
    "task_features": "task_id, actions, reads, external_egress, new_tools, repeat_external_sends",
    "findings": "finding_id, rule_id, severity, risk_score, priority, status, entity_id, "
    "evidence_event_ids, detail",
    "anomaly_models": "model_id, version, peer_group, n_train, features",
    "task_anomaly_scores": "task_id, peer_group, version, round(fused_score, 9), "
    "round(fused_percentile, 9)",
    "recommendations": "agent_id, category, item, access, recommendation",
}
# ingest_files logs every attempt: a rerun adds a row that counts the already-loaded records as
# duplicates. What must match is what each file contributed.
LEDGER = "SELECT source_file, sum(loaded), sum(rejected) FROM ingest_files GROUP BY 1 ORDER BY 1"


def _state(db: Path) -> dict[str, object]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        state = {
            table: con.execute(
                f"SELECT count(*), coalesce(sum(hash({cols})), 0) FROM {table}"
            ).fetchone()
            for table, cols in STABLE.items()
        }
        state["ledger"] = con.execute(LEDGER).fetchall()
        return state
    finally:
        con.close()


def _run(landing: Path, db: Path, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "chainwatch.cli", "run", "--landing", str(landing), "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict]:
    """The sample landing folder and the state of an uninterrupted run over it."""
    root = tmp_path_factory.mktemp("crash")
    landing = sample_landing(root / "landing")
    db = root / "clean" / "w.duckdb"
    assert _run(landing, db).returncode == 0
    return landing, _state(db)


@pytest.mark.slow
@pytest.mark.parametrize(
    "point",
    ["ingest.in_transaction", "ingest.after_batch", "refit.in_transaction", "detect.in_merge"],
)
def test_a_killed_run_then_a_rerun_equals_a_clean_run(clean, tmp_path: Path, point: str):
    landing, expected = clean
    db = tmp_path / "w.duckdb"
    killed = _run(landing, db, crash_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    rerun = _run(landing, db)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert _state(db) == expected


@pytest.mark.slow
def test_a_kill_before_the_swap_keeps_the_old_analyst_database(clean, tmp_path: Path):
    landing, expected = clean
    db = tmp_path / "w.duckdb"
    assert _run(landing, db).returncode == 0
    published = tmp_path / "chainwatch_published.duckdb"
    con = duckdb.connect(str(published), read_only=True)
    before = con.execute("SELECT published_at, table_rows FROM published_info").fetchone()
    con.close()

    killed = _run(landing, db, crash_at="publish.before_swap")
    assert killed.returncode == -signal.SIGKILL
    con = duckdb.connect(str(published), read_only=True)  # whole, and still the old snapshot
    assert con.execute("SELECT published_at, table_rows FROM published_info").fetchone() == before
    assert con.execute("SELECT count(*) FROM findings_open").fetchone()[0] >= 0
    con.close()

    assert _run(landing, db).returncode == 0  # the next run publishes and cleans up
    con = duckdb.connect(str(published), read_only=True)
    assert con.execute("SELECT published_at FROM published_info").fetchone()[0] > before[0]
    con.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".building")] == []
    assert _state(db) == expected
