"""The `chainwatch` command.

Exit codes: 0 success; 1 the command ran but some input failed (unreadable or unrecognised files,
failed asset checks); 2 bad arguments or configuration; 3 the warehouse could not be opened.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path

from chainwatch.harness.evaluate import EvaluationError
from detectors.core.locking import warehouse_lock
from detectors.core.settings import SettingsError, load_settings
from detectors.core.warehouse import WarehouseError, connect, table_counts
from detectors.ingest.catalog import CatalogError, catalog_report, load_catalog
from detectors.ingest.formats import FORMATS
from detectors.ingest.pipeline import IngestError, ingest_paths
from detectors.rules.engine import RuleError
from detectors.spark.lake import LakeError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_WAREHOUSE = 0, 1, 2, 3


def _table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    cells = [[str(h) for h in headers]] + [
        ["" if v is None else str(v) for v in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _add_common(parser: argparse.ArgumentParser, catalog: bool = False) -> None:
    parser.add_argument(
        "--db",
        help="warehouse DuckDB file (default: $CHAINWATCH_DB or data/warehouse/chainwatch.duckdb)",
    )
    parser.add_argument("--config", help="settings YAML file (default: $CHAINWATCH_CONFIG)")
    if catalog:
        parser.add_argument("--catalog", help="tool catalog YAML (default: the shipped catalog)")


_OPENED: list = []
_LOCKS = ExitStack()


def _open(path, *, read_only: bool = False):
    """A warehouse connection that :func:`main` closes when the command ends (so the next command
    in the same process may open the file with another configuration). A writing command holds
    the warehouse's run lock until then: it refuses to start while a run holds it."""
    if not read_only:
        _LOCKS.enter_context(warehouse_lock(path))
    con = connect(path, read_only=read_only)
    _OPENED.append(con)
    return con


def _close_all() -> None:
    while _OPENED:
        _OPENED.pop().close()
    _LOCKS.close()


def _settings(args):
    return load_settings(args.config, db_path=args.db, catalog_path=getattr(args, "catalog", None))


def cmd_simulate(args) -> int:
    from chainwatch.harness.simulate import simulate

    summary = simulate(
        args.out,
        seed=args.seed,
        agents=args.agents,
        days=args.days,
        actions=args.actions,
        start=date.fromisoformat(args.start) if args.start else date(2026, 11, 1),
        anomalies=args.anomalies,
    )
    print(f"wrote a simulated fleet to {args.out}")
    print(summary)
    return EXIT_OK


