"""The `chainwatch` command line: a thin layer over detectors/ (see :mod:`chainwatch.cli.app`)."""

from chainwatch.cli.app import build_parser, main
from chainwatch.cli.common import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_WAREHOUSE

__all__ = ["EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "EXIT_WAREHOUSE", "build_parser", "main"]
