"""Plumbing every command shares: exit codes, common options, settings, the warehouse sessions.

A command resolves its settings once from its arguments (:func:`settings_for`) and opens its
databases through :func:`open_warehouse` / :func:`open_published`; :func:`close_all` (called by
``main`` when the command ends) closes them and releases the run lock.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

import duckdb

from detectors.core.locking import warehouse_lock
from detectors.core.settings import Settings, load_settings
from detectors.core.warehouse import connect

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_WAREHOUSE = 0, 1, 2, 3


class UsageError(Exception):
    """Bad input a command found itself (or converted from a lazily imported module's error):
    ``main`` prints it as one line and exits with EXIT_USAGE."""


_OPENED: list[duckdb.DuckDBPyConnection] = []
_LOCKS = ExitStack()


def add_common(parser: argparse.ArgumentParser, catalog: bool = False) -> None:
    """The --db and --config options (and --catalog) of the commands that read settings."""
    parser.add_argument(
        "--db",
        help="warehouse DuckDB file (default: $CHAINWATCH_DB or data/warehouse/chainwatch.duckdb)",
    )
    parser.add_argument("--config", help="settings YAML file (default: $CHAINWATCH_CONFIG)")
    if catalog:
        parser.add_argument("--catalog", help="tool catalog YAML (default: the shipped catalog)")


def settings_for(args: argparse.Namespace) -> Settings:
    """The command's settings: its --config file, the environment, then --db/--catalog/--lake."""
    return load_settings(
        args.config,
        db_path=args.db,
        catalog_path=getattr(args, "catalog", None),
        lake_path=getattr(args, "lake", None) or None,
    )


def open_warehouse(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A warehouse connection that :func:`close_all` closes when the command ends (so the next
    command in the same process may open the file with another configuration). A writing command
    holds the warehouse's run lock until then: it refuses to start while a run holds it."""
    if not read_only:
        _LOCKS.enter_context(warehouse_lock(path))
    con = connect(path, read_only=read_only)
    _OPENED.append(con)
    return con


def open_published(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the analyst database, or a clear error if no run made it."""
    path = settings.published_path
    if not path.exists():
        raise FileNotFoundError(
            f"no published analyst database at {path}: run `chainwatch run` (or the Dagster job) first"
        )
    return open_warehouse(path, read_only=True)


def close_all() -> None:
    """Close every connection the command opened and release its run lock."""
    while _OPENED:
        _OPENED.pop().close()
    _LOCKS.close()