class _IngestProgress:
    """A byte progress bar on a terminal; plain lines otherwise; nothing when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def __enter__(self):
        return self

    def __call__(self, message: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if not sys.stderr.isatty():
            print(message, file=sys.stderr)
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, leave=False)
        self.bar.set_description(message)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_ingest(args) -> int:
    settings = _settings(args)
    catalog = load_catalog(settings.catalog_path)
    con = _open(settings.db_path)
    with _IngestProgress(quiet=args.quiet) as progress:
        report = ingest_paths(
            con, args.paths, settings, fmt=args.format, catalog=catalog, progress=progress
        )
    rows = [
        (
            f.source_file,
            f.source_format or "-",
            f.records,
            f.loaded,
            f.rejected,
            f.duplicates,
            f.error or "",
        )
        for f in report.files
    ]
    print(_table(["file", "format", "records", "loaded", "rejected", "duplicates", "error"], rows))
    print(
        f"\ntotal: {report.total('records')} records, {report.total('loaded')} loaded, "
        f"{report.total('rejected')} rejected, {report.total('duplicates')} duplicates; "
        f"{len(report.errors)} file(s) could not be read"
    )
    _print_counts(con)
    return EXIT_PARTIAL if report.errors else EXIT_OK


def cmd_run(args) -> int:
    if args.engine == "spark":
        return _run_spark(args)
    from pipelines.run import run_landing

    settings = _settings(args)
    started = datetime.now(UTC).replace(tzinfo=None)
    outcome = run_landing(
        args.landing,
        settings.db_path,
        catalog_path=args.catalog,
        config_file=args.config,
        log_level="INFO" if args.verbose else "WARNING",
        refit=args.refit,
        progress=sys.stderr.isatty() and not args.verbose,
        wait_s=args.wait,
    )
    if not outcome.days:
        print(f"no files in landing folder {args.landing}")
        return EXIT_OK
    print(
        f"ran Dagster job chainwatch_ingest over {outcome.days[0]} .. {outcome.days[-1]} "
        f"({len(outcome.days)} day(s)) into {settings.db_path}: {'success' if outcome.success else 'FAILED'}"
    )
    if outcome.refit_run_id:
        print(
            "no anomaly model existed: ran chainwatch_refit, then chainwatch_score over the same days"
        )
    for check in outcome.failed_checks:
        kind = "warning" if check.endswith(":ingestion_lag") else "FAILED"
        print(f"check {kind}: {check}")
    con = _open(settings.db_path, read_only=True)
    print("\nrecords per source format in this run:")
    print(
        _table(
            ["format", "files", "records", "loaded", "rejected", "duplicates"],
            con.execute(
                """SELECT source_format, count(*), sum(records), sum(loaded), sum(rejected), sum(duplicates)
           FROM ingest_files WHERE started_at >= ? GROUP BY 1 ORDER BY 1""",
                [started],
            ).fetchall(),
        )
    )
    print("(duplicates: ids seen before; each Vault request entry pairs with its response entry)")
    _print_counts(con)
    print("\nbusiest tasks:")
    print(
        _table(
            ["task_id", "agent_id", "actions", "started_at", "ended_at", "ended_by", "status"],
            con.execute(
                """SELECT task_id, agent_id, actions, started_at, ended_at, end_source, status
                                FROM tasks ORDER BY actions DESC, task_id LIMIT ?""",
                [args.top],
            ).fetchall(),
        )
    )
    _print_anomaly_summary(con)
    _print_findings_summary(con, args.top)
    print(
        f"\nfindings exported to {settings.findings_path}/parquet (by day) and "
        f"{settings.findings_path}/findings.ocsf.jsonl"
    )
    print(f"analyst database (read-only snapshot of this run): {settings.published_path}")
    # The lag check only warns: backfills of old logs are legitimately late.
    problems = [c for c in outcome.failed_checks if not c.endswith(":ingestion_lag")]
    return EXIT_OK if outcome.success and not problems else EXIT_PARTIAL


def cmd_detect(args) -> int:
    from detectors.stages import run_detection

    settings = _settings(args)
    con = _open(settings.db_path)
    report = run_detection(con, settings)
    print("derived tables: " + ", ".join(f"{k} {v}" for k, v in report.derived.items()))
    for note in report.notes:
        print(note)
    _print_anomaly_summary(con)
    _print_findings_summary(con, args.top)
    return EXIT_OK


def _run_spark(args) -> int:
    """``run --engine spark``: the Dagster job chainwatch_spark on the lake, after parsing landing
    files into it on Spark (--raw) or exporting the warehouse to it (--export)."""
    from pipelines.run import run_spark

    lake = args.lake or os.environ.get("CHAINWATCH_LAKE") or "data/lake"
    out = args.out or f"{lake.rstrip('/')}/out"
    if args.raw and args.export:
        raise LakeError("choose one source for the lake: --raw (landing files) or --export")
    db = _settings(args).db_path if args.export else None
    if args.raw and "://" not in args.raw and not Path(args.raw).is_dir():
        raise LakeError(f"landing folder {args.raw} does not exist")
    if db is None and not args.raw and "://" not in lake and not Path(lake).is_dir():
        raise LakeError(
            f"lake folder {lake} does not exist (fill it with --raw, --export or lake-export)"
        )
    outcome = run_spark(
        lake,
        out,
        master=args.master,
        db_path=db,
        config_file=args.config,
        log_level="INFO" if args.verbose else "WARNING",
        raw=args.raw,
        refit=args.refit,
        refit_tasks_per_agent=args.refit_sample,
    )
    if db is not None:
        print(f"exported warehouse {db} to lake {lake}")
    if outcome.ingested:
        meta = outcome.ingested
        print(
            f"parsed {meta['files']} landing file(s) under {args.raw} on Spark into lake {lake}: "
            f"{meta['records']} records = {meta['loaded']} loaded + {meta['rejected']} rejected + "
            f"{meta['duplicates']} duplicates; {meta['file_errors']} file(s) could not be read"
        )
    print(
        f"ran Dagster job chainwatch_spark on lake {lake}: {'success' if outcome.success else 'FAILED'}"
    )
    if not outcome.success:
        return EXIT_PARTIAL
    meta = outcome.spark
    print(
        _table(
            ["table", "rows"],
            [(k.removeprefix("rows_"), v) for k, v in meta.items() if k.startswith("rows_")],
        )
    )
    if meta.get("refit_sampled_tasks"):
        print(
            f"models refit on Spark: {meta['refit_trained_groups']} peer group(s) trained on "
            f"{meta['refit_sampled_tasks']} sampled tasks"
        )
    print(f"tasks scored: {meta['scored_tasks']}, findings: {meta['findings']}")
    print(
        "seconds: "
        + ", ".join(
            f"{k.removeprefix('seconds_')} {v}" for k, v in meta.items() if k.startswith("seconds_")
        )
    )
    print(f"derived tables, anomaly scores and findings (Parquet, findings by day) in {out}")
    return EXIT_OK


def cmd_lake_export(args) -> int:
    from detectors.spark.lake import export_lake, export_models

    settings = _settings(args)
    con = _open(settings.db_path, read_only=True)
    counts = export_lake(con, args.lake)
    if not args.no_models:
        counts.update(export_models(con, args.lake))
    print(_table(["table", "rows"], sorted(counts.items())))
    print(f"lake written to {args.lake}")
    return EXIT_OK


def cmd_refit(args) -> int:
    from detectors.anomaly.models import default_train_until, refit
    from detectors.derive.tables import build_derived_tables

    settings = _settings(args)
    con = _open(settings.db_path)
    build_derived_tables(con)  # train on the features of everything loaded so far
    until = default_train_until(con)
    report = refit(con, settings.anomaly, train_until=until)
    window = settings.anomaly.window_days
    print(
        f"peer groups ({settings.anomaly.peer_method}): "
        + ", ".join(f"{g} {n} agent(s)" for g, n in report.groups.items())
    )
    print(f"training window: {window} day(s) before {until:%Y-%m-%d %H:%M} UTC")
    print(
        _table(
            ["peer_group", "training_tasks", "model", "version", "outcome"],
            [
                [
                    m.peer_group,
                    m.n_train,
                    m.model_id or "-",
                    m.version or "-",
                    m.reason or "trained",
                ]
                for m in report.models
            ],
        )
    )
    print("scoring uses these models from the next `chainwatch detect` or run; it never refits")
    return EXIT_OK


def _print_anomaly_summary(con) -> None:
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    if "task_anomaly_scores" not in tables:
        return
    rows = con.execute(
        """SELECT peer_group, count(*), any_value(model_id || ' v' || version),
                  count_if(fused_percentile >= 99), round(max(fused_percentile), 1)
           FROM task_anomaly_scores GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    if rows:
        print("\nanomaly scores by peer group:")
        print(_table(["peer_group", "tasks", "model", "tasks_at_p99+", "max_percentile"], rows))


