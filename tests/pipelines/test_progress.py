"""`chainwatch run` draws a progress bar of each job's steps from the Dagster run's events."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.run import run_landing
from tests.conftest import sample_landing


@pytest.mark.slow
def test_run_draws_a_step_bar_per_job(tmp_path: Path, capfd):
    landing = sample_landing(tmp_path / "landing", days=("2026-11-01",))
    outcome = run_landing(landing, tmp_path / "wh.duckdb", refit="auto", progress=True)
    assert outcome.success
    err = capfd.readouterr().err
    assert "chainwatch_ingest" in err and "chainwatch_refit" in err and "chainwatch_score" in err
    assert "step/s" in err and "4/4" in err  # the score job ran all four of its steps


def test_no_bar_without_progress(tmp_path: Path, capfd):
    outcome = run_landing(
        sample_landing(tmp_path / "landing", days=("2026-11-01",)), tmp_path / "wh.duckdb"
    )
    assert outcome.success
    assert "step/s" not in capfd.readouterr().err
