"""Findings commands: list findings, triage one (then republish), least-privilege recommendations."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

import duckdb

from chainwatch.cli.common import EXIT_OK, EXIT_USAGE, add_common, open_warehouse, settings_for
from chainwatch.cli.output import table
from detectors.analyst.views import recommendations
from detectors.core.warehouse import has_table
from detectors.findings.listing import Rows, finding_ids, finding_status, list_findings


def _filters(args: argparse.Namespace) -> dict[str, str | None]:
    return {
        "severity": args.severity,
        "rule_id": args.rule,
        "agent_id": args.agent,
        "status": args.status,
        "since": args.since,
    }


def cmd_findings(args: argparse.Namespace) -> int:
    """Print the findings matching the filters as a table, JSON lines or OCSF JSON lines."""
    settings = settings_for(args)
    con = open_warehouse(settings.db_path, read_only=True)
    if args.format == "ocsf":
        _print_ocsf(con, finding_ids(con, **_filters(args)))
        return EXIT_OK
    found = list_findings(con, **_filters(args))
    if args.format == "json":
        _print_json(found)
    else:
        _print_table(found)
    return EXIT_OK


def _print_ocsf(con: duckdb.DuckDBPyConnection, ids: set[str]) -> None:
    from detectors.findings.exports import findings_to_ocsf, product_version

    for event in findings_to_ocsf(con, product_version=product_version()):
        if event["finding_info"]["uid"] in ids:
            print(json.dumps(event, sort_keys=True))


def _print_json(found: Rows) -> None:
    for record in found.records():
        record["explanation"] = json.loads(record["explanation"]) if record["explanation"] else None
        print(json.dumps(record, default=str, sort_keys=True))


def _print_table(found: Rows) -> None:
    names = found.columns
    shown = names.index("analytic_type")
    print(table(names[:shown], [[*r[:shown]] for r in found.rows]))
    for row in found.rows:
        if row[names.index("explanation")]:
            print(f"\n{row[0]} ({row[1]}): {row[names.index('detail')]}")
    print(f"\n{len(found.rows)} finding(s)")


def cmd_triage(args: argparse.Namespace) -> int:
    """Set a finding's triage status and note, then refresh the exports and the analyst database."""
    from detectors.findings.merge import set_triage
    from detectors.stages import export_and_publish

    settings = settings_for(args)
    con = open_warehouse(settings.db_path)
    if not set_triage(con, args.finding_id, args.status, args.note):
        print(f"chainwatch: error: no finding {args.finding_id!r}", file=sys.stderr)
        return EXIT_USAGE
    published = export_and_publish(con, settings).published
    status, note = finding_status(con, args.finding_id) or ("missing", None)
    print(f"{args.finding_id}: status {status}" + (f", note {note!r}" if note else ""))
    print(
        f"republished {published.path if published else '-'} and the findings exports in {settings.findings_path}"
    )
    return EXIT_OK


def cmd_recommend(args: argparse.Namespace) -> int:
    """Print the least-privilege recommendations as a table or JSON lines."""
    settings = settings_for(args)
    con = open_warehouse(settings.db_path, read_only=True)
    if not has_table(con, "recommendations"):
        raise FileNotFoundError(
            f"no recommendations table in {settings.db_path}: run `chainwatch detect` or `chainwatch run` first"
        )
    found = recommendations(con, agent_id=args.agent, category=args.category)
    if args.format == "json":
        for record in found.records():
            print(json.dumps(record, default=str, sort_keys=True))
        return EXIT_OK
    names = found.columns
    shown = [n for n in ("agent_id", "category", "item", "access", "recommendation") if n in names]
    print(table(shown, [[r[names.index(n)] for n in shown] for r in found.rows]))
    print(f"\n{len(found.rows)} recommendation(s)")
    return EXIT_OK


def _iso_time(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    return value


def add_findings(sub: argparse._SubParsersAction) -> None:
    """The `findings` command."""
    p = sub.add_parser("findings", help="list findings")
    p.add_argument("--format", choices=("table", "json", "ocsf"), default="table")
    p.add_argument("--severity", choices=("informational", "low", "medium", "high", "critical"))
    p.add_argument("--rule")
    p.add_argument("--agent")
    p.add_argument("--status", choices=("new", "in_progress", "suppressed", "resolved"))
    p.add_argument(
        "--since", type=_iso_time, help="only findings last seen at or after this time (ISO 8601)"
    )
    add_common(p)
    p.set_defaults(func=cmd_findings)


def add_triage(sub: argparse._SubParsersAction) -> None:
    """The `triage` command."""
    p = sub.add_parser(
        "triage",
        help="set a finding's triage status and note (kept across reruns), then republish",
    )
    p.add_argument("finding_id")
    p.add_argument("--status", required=True, choices=("new", "in_progress", "resolved"))
    p.add_argument("--note", help="free text kept with the finding")
    add_common(p)
    p.set_defaults(func=cmd_triage)


def add_recommend(sub: argparse._SubParsersAction) -> None:
    """The `recommend` command."""
    p = sub.add_parser(
        "recommend", help="least-privilege recommendations: unused grants and TTLs per agent"
    )
    p.add_argument("--agent", help="only this agent")
    p.add_argument("--category", choices=("scope", "access", "ttl"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_common(p)
    p.set_defaults(func=cmd_recommend)