def _print_findings_summary(con, top: int) -> None:
    print("\nfindings by rule and severity:")
    print(
        _table(
            ["rule", "severity", "findings", "open", "suppressed"],
            con.execute(
                """SELECT rule_id, severity, count(*), count_if(status IN ('new', 'in_progress')), count_if(status = 'suppressed')
           FROM findings GROUP BY ALL ORDER BY 3 DESC, 1"""
            ).fetchall(),
        )
    )
    print(f"\ntop {top} findings:")
    rows = con.execute(
        """SELECT finding_id, severity, priority, rule_id, coalesce(task_id, '-'), coalesce(agent_id, '-'),
                  left(detail, 70), array_to_string(evidence_event_ids[1:4], ' ')
           FROM findings WHERE status IN ('new', 'in_progress')
           ORDER BY priority DESC NULLS LAST, risk_score DESC, last_seen DESC, finding_id LIMIT ?""",
        [top],
    ).fetchall()
    print(
        _table(
            [
                "finding",
                "severity",
                "priority",
                "rule",
                "task",
                "agent",
                "detail",
                "evidence (first events)",
            ],
            rows,
        )
    )


def cmd_findings(args) -> int:
    import json

    settings = _settings(args)
    con = _open(settings.db_path, read_only=True)
    filters, params = ["true"], []
    for column, value in (
        ("severity", args.severity),
        ("rule_id", args.rule),
        ("agent_id", args.agent),
        ("status", args.status),
    ):
        if value:
            filters.append(f"{column} = ?")  # column names are fixed above; values are bound
            params.append(value)
    if args.since:
        filters.append("last_seen >= CAST(? AS TIMESTAMP)")
        params.append(args.since)
    where = " AND ".join(filters)
    if args.format == "ocsf":
        from detectors.findings.exports import findings_to_ocsf, product_version

        id_query = f"SELECT finding_id FROM findings WHERE {where}"  # noqa: S608 - fixed columns, bound values
        ids = {r[0] for r in con.execute(id_query, params).fetchall()}
        for event in findings_to_ocsf(con, product_version=product_version()):
            if event["finding_info"]["uid"] in ids:
                print(json.dumps(event, sort_keys=True))
        return EXIT_OK
    cursor = con.execute(
        f"""SELECT finding_id, rule_id, severity, priority, risk_score, status, agent_id, task_id,
                   credential_id, first_seen, last_seen, analytic_type, anomaly_percentile,
                   evidence_event_ids, detail, explanation
            FROM findings WHERE {where}
            ORDER BY priority DESC NULLS LAST, risk_score DESC, last_seen DESC, finding_id""",  # noqa: S608
        params,
    )
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    if args.format == "json":
        for row in rows:
            record = dict(zip(names, row, strict=True))
            record["explanation"] = (
                json.loads(record["explanation"]) if record["explanation"] else None
            )
            print(json.dumps(record, default=str, sort_keys=True))
    else:
        shown = names.index("analytic_type")
        print(_table(names[:shown], [[*r[:shown]] for r in rows]))
        for row in rows:
            if row[names.index("explanation")]:
                print(f"\n{row[0]} ({row[1]}): {row[names.index('detail')]}")
        print(f"\n{len(rows)} finding(s)")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    import json

    from chainwatch.harness.evaluate import (
        evaluate,
        evaluate_anomalies,
        format_anomaly_evaluation,
        format_evaluation,
    )

    settings = _settings(args)
    con = _open(settings.db_path, read_only=True)
    rules = evaluate(con, Path(args.labels), settings)
    has_scores = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'task_anomaly_scores'"
    ).fetchone()[0]
    anomalies = (
        evaluate_anomalies(con, Path(args.labels), settings)
        if has_scores and rules.uncovered
        else None
    )
    if args.format == "json":
        out = rules.to_dict()
        out["anomaly"] = anomalies.to_dict() if anomalies else None
        print(json.dumps(out, indent=2))
    else:
        print(format_evaluation(rules, args.format))
        if anomalies:
            print(format_anomaly_evaluation(anomalies))
    return EXIT_OK


