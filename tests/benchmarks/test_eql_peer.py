"""The EQL peer benchmark runs on a few thousand actions: both engines find the same tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("eql", reason="the EQL peer benchmark needs the `eql` package (dev extras)")

from benchmarks.eql_peer import compare, eql_query  # noqa: E402


@pytest.mark.parametrize(("within", "window_s"), [(None, 1800), ("10m", 600)])
def test_both_engines_match_the_same_tasks(tmp_path: Path, within: str | None, window_s: int):
    # compare() raises if the two sets of matching tasks differ or disagree with the planted
    # scenarios (every 'within' task matches, no 'beyond', 'wrong_order', 'across'... task does).
    result = compare(4000, seed=3, workdir=tmp_path, within=within)
    assert result["events"] == 4000 and result["tasks"] == 400
    assert result["window_seconds"] == window_s
    assert 0 < result["matches_planted"] <= result["matches"] < result["tasks"]
    assert result["matches_random"] > 0  # the random tasks decide some cases on their own
    assert result["eql_sequences"] >= result["matches"]
    assert result["chainwatch_hit_rows"] >= result["matches"]
    for key in ("eql_seconds", "chainwatch_seconds", "eql_load_seconds", "export_seconds"):
        assert result[key] > 0, key
    assert result["ratio"] > 0 and result["peak_rss_mb"] > 0


def test_eql_query_uses_the_rule_window_in_seconds():
    assert eql_query(600) == (
        'sequence by task_id with maxspan=600s [read where sensitivity == "high"]'
        " [egress where external == true]"
    )
