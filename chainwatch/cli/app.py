"""The `chainwatch` command.

Exit codes: 0 success; 1 the command ran but some input failed (unreadable or unrecognised files,
failed asset checks); 2 bad arguments or configuration; 3 the warehouse could not be opened.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from chainwatch.cli import analyst, detect, findings, harness, ingest
from chainwatch.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    EXIT_WAREHOUSE,
    UsageError,
    close_all,
)
from detectors.core.settings import SettingsError
from detectors.core.warehouse import WarehouseError
from detectors.ingest.catalog import CatalogError
from detectors.ingest.pipeline import IngestError
from detectors.rules.engine import RuleError
from detectors.spark.lake import LakeError

__all__ = ["EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "EXIT_WAREHOUSE", "build_parser", "main"]

# The commands, in the order `chainwatch --help` lists them; each module registers its own.
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    harness.add_simulate,
    ingest.add_ingest,
    ingest.add_run,
    ingest.add_lake_export,
    detect.add_refit,
    detect.add_detect,
    findings.add_findings,
    harness.add_evaluate,
    analyst.add_show,
    findings.add_triage,
    findings.add_recommend,
    analyst.add_investigate,
    analyst.add_report,
    analyst.add_catalog_report,
)

# Errors that mean the input or the configuration is wrong: one line on stderr, exit 2.
USAGE_ERRORS: tuple[type[Exception], ...] = (
    UsageError,
    SettingsError,
    CatalogError,
    IngestError,
    FileNotFoundError,
    RuleError,
    LakeError,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="chainwatch", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
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
    except USAGE_ERRORS as exc:
        return _fail(exc, EXIT_USAGE)
    except WarehouseError as exc:
        return _fail(exc, EXIT_WAREHOUSE)
    except Exception as exc:
        from detectors.analyst.investigate import InvestigationError

        if isinstance(exc, InvestigationError | ValueError):
            return _fail(exc, EXIT_USAGE)
        raise
    finally:
        close_all()


def _fail(exc: Exception, code: int) -> int:
    print(f"chainwatch: error: {exc}", file=sys.stderr)
    return code
