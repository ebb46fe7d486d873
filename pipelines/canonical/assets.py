"""Canonical tables: link credentials and actions to tasks, rebuild tasks, summarise rejects."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster_duckdb import DuckDBResource

from detectors.core.settings import Settings
from detectors.ingest.linking import link_agent_actions, link_credential_events, refresh_tasks
from detectors.ingest.quality import future_rows, ingestion_lag, schema_drift
from pipelines.ingest.assets import RAW_ASSETS, partition_days
from pipelines.partitions import DAILY, SINGLE_RUN
from pipelines.resources import ChainwatchConfig, warehouse

GROUP = "canonical"
SCHEMA_CHECK = "schema_matches"
FUTURE_CHECK = "no_future_timestamps"
LAG_CHECK = "ingestion_lag"
# Events ingested more than this long after they happened make the lag check warn.
MAX_P95_LAG_S = 26 * 3600

_RAW_KEYS = [a.key for a in RAW_ASSETS]


def _checks(name: str, *, timed: bool, lag: bool = False) -> list[AssetCheckSpec]:
    specs = [
        AssetCheckSpec(
            SCHEMA_CHECK,
            asset=name,
            blocking=True,
            description="Columns and types match sql/schema.sql.",
        )
    ]
    if timed:
        specs.append(
            AssetCheckSpec(
                FUTURE_CHECK,
                asset=name,
                blocking=True,
                description="No event time lies in the future (beyond a small tolerance).",
            )
        )
    if lag:
        specs.append(
            AssetCheckSpec(
                LAG_CHECK,
                asset=name,
                description=f"p95 delay from event to ingestion is at most {MAX_P95_LAG_S} s.",
            )
        )
    return specs


def _schema_check(con, table: str) -> AssetCheckResult:
    drift = schema_drift(con)
    return AssetCheckResult(
        check_name=SCHEMA_CHECK,
        asset_key=table,
        passed=not drift,
        metadata={"differences": MetadataValue.json(drift)},
    )


def _common_checks(con, table: str, days, settings: Settings, timed: bool):
    yield _schema_check(con, table)
    if timed:
        future = future_rows(con, days, settings.future_tolerance_s)
        yield AssetCheckResult(
            check_name=FUTURE_CHECK,
            asset_key=table,
            passed=future.get(table, 0) == 0,
            metadata={"future_rows": future.get(table, 0)},
        )


def _count(con, sql: str, params) -> int:
    return con.execute(sql, params).fetchone()[0]


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=_RAW_KEYS,
    check_specs=_checks("credential_events", timed=True),
    kinds={"duckdb"},
)
def credential_events(
    context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig
):
    """Credential issue / use / renew / revoke / expire events, each linked to its task when the
    issuing event names one (Vault metadata, STS session name or tag, bound pod, native task id)."""
    days = partition_days(context)
    with warehouse(duckdb) as con:
        linked = link_credential_events(con)
        by_type = dict(
            con.execute(
                "SELECT event_type, count(*) FROM credential_events WHERE list_contains(?, day) GROUP BY 1",
                [days],
            ).fetchall()
        )
        yield MaterializeResult(
            metadata={
                "rows": sum(by_type.values()),
                "linked_now": linked,
                "by_type": MetadataValue.json(by_type),
            }
        )
        yield from _common_checks(
            con, "credential_events", days, chainwatch.settings(duckdb.database), True
        )


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[*_RAW_KEYS, credential_events],
    check_specs=_checks("agent_actions", timed=True, lag=True),
    kinds={"duckdb"},
)
def agent_actions(
    context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig
):
    """One row per tool or API call an agent made, classified by the tool catalog and linked to
    the task of the credential it was made with when its source names no task."""
    days = partition_days(context)
    with warehouse(duckdb) as con:
        linked = link_agent_actions(con)
        rows = _count(con, "SELECT count(*) FROM agent_actions WHERE list_contains(?, day)", [days])
        unlinked = _count(
            con,
            "SELECT count(*) FROM agent_actions WHERE list_contains(?, day) AND task_id IS NULL",
            [days],
        )
        by_class = dict(
            con.execute(
                "SELECT action_class, count(*) FROM agent_actions WHERE list_contains(?, day) GROUP BY 1",
                [days],
            ).fetchall()
        )
        yield MaterializeResult(
            metadata={
                "rows": rows,
                "linked_now": linked,
                "without_task": unlinked,
                "by_action_class": MetadataValue.json(by_class),
            }
        )
        yield from _common_checks(
            con, "agent_actions", days, chainwatch.settings(duckdb.database), True
        )
        lag = ingestion_lag(con, days)
        yield AssetCheckResult(
            check_name=LAG_CHECK,
            asset_key="agent_actions",
            severity=AssetCheckSeverity.WARN,
            passed=lag["p95_s"] is None or lag["p95_s"] <= MAX_P95_LAG_S,
            metadata={k: v for k, v in lag.items() if v is not None},
        )


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[*_RAW_KEYS, agent_actions, credential_events],
    check_specs=_checks("tasks", timed=False),
    kinds={"duckdb"},
)
def tasks(context: AssetExecutionContext, duckdb: DuckDBResource):
    """One row per task: agent, start and end (explicit task events, else invoke_agent span
    bounds, else first and last activity, with a column saying which), status and approval."""
    days = partition_days(context)
    with warehouse(duckdb) as con:
        rebuilt = refresh_tasks(con, days)
        preview = con.execute(
            """SELECT task_id, agent_id, actions, started_at, end_source FROM tasks
               WHERE task_id IN (SELECT task_id FROM affected_tasks) ORDER BY actions DESC LIMIT 5"""
        ).fetchall()
        yield MaterializeResult(
            metadata={
                "rebuilt": rebuilt,
                "busiest": MetadataValue.json(
                    [
                        {
                            "task_id": t,
                            "agent_id": a,
                            "actions": n,
                            "started_at": str(s),
                            "end_source": e,
                        }
                        for t, a, n, s, e in preview
                    ]
                ),
            }
        )
        yield _schema_check(con, "tasks")


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=_RAW_KEYS,
    check_specs=_checks("rejected_events", timed=False),
    kinds={"duckdb"},
)
def rejected_events(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Every input record that could not be loaded, with its file, line, redacted text and reason."""
    days = partition_days(context)
    with warehouse(duckdb) as con:
        reasons = con.execute(
            """SELECT regexp_replace(reason, ':.*$', '') AS reason, count(*) FROM rejected_events r
               WHERE r.source_file IN (SELECT source_file FROM ingest_files WHERE list_contains(?, partition_day))
               GROUP BY 1 ORDER BY 2 DESC""",
            [days],
        ).fetchall()
        yield MaterializeResult(
            metadata={
                "rows": sum(n for _, n in reasons),
                "by_reason": MetadataValue.json(dict(reasons)),
            }
        )
        yield _schema_check(con, "rejected_events")


CANONICAL_ASSETS = [credential_events, agent_actions, tasks, rejected_events]
