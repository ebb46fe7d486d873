"""The `chainwatch` command.

Exit codes: 0 success; 1 the command ran but some input failed (unreadable or unrecognised files,
failed asset checks); 2 bad arguments or configuration; 3 the warehouse could not be opened.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from detectors.catalog import CatalogError, catalog_report, load_catalog
from detectors.evaluate import EvaluationError
from detectors.ingest.formats import FORMATS
from detectors.ingest.pipeline import IngestError, ingest_paths
from detectors.rules.engine import RuleError
from detectors.settings import SettingsError, load_settings
from detectors.warehouse import WarehouseError, connect, table_counts

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


def _settings(args):
    return load_settings(args.config, db_path=args.db, catalog_path=getattr(args, "catalog", None))


def cmd_simulate(args) -> int:
    from detectors.simulate import simulate

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


def cmd_ingest(args) -> int:
    settings = _settings(args)
    catalog = load_catalog(settings.catalog_path)
    con = connect(settings.db_path)
    report = ingest_paths(
        con,
        args.paths,
        settings,
        fmt=args.format,
        catalog=catalog,
        progress=(lambda msg: print(msg, file=sys.stderr)) if not args.quiet else None,
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
    con = connect(settings.db_path, read_only=True)
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
    # The lag check only warns: backfills of old logs are legitimately late.
    problems = [c for c in outcome.failed_checks if not c.endswith(":ingestion_lag")]
    return EXIT_OK if outcome.success and not problems else EXIT_PARTIAL


def cmd_detect(args) -> int:
    from detectors.detect import run_detection

    settings = _settings(args)
    con = connect(settings.db_path)
    report = run_detection(con, settings)
    print("derived tables: " + ", ".join(f"{k} {v}" for k, v in report.derived.items()))
    for note in report.notes:
        print(note)
    _print_anomaly_summary(con)
    _print_findings_summary(con, args.top)
    return EXIT_OK


def cmd_refit(args) -> int:
    from detectors.anomaly import default_train_until, refit
    from detectors.derive import build_derived_tables

    settings = _settings(args)
    con = connect(settings.db_path)
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
    con = connect(settings.db_path, read_only=True)
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
        from detectors.publish import findings_to_ocsf, product_version

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

    from detectors.evaluate import (
        evaluate,
        evaluate_anomalies,
        format_anomaly_evaluation,
        format_evaluation,
    )

    settings = _settings(args)
    con = connect(settings.db_path, read_only=True)
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


def cmd_catalog_report(args) -> int:
    settings = _settings(args)
    con = connect(settings.db_path, read_only=True)
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
        "(default); otherwise the weekly schedule or `chainwatch refit` does it",
    )
    _add_common(p, catalog=True)
    p.set_defaults(func=cmd_run)

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
    ) as exc:
        print(f"chainwatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WarehouseError as exc:
        print(f"chainwatch: error: {exc}", file=sys.stderr)
        return EXIT_WAREHOUSE


if __name__ == "__main__":
    sys.exit(main())
