"""Detection commands: detect over what is loaded, refit the anomaly models."""

from __future__ import annotations

import argparse

from chainwatch.cli.common import EXIT_OK, add_common, open_warehouse, settings_for
from chainwatch.cli.output import print_anomaly_summary, print_findings_summary, table


def cmd_detect(args: argparse.Namespace) -> int:
    """Run the detection stages; print the derived tables and a findings summary."""
    from detectors.stages import run_detection

    settings = settings_for(args)
    con = open_warehouse(settings.db_path)
    report = run_detection(con, settings)
    print("derived tables: " + ", ".join(f"{k} {v}" for k, v in report.derived.items()))
    for note in report.notes:
        print(note)
    print_anomaly_summary(con)
    print_findings_summary(con, args.top)
    return EXIT_OK


def cmd_refit(args: argparse.Namespace) -> int:
    """Reassign peer groups and train a new version of the anomaly models."""
    from detectors.anomaly.train import default_train_until, refit
    from detectors.derive.tables import build_derived_tables

    settings = settings_for(args)
    con = open_warehouse(settings.db_path)
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
        table(
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


def add_refit(sub: argparse._SubParsersAction) -> None:
    """The `refit` command."""
    p = sub.add_parser(
        "refit", help="reassign peer groups and train a new version of the anomaly models"
    )
    add_common(p)
    p.set_defaults(func=cmd_refit)


def add_detect(sub: argparse._SubParsersAction) -> None:
    """The `detect` command."""
    p = sub.add_parser("detect", help="run every detection rule over what is loaded")
    p.add_argument("--top", type=int, default=10, help="how many of the top findings to show")
    add_common(p)
    p.set_defaults(func=cmd_detect)
