"""A long run: thirty simulated days of a 500-agent fleet, each day ingested by its own run of the
real `chainwatch_ingest` job for the partition the daily schedule requests, with the weekly model
refit run when its schedule would fire. After every day: conservation holds, finding ids are
unique and stable, triage survives; at the end the warehouse grew linearly, holds exactly what
the simulator wrote, and a rerun of an ingested day adds nothing."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, RunRequest, build_schedule_context

from chainwatch.harness.simulate import simulate
from detectors.core.warehouse import CANONICAL_TABLES
from detectors.findings.merge import set_triage
from detectors.ingest.quality import conservation_violations
from detectors.stages import run_detection
from pipelines.definitions import build_definitions
from pipelines.jobs import INGEST_JOB_NAME, REFIT_JOB_NAME, SCORE_JOB_NAME
from pipelines.schedules import daily_ingest_schedule, weekly_refit_schedule
from tests.conftest import Ingester

DAYS = 30
AGENTS = 500
ACTIONS = 60_000
SEED = 23
TRIAGE_DAY = 5  # 1-based: triage is set after the fifth day's run
RERUN_DAYS = (10, DAYS)  # 1-based: an old day (after newer refits) and the newest one
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
# The days are replayed weeks after they happened: the ingestion-lag check (a warning, not
# blocking) is expected to fail; every other check must pass.
EXPECTED_FAILED_CHECKS = {"agent_actions:ingestion_lag"}
# Rebuilt from the data by every run (task_risk and the scores also follow the models).
DERIVED = ("credential_lifecycles", "task_sequences", "task_features", "recommendations")


def _start_day() -> date:
    """A Sunday at least DAYS + 2 days ago: every simulated day is a past partition (DAILY ends at
    today), and weeks line up with the refit schedule (Sunday 00:30 UTC)."""
    start = datetime.now(UTC).date() - timedelta(days=DAYS + 2)
    return start - timedelta(days=(start.weekday() + 1) % 7)


def _request(schedule, tick: datetime, instance, defs) -> RunRequest:
    """The one run request the schedule makes at ``tick``."""
    context = build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    (request,) = defs.resolve_schedule_def(schedule.name).evaluate_tick(context).run_requests
    return request


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def _snapshot(con: duckdb.DuckDBPyConnection) -> dict:
    """What a rerun of an ingested day is compared on."""
    tables = {t: _rows(con, f"SELECT count(*) FROM {t}")[0][0] for t in CANONICAL_TABLES + DERIVED}
    findings = _rows(
        con,
        """SELECT finding_id, rule_id = 'task_behaviour_anomaly', rule_id, entity_id, first_seen,
                  last_seen, evidence_event_ids, detail, status, triage_status, triage_note
           FROM findings ORDER BY finding_id""",
    )
    scores = _rows(
        con,
        """SELECT task_id, model_id, version, fused_score FROM task_anomaly_scores
           ORDER BY task_id""",
    )
    return {
        "tables": tables,
        "rule_findings": [f for f in findings if not f[1]],
        "anomaly_findings": [f for f in findings if f[1]],
        "scores": scores,
    }


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_thirty_days_day_by_day_through_the_schedules(tmp_path: Path):
    start = _start_day()
    fleet = tmp_path / "fleet"
    summary = simulate(fleet, seed=SEED, agents=AGENTS, days=DAYS, actions=ACTIONS, start=start)
    days = [start + timedelta(days=i) for i in range(DAYS)]
    landing = tmp_path / "landing"
    db = tmp_path / "wh" / "chainwatch.duckdb"
    defs = build_definitions(db_path=str(db), landing_dir=str(landing))
    jobs = {name: defs.resolve_job_def(name) for name in (INGEST_JOB_NAME, REFIT_JOB_NAME)}
    assert weekly_refit_schedule.cron_schedule == "30 0 * * 0"  # Sundays, as refit_due assumes

    seen_ids: set[str] = set()
    ingest_runs: set[str] = set()  # ingest_files.run_id of earlier runs (one per raw asset)
    triaged: dict[str, tuple[str, str, str]] = {}
    input_bytes: list[int] = []  # cumulative bytes landed, after each day
    db_bytes: list[int] = []  # warehouse file size after each day's run (checkpointed)
    refits = 0

    def run_ingest(day: date, instance):
        tick = datetime.combine(day + timedelta(days=1), time(1, 30), UTC)
        request = _request(daily_ingest_schedule, tick, instance, defs)
        # The 01:30 tick ingests yesterday's partition (its files have all landed).
        assert request.partition_key == day.isoformat(), (tick, request.partition_key)
        result = jobs[INGEST_JOB_NAME].execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags=request.tags,
            run_config=QUIET,
            raise_on_error=False,
        )
        assert result.success, day
        failed = {
            f"{e.asset_key.to_user_string()}:{e.check_name}"
            for e in result.get_asset_check_evaluations()
            if not e.passed
        }
        assert failed <= EXPECTED_FAILED_CHECKS, (day, failed)

    with DagsterInstance.ephemeral() as instance:
        for n, day in enumerate(days, start=1):
            # The weekly refit fires at Sunday 00:30, before the 01:30 tick that ingests Saturday.
            refit_due = (day + timedelta(days=1)).weekday() == 6
            if refit_due:
                tick = datetime.combine(day + timedelta(days=1), time(0, 30), UTC)
                request = _request(weekly_refit_schedule, tick, instance, defs)
                refit = jobs[REFIT_JOB_NAME].execute_in_process(
                    instance=instance, tags=request.tags, run_config=QUIET, raise_on_error=False
                )
                assert refit.success, day
                refits += 1

            landed = 0
            for rel in summary.files:
                if day.isoformat() in rel:
                    target = landing / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(fleet / rel, target)
                    landed += target.stat().st_size
            input_bytes.append((input_bytes[-1] if input_bytes else 0) + landed)

            run_ingest(day, instance)
            if n == 1:
                # A fresh warehouse has no model: like `chainwatch run` (refit="auto"), refit once
                # and score the day; from then on models change only on the weekly schedule.
                refit = jobs[REFIT_JOB_NAME].execute_in_process(
                    instance=instance, run_config=QUIET, raise_on_error=False
                )
                score = defs.resolve_job_def(SCORE_JOB_NAME).execute_in_process(
                    instance=instance,
                    partition_key=day.isoformat(),
                    run_config=QUIET,
                    raise_on_error=False,
                )
                assert refit.success and score.success
                refits += 1

            con = duckdb.connect(str(db))
            try:
                # Conservation: every record of every file is loaded, rejected or a duplicate.
                assert conservation_violations(con) == [], day
                broken = _rows(
                    con,
                    """SELECT source_file, records, loaded, rejected, duplicates FROM ingest_files
                       WHERE records <> loaded + rejected + duplicates""",
                )
                assert broken == [], day
                # This run landed exactly this day's files, each once, nothing rejected.
                this_run = _rows(
                    con,
                    """SELECT source_file, partition_day, rejected FROM ingest_files
                       WHERE NOT list_contains(?, run_id)""",
                    [sorted(ingest_runs)],
                )
                ingest_runs |= {r for (r,) in _rows(con, "SELECT run_id FROM ingest_files")}
                wanted = {
                    str((landing / rel).resolve())
                    for rel in summary.files
                    if day.isoformat() in rel
                }
                files_run = {f for f, _, _ in this_run}
                non_empty = {f for f in wanted if Path(f).stat().st_size > 0}
                assert non_empty <= files_run <= wanted, (day, files_run ^ wanted)
                assert {d for _, d, _ in this_run} <= {day}, day
                assert sum(r for *_, r in this_run) == 0, day

                # Findings: unique ids, none lost, triage kept.
                ids = [f for (f,) in _rows(con, "SELECT finding_id FROM findings")]
                assert len(ids) == len(set(ids)), day
                assert seen_ids <= set(ids), (day, sorted(seen_ids - set(ids))[:5])
                seen_ids |= set(ids)
                if n == TRIAGE_DAY:
                    # Up to two findings of each of four rules: in progress and resolved, with notes.
                    picks = _rows(
                        con,
                        """SELECT finding_id FROM findings
                           WHERE rule_id IN (SELECT DISTINCT rule_id FROM findings
                                             ORDER BY rule_id LIMIT 4)
                           QUALIFY row_number() OVER (PARTITION BY rule_id ORDER BY finding_id) <= 2
                           ORDER BY finding_id""",
                    )
                    assert len(picks) >= 4
                    for k, (finding_id,) in enumerate(picks):
                        status = ("in_progress", "resolved")[k % 2]
                        note = f"day {n}: pick {k}"
                        assert set_triage(con, finding_id, status, note)
                        triaged[finding_id] = (status, status, note)
                if triaged:
                    kept = {
                        f: (s, t, note)
                        for f, s, t, note in _rows(
                            con,
                            """SELECT finding_id, status, triage_status, triage_note FROM findings
                               WHERE list_contains(?, finding_id)""",
                            [sorted(triaged)],
                        )
                    }
                    assert kept == triaged, day
                # The size of the file as written for good: after a checkpoint, no WAL.
                con.execute("CHECKPOINT")
            finally:
                con.close()
            db_bytes.append(os.path.getsize(db))

        assert refits == 1 + sum((d + timedelta(days=1)).weekday() == 6 for d in days)

        # Everything the simulator wrote is in the warehouse, once.
        con = duckdb.connect(str(db), read_only=True)
        try:
            by_format = dict(
                _rows(con, "SELECT source_format, count(*) FROM agent_actions GROUP BY 1")
            )
            assert by_format == {
                "otlp": summary.tool_actions,
                "cloudtrail": summary.cloudtrail_records,
                "vault": summary.vault_requests,
            }
            assert sum(by_format.values()) == summary.actions
            assert _rows(con, "SELECT count(*) FROM tasks")[0][0] == summary.tasks
            assert _rows(con, "SELECT count(*) FROM task_events")[0][0] == summary.task_events
            records = dict(
                _rows(con, "SELECT source_format, sum(records) FROM ingest_files GROUP BY 1")
            )
            assert records["cloudtrail"] == summary.cloudtrail_records
            assert records["vault"] == summary.vault_entries
            assert records["native"] == summary.task_events
            landed_files = {
                Path(f).relative_to(landing.resolve()).as_posix()
                for (f,) in _rows(con, "SELECT DISTINCT source_file FROM ingest_files")
            }
            logs = {f for f in summary.files if any(d.isoformat() in f for d in days)}
            assert landed_files <= logs
            assert {f for f in logs if (fleet / f).stat().st_size > 0} <= landed_files
            before = _snapshot(con)
        finally:
            con.close()

        # Rerunning an ingested day adds nothing: an old one (after three newer refits) and the
        # newest (same models as its first run).
        for n in RERUN_DAYS:
            day = days[n - 1]
            run_ingest(day, instance)
            con = duckdb.connect(str(db), read_only=True)
            try:
                assert conservation_violations(con) == []
                rerun = _rows(
                    con,
                    """SELECT sum(records), sum(loaded), sum(rejected), sum(duplicates)
                       FROM ingest_files WHERE NOT list_contains(?, run_id)""",
                    [sorted(ingest_runs)],
                )[0]
                ingest_runs |= {r for (r,) in _rows(con, "SELECT run_id FROM ingest_files")}
                assert rerun[0] > 0 and rerun[1:] == (0, 0, rerun[0]), n  # all duplicates
                after = _snapshot(con)
                day_tasks = {
                    t
                    for (t,) in _rows(
                        con, "SELECT task_id FROM tasks WHERE CAST(started_at AS DATE) = ?", [day]
                    )
                }
            finally:
                con.close()
            # Not a row more in any canonical or derived table, the same rule findings.
            assert after["tables"] == before["tables"], n
            assert after["rule_findings"] == before["rule_findings"], n
            if n == DAYS:
                assert after["scores"] == before["scores"]
                assert after["anomaly_findings"] == before["anomaly_findings"]
            else:
                # The day's tasks are scored again with the newest models: tasks whose agents had
                # no peer group model then are scored now. Anything else is untouched, and no
                # anomaly finding is lost.
                changed = {r[0] for r in set(after["scores"]) ^ set(before["scores"])}
                assert changed <= day_tasks, n
                assert len({r[0] for r in after["scores"]}) == len(after["scores"])
                assert len(after["scores"]) >= len(before["scores"])
                old_ids = {f[0] for f in before["anomaly_findings"]}
                assert old_ids <= {f[0] for f in after["anomaly_findings"]}, n
            before = after

    # Linear growth of the file. The size grows in steps: a weekly refit stores six new model
    # versions (~2 MB each, every version is kept) and leaves free blocks from its working tables,
    # which the next days' data fills before the file grows again. So the rate is compared over
    # windows of two whole weeks, each holding two refits and two weekends (the start is a
    # Sunday, refits fall before days 7, 14, 21, 28): days 2-15 against days 17-30, as stored
    # bytes per landed input byte (weekends land a third of a weekday; the simulation's budget
    # runs out during the last day). Day 1 is left out (schema and empty tables, a fixed cost).
    # The late rate must stay within 2x of the early one. It is somewhat higher by construction:
    # the first two refits train on 6 and 13 days, the later ones on the full 14-day window. A
    # warehouse that kept dead copies of the tables it rebuilds daily, or rewrote its history,
    # grows with the square of the days: about 3x here.
    def rate(a: int, b: int) -> float:  # size after day index a to after day index b
        return (db_bytes[b] - db_bytes[a]) / (input_bytes[b] - input_bytes[a])

    early, late = rate(0, 14), rate(15, 29)
    growth = {
        "early": round(early, 3),
        "late": round(late, 3),
        "db_mib": [round(b / 2**20, 1) for b in db_bytes],
        "input_mib": [round(b / 2**20, 1) for b in input_bytes],
    }
    print(growth)  # shown with -s
    assert early > 0, growth
    assert 0.5 * early <= late <= 2 * early, growth


@pytest.mark.parametrize(
    ("tick", "partition"),
    [
        (datetime(2026, 10, 5, 1, 30, tzinfo=UTC), "2026-10-04"),
        (datetime(2027, 1, 1, 1, 30, tzinfo=UTC), "2026-12-31"),
    ],
)
def test_daily_schedule_requests_yesterdays_partition(tick: datetime, partition: str):
    """Regression: built from the partitioned job, the schedule requested DAILY's last partition,
    today's (end_offset=1), so the 01:30 tick ingested the day just begun, never yesterday."""
    defs = build_definitions()
    with DagsterInstance.ephemeral() as instance:
        request = _request(daily_ingest_schedule, tick, instance, defs)
    assert request.partition_key == partition
    assert request.tags["dagster/partition"] == partition


