"""The benchmark harness runs end to end on a few thousand actions, so it never rots."""

from __future__ import annotations

from pathlib import Path

from benchmarks.pipeline import bench, content_capture, markdown, parse_floor


def test_bench_smoke_runs_every_stage_and_reports(tmp_path: Path):
    result = bench(3000, tmp_path)
    names = [s.name for s in result.stages]
    assert names == [
        "ingest",
        "credential_lifecycles",
        "task_sequences",
        "argument_provenance",
        "task_features",
        "recommendations",
        "rules",
        "models_refit",
        "models_score",
        "publish",
    ]
    assert all(s.seconds > 0 and s.peak_rss > 0 for s in result.stages)
    assert result.records > 0 and result.floor_seconds > 0 and result.input_bytes > 0
    assert (tmp_path / "wh" / "chainwatch_published.duckdb").exists()
    text = markdown(result)
    assert "| **end to end** |" in text and "parse floor" in text and "×" in text


def test_parse_floor_counts_lines_and_cloudtrail_records(tmp_path: Path):
    (tmp_path / "otlp").mkdir()
    (tmp_path / "cloudtrail").mkdir()
    (tmp_path / "otlp" / "a.jsonl").write_text('{"a": 1}\n{"b": 2}\n')
    (tmp_path / "cloudtrail" / "c.json").write_text('{"Records": [{"x": 1}, {"x": 2}, {"x": 3}]}')
    seconds, records = parse_floor(
        [tmp_path / "otlp" / "a.jsonl", tmp_path / "cloudtrail" / "c.json"]
    )
    assert records == 5 and seconds >= 0


def test_incremental_daily_run_ingests_only_the_new_day(tmp_path: Path):
    from benchmarks.pipeline import incremental

    result = incremental(2, 1500, tmp_path)
    names = [s.name for s in result.stages]
    assert "models_refit" not in names and names[0] == "ingest" and names[-1] == "publish"
    ingest = result.stages[0]
    assert 0 < ingest.rows < 3 * 1500  # one day's records, not the history's


def test_content_capture_row_compares_the_same_traces_with_and_without_content(tmp_path: Path):
    text = content_capture(12, tmp_path, repeats=1)
    rows = [line for line in text.splitlines() if line.startswith("| with")]
    assert [r.split(" | ")[0] for r in rows] == ["| without content", "| with content"]
    spans = [r.split(" | ")[2] for r in rows]
    assert spans[0] == spans[1] and int(spans[0].replace(",", "")) > 0  # the same traces
    entities = [int(r.split(" | ")[6].strip(" |").replace(",", "")) for r in rows]
    assert 0 < entities[0] < entities[1]  # arguments only, then arguments and content
    assert "Target: with content ≤ 1.5× without:" in text
