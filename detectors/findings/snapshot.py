"""The analyst database: a snapshot of the warehouse that each run builds beside it and swaps in.

DuckDB allows one writing process, so analysts never open the pipeline's warehouse. Each run copies
the tables analysts query into a new file, adds the stable views (``sql/published_views.sql``) and
the rule catalog, and renames the new file over the published one (``os.replace``, atomic on one
file system). An analyst who holds the old file open keeps reading the old snapshot (the rename
does not touch the open file); the next connection sees the new one; nobody sees half a run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml

from detectors.core.faults import crash_point
from detectors.core.sqlfiles import run_sql
from detectors.core.warehouse import table_names

# Tables copied when the warehouse has them (derived and anomaly tables appear after their runs).
PUBLISHED_TABLES: tuple[str, ...] = (
    "findings",
    "tasks",
    "task_events",
    "agent_actions",
    "credential_events",
    "credential_lifecycles",
    "task_sequences",
    "task_features",
    "argument_provenance",
    "task_anomaly_scores",
    "task_risk",
    "agent_peer_groups",
    "recommendations",
    "rejected_events",
    "ingest_files",
)
VIEWS: tuple[str, ...] = ("findings_open", "task_timeline", "agent_summary")
# Created empty when the warehouse lacks them, so the views always bind.
_EMPTY_IF_MISSING = {
    "agent_peer_groups": "agent_id VARCHAR, peer_group VARCHAR, method VARCHAR",
    "credential_lifecycles": "credential_id VARCHAR, agent_id VARCHAR, task_id VARCHAR, "
    "scopes VARCHAR[], validity_after_task_s DOUBLE",
}
_ALIAS = "cw_published"


@dataclass(frozen=True)
class PublishReport:
    """What one publication wrote."""

    path: Path
    tables: dict[str, int]  # table -> rows
    published_at: datetime
    views: dict[str, int]  # view -> rows, counted in the new file before it was swapped in


def _sql_string(value: str) -> str:
    """A SQL string literal (ATTACH takes no bound parameters); the path comes from settings."""
    return "'" + value.replace("'", "''") + "'"


def rule_catalog_table(rules: list, anomaly_meta: dict | None = None) -> pa.Table:
    """One row per detector (rule units, and the anomaly detector's metadata when given)."""
    rows = []
    for rule in rules:
        meta = rule.meta
        rows.append(
            {
                "rule_id": rule.id,
                "title": meta["title"],
                "kind": meta.get("kind"),
                "entity_type": rule.entity,
                "severity": rule.severity,
                "status": meta.get("status"),
                "analytic_type": meta.get("analytic_type", "rule"),
                "confidence": meta.get("confidence"),
                "risk_score": meta.get("risk_score"),
                "description": " ".join(str(meta.get("description", "")).split()),
                "parameters": json.dumps(rule.params, sort_keys=True, default=str),
                "frameworks": json.dumps(meta.get("frameworks"), sort_keys=True),
                "false_positives": json.dumps(meta.get("false_positives", [])),
                "runbook": " ".join(str(meta.get("runbook", "")).split()),
                "source": str(rule.path.name),
            }
        )
    if anomaly_meta:
        rows.append(
            {
                "rule_id": anomaly_meta["id"],
                "title": anomaly_meta["title"],
                "kind": "anomaly_model",
                "entity_type": anomaly_meta["entity"],
                "severity": "medium or high (from the score)",
                "status": "experimental",
                "analytic_type": "learning or statistical (from the dominant signal)",
                "confidence": anomaly_meta["confidence"],
                "risk_score": anomaly_meta["risk_score"],
                "description": " ".join(str(anomaly_meta.get("description", "")).split()),
                "parameters": json.dumps({}),
                "frameworks": json.dumps(anomaly_meta.get("frameworks"), sort_keys=True),
                "false_positives": json.dumps(anomaly_meta.get("false_positives", [])),
                "runbook": " ".join(str(anomaly_meta.get("runbook", "")).split()),
                "source": "anomaly.yaml",
            }
        )
    names = list(rows[0]) if rows else ["rule_id", "title"]
    return pa.table(
        {
            n: pa.array([r.get(n) for r in rows], pa.int64() if n == "risk_score" else pa.string())
            for n in names
        }
    )


def publish_analyst_db(
    con: duckdb.DuckDBPyConnection,
    dest: str | Path,
    *,
    rule_catalog: pa.Table | None = None,
    product_version: str = "",
) -> PublishReport:
    """Build the analyst database from the warehouse ``con`` and swap it in at ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.building")
    # Runs hold the warehouse lock, so any other half-built file is a dead run's: remove it.
    for leftover in dest.parent.glob(f".{dest.name}.*.building*"):
        leftover.unlink(missing_ok=True)
    published_at = datetime.now(UTC).replace(tzinfo=None)
    tables = sorted(table_names(con) & set(PUBLISHED_TABLES))
    counts: dict[str, int] = {}
    home = _database(con)
    con.execute(f"ATTACH {_sql_string(str(tmp))} AS {_ALIAS}")
    try:
        for table in tables:  # names from PUBLISHED_TABLES, never from input
            con.execute(f"CREATE TABLE {_ALIAS}.{table} AS SELECT * FROM main.{table}")  # noqa: S608
            counts[table] = con.execute(f"SELECT count(*) FROM {_ALIAS}.{table}").fetchone()[0]  # noqa: S608
        for table, columns in _EMPTY_IF_MISSING.items():
            if table not in counts:
                con.execute(f"CREATE TABLE {_ALIAS}.{table} ({columns})")
                counts[table] = 0
        if rule_catalog is not None:
            con.register("_rule_catalog_in", rule_catalog)
            try:
                con.execute(
                    f"""CREATE TABLE {_ALIAS}.rule_catalog AS
                        SELECT r.*, coalesce(f.findings, 0) AS findings,
                            coalesce(f.open_findings, 0) AS open_findings
                        FROM _rule_catalog_in r
                        LEFT JOIN (SELECT rule_id, count(*) AS findings,
                                       count_if(status IN ('new', 'in_progress')) AS open_findings
                                   FROM main.findings GROUP BY rule_id) f USING (rule_id)
                        ORDER BY r.rule_id"""  # noqa: S608 - fixed alias
                )
            finally:
                con.unregister("_rule_catalog_in")
            counts["rule_catalog"] = rule_catalog.num_rows
        con.execute(
            f"""CREATE TABLE {_ALIAS}.published_info AS
                SELECT $published_at::TIMESTAMP AS published_at, $version AS chainwatch_version,
                       $tables::JSON AS table_rows""",  # noqa: S608 - fixed alias
            {
                "published_at": published_at,
                "version": product_version,
                "tables": json.dumps(counts, sort_keys=True),
            },
        )
        con.execute(f"USE {_ALIAS}")
        try:
            run_sql(con, "published_views")
            # Every view must answer before the file replaces the last good one.
            views = {v: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in VIEWS}  # noqa: S608
        finally:
            con.execute(f"USE {_identifier(home)}")
        con.execute(f"CHECKPOINT {_ALIAS}")
    except BaseException:
        _detach(con, home)
        tmp.unlink(missing_ok=True)
        raise
    _detach(con, home)
    _fsync(tmp)
    crash_point("publish.before_swap")
    os.replace(tmp, dest)
    _fsync(dest.parent)
    return PublishReport(dest, counts, published_at, views)


def publish_with_settings(con: duckdb.DuckDBPyConnection, settings: Any) -> PublishReport:
    """Publish to ``settings.published_path`` with the rule catalog of the configured rules."""
    from detectors.findings.exports import product_version
    from detectors.findings.merge import ANOMALY_META_PATH
    from detectors.rules.engine import RULES_DIR, load_rules

    catalog = rule_catalog_table(
        load_rules(RULES_DIR, settings.rule_parameters),
        yaml.safe_load(ANOMALY_META_PATH.read_text()),
    )
    return publish_analyst_db(
        con, settings.published_path, rule_catalog=catalog, product_version=product_version()
    )


def _database(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_database()").fetchone()[0]


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _detach(con: duckdb.DuckDBPyConnection, home: str) -> None:
    if _database(con) != home:
        con.execute(f"USE {_identifier(home)}")
    attached = {
        r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    if _ALIAS in attached:
        con.execute(f"DETACH {_ALIAS}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
