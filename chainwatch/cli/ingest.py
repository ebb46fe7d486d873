"""Loading commands: ingest files, run the Dagster job (DuckDB or Spark engine), lake-export."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chainwatch.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    add_common,
    open_warehouse,
    settings_for,
)
from chainwatch.cli.output import print_anomaly_summary, print_counts, print_findings_summary, table
from detectors.analyst.views import busiest_tasks, records_by_format
from detectors.core.settings import Settings
from detectors.ingest.catalog import load_catalog
from detectors.ingest.formats import FORMATS
from detectors.ingest.pipeline import ingest_paths
from detectors.spark.lake import LakeError


class _IngestProgress:
    """A byte progress bar on a terminal; plain lines otherwise; nothing when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None  # a tqdm bar once the first file starts

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


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load files or folders into the warehouse; print counts per file and per table."""
    settings = settings_for(args)
    catalog = load_catalog(settings.catalog_path)
    con = open_warehouse(settings.db_path)
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
    print(table(["file", "format", "records", "loaded", "rejected", "duplicates", "error"], rows))
    print(
        f"\ntotal: {report.total('records')} records, {report.total('loaded')} loaded, "
        f"{report.total('rejected')} rejected, {report.total('duplicates')} duplicates; "
        f"{len(report.errors)} file(s) could not be read"
    )
    print_counts(con)
    return EXIT_PARTIAL if report.errors else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run the Dagster job on the landing folder (or on the lake with --engine spark)."""
    settings = settings_for(args)
    if args.engine == "spark":
        return _run_spark(args, settings)
    from pipelines.run import run_landing

    started = datetime.now(UTC).replace(tzinfo=None)
    outcome = run_landing(
        args.landing,
        settings.db_path,
        catalog_path=str(settings.catalog_path),  # resolved once, like the database
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
    con = open_warehouse(settings.db_path, read_only=True)
    print("\nrecords per source format in this run:")
    print(
        table(
            ["format", "files", "records", "loaded", "rejected", "duplicates"],
            records_by_format(con, started),
        )
    )
    print("(duplicates: ids seen before; each Vault request entry pairs with its response entry)")
    print_counts(con)
    print("\nbusiest tasks:")
    print(
        table(
            ["task_id", "agent_id", "actions", "started_at", "ended_at", "ended_by", "status"],
            busiest_tasks(con, args.top),
        )
    )
    print_anomaly_summary(con)
    print_findings_summary(con, args.top)
    print(
        f"\nfindings exported to {settings.findings_path}/parquet (by day) and "
        f"{settings.findings_path}/findings.ocsf.jsonl"
    )
    print(f"analyst database (read-only snapshot of this run): {settings.published_path}")
    # The lag check only warns: backfills of old logs are legitimately late.
    problems = [c for c in outcome.failed_checks if not c.endswith(":ingestion_lag")]
    return EXIT_OK if outcome.success and not problems else EXIT_PARTIAL


def _run_spark(args: argparse.Namespace, settings: Settings) -> int:
    """``run --engine spark``: the Dagster job chainwatch_spark on the lake, after parsing landing
    files into it on Spark (--raw) or exporting the warehouse to it (--export)."""
    from pipelines.run import run_spark

    lake = settings.lake_path
    out = args.out or f"{lake.rstrip('/')}/out"
    if args.raw and args.export:
        raise LakeError("choose one source for the lake: --raw (landing files) or --export")
    db = settings.db_path if args.export else None
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
    _print_spark_summary(outcome.spark, out)
    return EXIT_OK


def _print_spark_summary(meta: dict, out: str) -> None:
    print(
        table(
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


def cmd_lake_export(args: argparse.Namespace) -> int:
    """Write the warehouse's canonical tables and models to a lake folder."""
    from detectors.spark.lake import export_lake, export_models

    settings = settings_for(args)
    con = open_warehouse(settings.db_path, read_only=True)
    counts = export_lake(con, settings.lake_path)
    if not args.no_models:
        counts.update(export_models(con, settings.lake_path))
    print(table(["table", "rows"], sorted(counts.items())))
    print(f"lake written to {settings.lake_path}")
    return EXIT_OK


def add_ingest(sub: argparse._SubParsersAction) -> None:
    """The `ingest` command."""
    p = sub.add_parser("ingest", help="load log files or folders into the warehouse")
    p.add_argument("paths", nargs="+", help="files or folders (gzipped files too)")
    p.add_argument(
        "--format", choices=FORMATS, help="skip content detection and parse as this format"
    )
    p.add_argument("-q", "--quiet", action="store_true")
    add_common(p, catalog=True)
    p.set_defaults(func=cmd_ingest)


def add_run(sub: argparse._SubParsersAction) -> None:
    """The `run` command, both engines."""
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
    add_common(p, catalog=True)
    p.set_defaults(func=cmd_run)


def add_lake_export(sub: argparse._SubParsersAction) -> None:
    """The `lake-export` command."""
    p = sub.add_parser(
        "lake-export",
        help="write the warehouse's canonical tables (Parquet by day) and models to a lake folder",
    )
    p.add_argument("--lake", required=True, help="lake folder")
    p.add_argument("--no-models", action="store_true", help="leave the anomaly models out")
    add_common(p)
    p.set_defaults(func=cmd_lake_export)
