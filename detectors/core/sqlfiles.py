"""Load SQL from ``sql/`` by name and run it statement by statement with bound parameters."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import duckdb

from detectors.core.resources import SQL_DIR

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@cache
def load_sql(name: str) -> tuple[str, ...]:
    """The statements of ``sql/<name>.sql``, split on semicolons that end a line."""
    text = (SQL_DIR / f"{name}.sql").read_text()
    statements = [s.strip() for s in re.split(r";\s*\n", text)]
    return tuple(s for s in statements if s and not _only_comments(s))


def _only_comments(statement: str) -> bool:
    return all(not ln.strip() or ln.strip().startswith("--") for ln in statement.splitlines())


def run_sql(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> None:
    """Execute every statement of ``sql/<name>.sql``, binding the ``$name`` parameters it uses."""
    params = params or {}
    for statement in load_sql(name):
        used = {p: params[p] for p in set(_PARAM.findall(_strip_comments(statement)))}
        con.execute(statement, used or None)


def _strip_comments(statement: str) -> str:
    return "\n".join(ln.split("--", 1)[0] for ln in statement.splitlines())