def test_a_task_ended_by_its_agent_span_after_every_other_event(ingest: Ingester, settings):
    """Regression (found by the long run): a day's trace file holds a task that started before
    midnight and whose agent span ends after it, past every other event. `as_of` left span ends
    out, so it fell before that task's end; the outlived-credential finding got first_seen (task
    end) > last_seen (as_of), and the blocking findings_well_formed check failed the daily run."""
    t0 = datetime(2026, 10, 1, 23, 59, 0)
    ns = lambda t: str(int(t.replace(tzinfo=UTC).timestamp() * 10**9))  # noqa: E731

    def span(span_id, parent, start, end, attrs):
        return {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": span_id,
            **({"parentSpanId": parent} if parent else {}),
            "name": attrs["gen_ai.operation.name"],
            "kind": 1,
            "startTimeUnixNano": ns(start),
            "endTimeUnixNano": ns(end),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
        }

    ingest.document(
        "traces-2026-10-01.json",
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": []},
                    "scopeSpans": [
                        {
                            "spans": [
                                span(
                                    "b7ad6b7100000001",
                                    None,
                                    t0,
                                    t0 + timedelta(minutes=20),
                                    {
                                        "gen_ai.operation.name": "invoke_agent",
                                        "gen_ai.agent.id": "agent-1",
                                        "chainwatch.task.id": "task-1",
                                    },
                                ),
                                span(
                                    "b7ad6b7100000002",
                                    "b7ad6b7100000001",
                                    t0 + timedelta(minutes=1),
                                    t0 + timedelta(minutes=2),
                                    {
                                        "gen_ai.operation.name": "execute_tool",
                                        "gen_ai.tool.name": "read_file",
                                    },
                                ),
                            ]
                        }
                    ],
                }
            ]
        },
    )
    ingest.lines(
        "tasks-2026-10-01.jsonl",
        [
            {
                "record_type": "credential",
                "event_id": "c1",
                "ts": (t0 + timedelta(seconds=10)).isoformat() + "Z",
                "event": "issue",
                "credential_ref": "jit-1",
                "task_id": "task-1",
                "agent_id": "agent-1",
                "ttl_s": 3600,
            }
        ],
    )
    run_detection(ingest.con, settings)
    assert ingest.rows("SELECT ended_at, end_source FROM tasks") == [
        {"ended_at": t0 + timedelta(minutes=20), "end_source": "agent_span"}
    ]
    assert ingest.one("SELECT count_if(as_of < task_ended_at) FROM credential_lifecycles") == 0
    outlived = ingest.rows(
        "SELECT first_seen, last_seen FROM findings WHERE rule_id = 'credential_outlived_task'"
    )
    assert outlived == [
        {"first_seen": t0 + timedelta(minutes=20), "last_seen": t0 + timedelta(minutes=20)}
    ]
    assert ingest.one("SELECT count_if(first_seen > last_seen) FROM findings") == 0
