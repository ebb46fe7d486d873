"""Read the findings table for people: filtered listings, summaries, one finding's triage.

Every query is a file under ``sql/`` run with bound ``$name`` parameters; filters compare fixed
columns with bound values, so no value given by a user becomes SQL text.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import duckdb

from detectors.core.sqlfiles import load_sql


class Rows(NamedTuple):
    """A query's column names (known even when no row came back) and its rows."""

    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def query(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> Rows:
    """Run the one query of ``sql/<name>.sql``, binding ``params`` by name."""
    (statement,) = load_sql(name)
    cursor = con.execute(statement, params or None)
    return Rows([d[0] for d in cursor.description], cursor.fetchall())


def list_findings(
    con: duckdb.DuckDBPyConnection,
    *,
    severity: str | None = None,
    rule_id: str | None = None,
    agent_id: str | None = None,
    status: str | None = None,
    since: str | None = None,
) -> Rows:
    """Findings matching every filter given, most urgent first; None or "" leaves a filter out.

    ``since`` is a time in ISO 8601: findings last seen at or after it.
    """
    return query(
        con,
        "findings_filtered",
        severity=severity or None,
        rule_id=rule_id or None,
        agent_id=agent_id or None,
        status=status or None,
        since=since or None,
    )


def finding_ids(con: duckdb.DuckDBPyConnection, **filters: str | None) -> set[str]:
    """The ids of the findings :func:`list_findings` returns for the same filters."""
    return {r["finding_id"] for r in list_findings(con, **filters).records()}


def findings_by_rule_severity(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(rule_id, severity, findings, open, suppressed), the rules with most findings first."""
    return query(con, "findings_by_rule_severity").rows


def top_open_findings(con: duckdb.DuckDBPyConnection, limit: int) -> list[tuple]:
    """The ``limit`` most urgent open findings: (finding_id, severity, priority, rule_id, task,
    agent, detail cut to 70 characters, the first four evidence event ids joined by spaces)."""
    return query(con, "top_open_findings", limit=limit).rows


def finding_status(
    con: duckdb.DuckDBPyConnection, finding_id: str
) -> tuple[str, str | None] | None:
    """A finding's (status, triage note), or None if there is no such finding."""
    rows = query(con, "finding_triage_status", finding_id=finding_id).rows
    return rows[0] if rows else None
