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
    """Write a simulated agent fleet's logs in their real formats (or, with --assistants, the
    traces of assistant agents under prompt injection, content captured unless told not to)."""
    start = date.fromisoformat(args.start) if args.start else date(2026, 11, 1)
    if args.assistants:
        from chainwatch.harness.simulate.assistants import simulate_assistants

        if args.tasks < 1:
            raise UsageError("--tasks must be positive")
        print(
            simulate_assistants(
                Path(args.out),
                seed=args.seed,
                tasks=args.tasks,
                content=not args.no_content_capture,
                start=start,
            )
        )
        return EXIT_OK
    if args.no_content_capture:
        raise UsageError("--no-content-capture applies to --assistants only")
    from chainwatch.harness.simulate import simulate

    summary = simulate(
        args.out,
        seed=args.seed,
        agents=args.agents,
        days=args.days,
        actions=args.actions,
        start=start,
        anomalies=args.anomalies,
    )
    print(f"wrote a simulated fleet to {args.out}")
    print(summary)
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Precision and recall of the findings (and anomaly flags) against simulator labels; for
    content-injection labels, recall and benign false-positive rates per rule and of the queue."""
    from chainwatch.harness.evaluate import (
        CONTENT_SCENARIO,
        ContentSettings,
        EvaluationError,
        evaluate,
        evaluate_anomalies,
        evaluate_content,
        format_anomaly_evaluation,
        format_content_evaluation,
        format_evaluation,
        label_scenarios,
    )

    settings = settings_for(args)
    con = open_warehouse(settings.db_path, read_only=True)
    scenarios = label_scenarios(args.labels)  # empty if unreadable: `evaluate` then says why
    rules = anomalies = content = None
    try:
        if CONTENT_SCENARIO in scenarios:
            options = ContentSettings(args.content_rules) if args.content_rules else None
            content = evaluate_content(con, Path(args.labels), options)
        if scenarios != {CONTENT_SCENARIO}:
            rules = evaluate(con, Path(args.labels), settings)
            anomalies = (
                evaluate_anomalies(con, Path(args.labels), settings)
                if has_table(con, "task_anomaly_scores") and rules.uncovered
                else None
            )
    except EvaluationError as exc:
        raise UsageError(str(exc)) from exc
    if args.format == "json":
        out = rules.to_dict() if rules else {}
        if rules:
            out["anomaly"] = anomalies.to_dict() if anomalies else None
        if content:
            out["content"] = content.to_dict()
        print(json.dumps(out, indent=2))
        return EXIT_OK
    for text in (
        rules and format_evaluation(rules, args.format),
        anomalies and format_anomaly_evaluation(anomalies),
        content and format_content_evaluation(content, args.format),
    ):
        if text:
            print(text)
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
    p.add_argument(
        "--assistants",
        action="store_true",
        help="write assistant-agent traces under prompt injection (OTLP with content) and their "
        "labels instead of the fleet",
    )
    p.add_argument(
        "--tasks", type=int, default=400, help="with --assistants: number of tasks (default 400)"
    )
    p.add_argument(
        "--no-content-capture",
        action="store_true",
        help="with --assistants: the same tasks and ids without prompts, messages or tool results",
    )
    p.set_defaults(func=cmd_simulate)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """The `evaluate` command."""
    p = sub.add_parser("evaluate", help="precision and recall of findings against simulator labels")
    p.add_argument("--labels", required=True, help="labels.jsonl written by `chainwatch simulate`")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument(
        "--content-rules",
        type=lambda value: frozenset(filter(None, value.split(","))),
        help="comma-separated rule ids of the content-injection 'content rules only' figures",
    )
    add_common(p)
    p.set_defaults(func=cmd_evaluate)