def _published(settings):
    """A read-only connection to the analyst database, or a clear error if no run made it."""
    path = settings.published_path
    if not path.exists():
        raise FileNotFoundError(
            f"no published analyst database at {path}: run `chainwatch run` (or the Dagster job) first"
        )
    return _open(path, read_only=True)


def cmd_show(args) -> int:
    settings = _settings(args)
    con = _published(settings)
    task = con.execute(
        """SELECT t.task_id, t.agent_id, t.started_at, t.ended_at, t.status, t.actions,
                  r.risk_score, r.anomaly_percentile, r.rule_findings
           FROM tasks t LEFT JOIN task_risk r USING (task_id) WHERE t.task_id = ?""",
        [args.task_id],
    ).fetchone()
    if task is None:
        print(
            f"chainwatch: error: no task {args.task_id!r} in {settings.published_path}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    task_id, agent, started, ended, status, actions, risk, pct, n_rules = task
    print(f"task {task_id}  agent {agent}  {status}  {actions} action(s)")
    print(f"  {started} .. {ended}")
    if risk is not None:
        pct_text = "not scored" if pct is None else f"{pct:.1f}"
        print(f"  risk {risk}  rule findings {n_rules}  anomaly percentile {pct_text}")
    evidence = {
        e
        for (ids,) in con.execute(
            "SELECT evidence_event_ids FROM findings WHERE task_id = ?", [task_id]
        ).fetchall()
        for e in ids
    }
    rows = con.execute(
        """SELECT ts, kind, what, system, action_class, destination, outcome,
                  left(coalesce(credential_id, ''), 14), event_id, after_task_end
           FROM task_timeline WHERE task_id = ? ORDER BY ts, event_id""",
        [task_id],
    ).fetchall()
    print()
    print(
        _table(
            ["", "ts", "kind", "what", "system", "class", "destination", "outcome", "credential"],
            [
                [
                    ("*" if r[8] in evidence else "") + ("!" if r[9] else ""),
                    str(r[0])[:23],
                    *r[1:8],
                ]
                for r in rows
            ],
        )
    )
    print("\n* evidence of a finding   ! after the task ended")
    findings = con.execute(
        """SELECT finding_id, priority, severity, rule_id, left(detail, 90) FROM findings
           WHERE task_id = ? ORDER BY priority DESC NULLS LAST, finding_id""",
        [task_id],
    ).fetchall()
    if findings:
        print("\nfindings:")
        print(_table(["finding", "priority", "severity", "rule", "detail"], findings))
    return EXIT_OK


def cmd_triage(args) -> int:
    from detectors.findings.exports import (
        export_findings_ocsf,
        export_findings_parquet,
        product_version,
    )
    from detectors.findings.merge import set_triage
    from detectors.findings.snapshot import publish_with_settings

    settings = _settings(args)
    con = _open(settings.db_path)
    if not set_triage(con, args.finding_id, args.status, args.note):
        print(f"chainwatch: error: no finding {args.finding_id!r}", file=sys.stderr)
        return EXIT_USAGE
    out = settings.findings_path
    export_findings_parquet(con, out / "parquet")
    export_findings_ocsf(con, out / "findings.ocsf.jsonl", product_version=product_version())
    report = publish_with_settings(con, settings)
    status, note = con.execute(
        "SELECT status, triage_note FROM findings WHERE finding_id = ?", [args.finding_id]
    ).fetchone()
    print(f"{args.finding_id}: status {status}" + (f", note {note!r}" if note else ""))
    print(f"republished {report.path} and the findings exports in {out}")
    return EXIT_OK


def cmd_recommend(args) -> int:
    import json

    settings = _settings(args)
    con = _open(settings.db_path, read_only=True)
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    if "recommendations" not in tables:
        raise FileNotFoundError(
            f"no recommendations table in {settings.db_path}: run `chainwatch detect` or `chainwatch run` first"
        )
    cursor = con.execute(
        """SELECT * FROM recommendations
           WHERE (CAST(? AS VARCHAR) IS NULL OR agent_id = ?)
             AND (CAST(? AS VARCHAR) IS NULL OR category = ?)""",
        [args.agent, args.agent, args.category, args.category],
    )
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    if args.format == "json":
        for row in rows:
            print(json.dumps(dict(zip(names, row, strict=True)), default=str, sort_keys=True))
        return EXIT_OK
    shown = [n for n in ("agent_id", "category", "item", "access", "recommendation") if n in names]
    print(_table(shown, [[r[names.index(n)] for n in shown] for r in rows]))
    print(f"\n{len(rows)} recommendation(s)")
    return EXIT_OK


def cmd_investigate(args) -> int:
    from detectors.analyst.investigate import run_investigation

    settings = _settings(args)
    if not settings.published_path.exists():
        raise FileNotFoundError(
            f"no published analyst database at {settings.published_path}: run `chainwatch run` first"
        )
    ident = args.id
    if args.top:
        row = (
            _published(settings).execute("SELECT finding_id FROM findings_open LIMIT 1").fetchone()
        )
        if row is None:
            print("no open finding to investigate")
            return EXIT_OK
        ident = row[0]
    elif ident is None:
        print("chainwatch: error: give a finding id (or --task TASK_ID, or --top)", file=sys.stderr)
        return EXIT_USAGE
    result = run_investigation(
        settings.published_path,
        Path(args.out),
        finding_id=None if args.task else ident,
        task_id=ident if args.task else None,
    )
    print(
        f"executed notebook: {result.notebook} ({result.figures} figure(s), {result.elapsed_s:.1f} s)"
    )
    print(f"HTML: {result.html}")
    return EXIT_OK


def cmd_report(args) -> int:
    from detectors.analyst.report import write_report

    settings = _settings(args)
    if not settings.published_path.exists():
        raise FileNotFoundError(
            f"no published analyst database at {settings.published_path}: run `chainwatch run` first"
        )
    out = Path(args.out) if args.out else settings.published_path.parent / "report.html"
    summary = write_report(settings.published_path, out)
    print(
        f"report: {summary.path} ({summary.open_findings} open of {summary.findings} findings, "
        f"{summary.agents} agents, snapshot {summary.published_at})"
    )
    return EXIT_OK


def cmd_catalog_report(args) -> int:
    settings = _settings(args)
    con = _open(settings.db_path, read_only=True)
    rows = catalog_report(con, args.limit)
    print("tools no catalog entry maps, busiest first (add them to your catalog):")
    print(_table(["tool", "system", "classified_by", "guessed_class", "actions"], rows))
    return EXIT_OK


def _print_counts(con) -> None:
    print("\nrows per table:")
    print(_table(["table", "rows"], sorted(table_counts(con).items())))


def _iso_time(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chainwatch", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "simulate", help="write a simulated agent fleet's logs in their real formats"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--actions", type=int, default=5000, help="approximate number of agent actions")
    p.add_argument("--start", help="first day (YYYY-MM-DD, default 2026-11-01)")
    p.add_argument(
        "--anomalies",
        action="store_true",
        help="also inject behaviour no rule covers (ANOMALY_SCENARIOS), for anomaly detection",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("ingest", help="load log files or folders into the warehouse")
    p.add_argument("paths", nargs="+", help="files or folders (gzipped files too)")
    p.add_argument(
        "--format", choices=FORMATS, help="skip content detection and parse as this format"
    )
    p.add_argument("-q", "--quiet", action="store_true")
    _add_common(p, catalog=True)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("run", help="run the Dagster ingest job in-process on the landing folder")
    p.add_argument(
        "--landing", default="data/landing", help="landing folder (default data/landing)"
    )
    p.add_argument("--top", type=int, default=5, help="how many of the busiest tasks to show")
    p.add_argument(
        "--refit",
        choices=("auto", "always", "never"),
        default="auto",
        help="refit the anomaly models after the ingest: auto = only if none exists yet "
        "(default); otherwise the weekly schedule or `chainwatch refit` does it. spark: in the "
        "lake's models folder, trained on a sample of the lake",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for another run on the same warehouse to end (default: refuse at once)",
    )
    p.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="duckdb: the daily job on the landing folder (default); spark: derived tables, rules, "
        "anomaly scores and findings on Spark from the lake (docs/scale-out.md)",
    )
    p.add_argument(
        "--lake", help="spark: lake folder or URI (default $CHAINWATCH_LAKE or data/lake)"
    )
    p.add_argument("--out", help="spark: where outputs go (default <lake>/out)")
    p.add_argument(
        "--master",
        help="spark: master URL (default $CHAINWATCH_SPARK_MASTER or local[2]; 'default' leaves it "
        "to spark-submit)",
    )
    p.add_argument(
        "--export",
        action="store_true",
        help="spark: first write the warehouse's canonical tables and models to the lake",
    )
    p.add_argument(
        "--refit-sample",
        type=int,
        default=1000,
        metavar="N",
        help="spark: a refit trains on each agent's N most recent tasks of the window (default 1000)",
    )
    p.add_argument(
        "--raw",
        help="spark: first parse the landing files under this folder or URI on Spark into the "
        "lake's canonical tables",
    )
    _add_common(p, catalog=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "lake-export",
        help="write the warehouse's canonical tables (Parquet by day) and models to a lake folder",
    )
    p.add_argument("--lake", required=True, help="lake folder")
    p.add_argument("--no-models", action="store_true", help="leave the anomaly models out")
    _add_common(p)
    p.set_defaults(func=cmd_lake_export)

    p = sub.add_parser(
        "refit", help="reassign peer groups and train a new version of the anomaly models"
    )
    _add_common(p)
    p.set_defaults(func=cmd_refit)

    p = sub.add_parser("detect", help="run every detection rule over what is loaded")
    p.add_argument("--top", type=int, default=10, help="how many of the top findings to show")
    _add_common(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("findings", help="list findings")
    p.add_argument("--format", choices=("table", "json", "ocsf"), default="table")
    p.add_argument("--severity", choices=("informational", "low", "medium", "high", "critical"))
    p.add_argument("--rule")
    p.add_argument("--agent")
    p.add_argument("--status", choices=("new", "in_progress", "suppressed", "resolved"))
    p.add_argument(
        "--since", type=_iso_time, help="only findings last seen at or after this time (ISO 8601)"
    )
    _add_common(p)
    p.set_defaults(func=cmd_findings)

    p = sub.add_parser("evaluate", help="precision and recall of findings against simulator labels")
    p.add_argument("--labels", required=True, help="labels.jsonl written by `chainwatch simulate`")
    p.add_argument("--format", choices=("table", "json"), default="table")
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("show", help="a task's timeline in the terminal (from the analyst database)")
    p.add_argument("task_id")
    _add_common(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "triage",
        help="set a finding's triage status and note (kept across reruns), then republish",
    )
    p.add_argument("finding_id")
    p.add_argument("--status", required=True, choices=("new", "in_progress", "resolved"))
    p.add_argument("--note", help="free text kept with the finding")
    _add_common(p)
    p.set_defaults(func=cmd_triage)

    p = sub.add_parser(
        "recommend", help="least-privilege recommendations: unused grants and TTLs per agent"
    )
    p.add_argument("--agent", help="only this agent")
    p.add_argument("--category", choices=("scope", "access", "ttl"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    _add_common(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser(
        "investigate",
        help="run the investigation notebook for a finding (or a task) and write it as .ipynb and HTML",
    )
    p.add_argument("id", nargs="?", help="a finding id (or a task id with --task)")
    p.add_argument("--task", action="store_true", help="ID is a task id")
    p.add_argument("--top", action="store_true", help="the most urgent open finding")
    p.add_argument("--out", default="investigations", help="output folder (default investigations)")
    _add_common(p)
    p.set_defaults(func=cmd_investigate)

    p = sub.add_parser("report", help="write one self-contained HTML report of the latest snapshot")
    p.add_argument("--out", help="HTML file (default: report.html beside the analyst database)")
    _add_common(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("catalog-report", help="list tools the catalog does not map, by count")
    p.add_argument("--limit", type=int, default=50)
    _add_common(p)
    p.set_defaults(func=cmd_catalog_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `chainwatch` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (
        SettingsError,
        CatalogError,
        IngestError,
        FileNotFoundError,
        RuleError,
        EvaluationError,
        LakeError,
    ) as exc:
        print(f"chainwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WarehouseError as exc:
        print(f"chainwatch: error: {exc}", file=sys.stderr)
        return EXIT_WAREHOUSE
    except Exception as exc:
        from detectors.analyst.investigate import InvestigationError

        if isinstance(exc, InvestigationError | ValueError):
            print(f"chainwatch: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise
    finally:
        _close_all()


if __name__ == "__main__":
    sys.exit(main())
