"""Analyst commands: a task's timeline, investigation notebooks, the HTML report, catalog gaps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chainwatch.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    add_common,
    open_published,
    open_warehouse,
    settings_for,
)
from chainwatch.cli.output import table
from detectors.analyst.views import (
    most_urgent_open_finding,
    task_findings,
    task_header,
    task_timeline,
)
from detectors.ingest.catalog import catalog_report


def cmd_show(args: argparse.Namespace) -> int:
    """Print a task's header, its timeline with evidence marks, and its findings."""
    settings = settings_for(args)
    con = open_published(settings)
    task = task_header(con, args.task_id)
    if task is None:
        print(
            f"chainwatch: error: no task {args.task_id!r} in {settings.published_path}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(
        f"task {task['task_id']}  agent {task['agent_id']}  {task['status']}  "
        f"{task['actions']} action(s)"
    )
    print(f"  {task['started_at']} .. {task['ended_at']}")
    if task["risk_score"] is not None:
        pct = task["anomaly_percentile"]
        pct_text = "not scored" if pct is None else f"{pct:.1f}"
        print(
            f"  risk {task['risk_score']}  rule findings {task['rule_findings']}  "
            f"anomaly percentile {pct_text}"
        )
    columns = ("kind", "what", "system", "action_class", "destination", "outcome", "credential")
    rows = [
        [
            ("*" if e["is_evidence"] else "") + ("!" if e["after_task_end"] else ""),
            str(e["ts"])[:23],
            *(e[c] for c in columns),
        ]
        for e in task_timeline(con, task["task_id"])
    ]
    print()
    print(
        table(
            ["", "ts", "kind", "what", "system", "class", "destination", "outcome", "credential"],
            rows,
        )
    )
    print("\n* evidence of a finding   ! after the task ended")
    findings = task_findings(con, task["task_id"])
    if findings:
        print("\nfindings:")
        print(table(["finding", "priority", "severity", "rule", "detail"], findings))
    return EXIT_OK


def cmd_investigate(args: argparse.Namespace) -> int:
    """Run the investigation notebook for a finding (or a task) and write .ipynb and HTML."""
    from detectors.analyst.investigate import run_investigation

    settings = settings_for(args)
    if not settings.published_path.exists():
        raise FileNotFoundError(
            f"no published analyst database at {settings.published_path}: run `chainwatch run` first"
        )
    ident = args.id
    if args.top:
        ident = most_urgent_open_finding(open_published(settings))
        if ident is None:
            print("no open finding to investigate")
            return EXIT_OK
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


def cmd_report(args: argparse.Namespace) -> int:
    """Write the one-page HTML report of the latest snapshot."""
    from detectors.analyst.report import write_report

    settings = settings_for(args)
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


def cmd_catalog_report(args: argparse.Namespace) -> int:
    """List the tools whose class or output trust no catalog entry decides, busiest first."""
    settings = settings_for(args)
    con = open_warehouse(settings.db_path, read_only=True)
    rows = catalog_report(con, args.limit)
    print(
        "tools whose class or output trust the catalog does not decide, busiest first"
        " (add them to your catalog):"
    )
    print(
        table(
            [
                "tool",
                "system",
                "classified_by",
                "guessed_class",
                "trust_by",
                "output_trust",
                "actions",
            ],
            rows,
        )
    )
    return EXIT_OK


def add_show(sub: argparse._SubParsersAction) -> None:
    """The `show` command."""
    p = sub.add_parser("show", help="a task's timeline in the terminal (from the analyst database)")
    p.add_argument("task_id")
    add_common(p)
    p.set_defaults(func=cmd_show)


def add_investigate(sub: argparse._SubParsersAction) -> None:
    """The `investigate` command."""
    p = sub.add_parser(
        "investigate",
        help="run the investigation notebook for a finding (or a task) and write it as .ipynb and HTML",
    )
    p.add_argument("id", nargs="?", help="a finding id (or a task id with --task)")
    p.add_argument("--task", action="store_true", help="ID is a task id")
    p.add_argument("--top", action="store_true", help="the most urgent open finding")
    p.add_argument("--out", default="investigations", help="output folder (default investigations)")
    add_common(p)
    p.set_defaults(func=cmd_investigate)


def add_report(sub: argparse._SubParsersAction) -> None:
    """The `report` command."""
    p = sub.add_parser("report", help="write one self-contained HTML report of the latest snapshot")
    p.add_argument("--out", help="HTML file (default: report.html beside the analyst database)")
    add_common(p)
    p.set_defaults(func=cmd_report)


def add_catalog_report(sub: argparse._SubParsersAction) -> None:
    """The `catalog-report` command."""
    p = sub.add_parser("catalog-report", help="list tools the catalog does not map, by count")
    p.add_argument("--limit", type=int, default=50)
    add_common(p)
    p.set_defaults(func=cmd_catalog_report)
