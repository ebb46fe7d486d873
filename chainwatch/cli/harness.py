"""Test-harness commands: simulate a fleet's logs, evaluate findings against its labels.

``chainwatch.harness`` (and scikit-learn with it) is imported inside the handlers only, so the
other commands never load it; :func:`cmd_evaluate` turns its EvaluationError into a UsageError.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from chainwatch.cli.common import EXIT_OK, UsageError, add_common, open_warehouse, settings_for
from detectors.core.warehouse import has_table


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write a simulated agent fleet's logs in their real formats."""
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Precision and recall of the findings (and anomaly flags) against simulator labels."""
    from chainwatch.harness.evaluate import (
        EvaluationError,
        evaluate,
        evaluate_anomalies,
        format_anomaly_evaluation,
        format_evaluation,
    )

    settings = settings_for(args)
    con = open_warehouse(settings.db_path, read_only=True)
    try:
        rules = evaluate(con, Path(args.labels), settings)
        anomalies = (
            evaluate_anomalies(con, Path(args.labels), settings)
            if has_table(con, "task_anomaly_scores") and rules.uncovered
            else None
        )
    except EvaluationError as exc:
        raise UsageError(str(exc)) from exc
    if args.format == "json":
        out = rules.to_dict()
        out["anomaly"] = anomalies.to_dict() if anomalies else None
        print(json.dumps(out, indent=2))
    else:
        print(format_evaluation(rules, args.format))
        if anomalies:
            print(format_anomaly_evaluation(anomalies))
    return EXIT_OK


def add_simulate(sub: argparse._SubParsersAction) -> None:
    """The `simulate` command."""
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


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """The `evaluate` command."""
    p = sub.add_parser("evaluate", help="precision and recall of findings against simulator labels")
    p.add_argument("--labels", required=True, help="labels.jsonl written by `chainwatch simulate`")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_common(p)
    p.set_defaults(func=cmd_evaluate)
