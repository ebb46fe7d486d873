"""Derived tables, rule families merged into `findings`, and the findings exports."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster_duckdb import DuckDBResource

from detectors import stages
from detectors.core.warehouse import scalar
from detectors.derive.tables import (
    build_argument_provenance,
    build_credential_lifecycles,
    build_task_features,
    build_task_sequences,
)
from pipelines.canonical.assets import agent_actions, credential_events, tasks
from pipelines.partitions import DAILY, SINGLE_RUN
from pipelines.resources import ChainwatchConfig, warehouse
from pipelines.stages import stage_tags

GROUP = "detect"
PUBLISH_GROUP = "publish"
FINDINGS_CHECK = "findings_well_formed"


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[credential_events, agent_actions, tasks],
    kinds={"duckdb"},
    tags=stage_tags("derive"),
)
def credential_lifecycles(context: AssetExecutionContext, duckdb: DuckDBResource):
    """One row per credential: issue, expiry, revocation, renewals, its task's end, uses (after
    the task too), distinct tasks / agents / IPs, validity left after the task, idle validity share,
    parent credential and the scopes it has beyond its parent."""
    with warehouse(duckdb) as con:
        rows = build_credential_lifecycles(con)
        by_end = dict(
            con.execute(
                "SELECT ended_by, count(*) FROM credential_lifecycles GROUP BY 1"
            ).fetchall()
        )
    return MaterializeResult(metadata={"rows": rows, "by_end": MetadataValue.json(by_end)})


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[agent_actions, tasks],
    kinds={"duckdb"},
    tags=stage_tags("derive"),
)
def task_sequences(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Per task: its actions in order (ties broken by event id), action-class path, systems,
    destinations and credentials."""
    with warehouse(duckdb) as con:
        rows = build_task_sequences(con)
    return MaterializeResult(metadata={"rows": rows})


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[agent_actions, tasks],
    kinds={"duckdb"},
    tags=stage_tags("derive"),
)
def argument_provenance(context: AssetExecutionContext, duckdb: DuckDBResource):
    """Per acting action and critical argument: where the value first appeared in its task (the
    user's request, a trusted or untrusted tool's output, the agent's history, or nowhere), from
    the keyed hashes in content_entities."""
    with warehouse(duckdb) as con:
        rows = build_argument_provenance(con)
        by_source = dict(
            con.execute("SELECT source, count(*) FROM argument_provenance GROUP BY 1").fetchall()
        )
    return MaterializeResult(metadata={"rows": rows, "by_source": MetadataValue.json(by_source)})


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[agent_actions, tasks, credential_lifecycles, argument_provenance],
    kinds={"duckdb"},
    tags=stage_tags("derive"),
)
def task_features(context: AssetExecutionContext, duckdb: DuckDBResource):
    """One numeric row per task (counts by action class, distinct tools / systems / destinations,
    sensitive reads, external egress, duration, hour, weekday, errors, denials, credentials,
    TTLs, tools and destinations new for the agent): the anomaly models' input."""
    with warehouse(duckdb) as con:
        rows = build_task_features(con)
    return MaterializeResult(metadata={"rows": rows})


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[credential_lifecycles, agent_actions, tasks],
    kinds={"duckdb"},
    tags=stage_tags("recommend"),
)
def recommendations(
    context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig
):
    """Least privilege per agent over the last 30 days: scopes granted vs used, access used per
    system (read, write, delegate and egress apart), and a TTL from observed task durations
    (p95 x 1.25) next to the TTL actually issued."""
    report = stages.DetectionReport()
    ctx = stages.StageContext(chainwatch.settings(duckdb.database))
    with warehouse(duckdb) as con:
        stages.recommend(con, ctx, report)
        rows = report.derived["recommendations"]
        by_category = dict(
            con.execute(
                "SELECT category || ':' || split_part(recommendation, ' ', 1), count(*) FROM recommendations GROUP BY 1"
            ).fetchall()
        )
    return MaterializeResult(metadata={"rows": rows, "by_kind": MetadataValue.json(by_category)})


def _family_asset(name: str, entities: tuple[str, ...], deps, description: str):
    @asset(
        name=name,
        group_name=GROUP,
        partitions_def=DAILY,
        backfill_policy=SINGLE_RUN,
        deps=deps,
        description=description,
        kinds={"duckdb"},
        tags=stage_tags("rules"),
        check_specs=[
            AssetCheckSpec(
                FINDINGS_CHECK,
                asset=name,
                blocking=True,
                description="Findings of these rules have unique ids, a known status and evidence.",
            )
        ],
    )
    def _run(context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig):
        ctx = stages.StageContext(chainwatch.settings(duckdb.database))
        report = stages.DetectionReport()
        rules = [r for r in ctx.rules if r.entity in entities]
        with warehouse(duckdb) as con:
            stages.rules(con, ctx, report, entities=entities)
            hits = report.hits
            problems = scalar(
                con,
                """SELECT count(*) - count(DISTINCT finding_id)
                        + coalesce(count_if(status NOT IN ('new', 'in_progress', 'suppressed', 'resolved')), 0)
                        + coalesce(count_if(first_seen > last_seen), 0)
                   FROM findings WHERE list_contains(?, rule_id)""",
                [[r.id for r in rules]],
            )
        yield MaterializeResult(metadata={"rules": len(rules), "hits": MetadataValue.json(hits)})
        yield AssetCheckResult(
            check_name=FINDINGS_CHECK,
            asset_key=name,
            passed=problems == 0,
            metadata={"problems": problems},
        )

    return _run


credential_rules = _family_asset(
    "credential_rules",
    ("credential",),
    [credential_lifecycles],
    "Credential rules (outlived task, used after task, never revoked, TTL above policy, reuse, sharing, "
    "new source IP, long-lived static keys, renewed past task, delegation escalation) merged into findings.",
)
chain_rules = _family_asset(
    "chain_rules",
    ("task", "agent"),
    [task_sequences, credential_lifecycles, argument_provenance],
    "Chain and task rules (declarative sequences and thresholds, baselines, scope and approval checks, "
    "argument provenance) merged into findings.",
)

DETECT_ASSETS = [
    credential_lifecycles,
    task_sequences,
    argument_provenance,
    task_features,
    recommendations,
    credential_rules,
    chain_rules,
]


PUBLISH_CHECK = "exports_match_table"


@asset(
    group_name=PUBLISH_GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[credential_rules, chain_rules, AssetKey("anomaly_findings")],
    kinds={"duckdb", "parquet"},
    tags=stage_tags("rank", "export"),
    check_specs=[
        AssetCheckSpec(
            PUBLISH_CHECK,
            asset="findings",
            blocking=True,
            description="The Parquet and OCSF exports hold exactly the findings table's rows.",
        )
    ],
)
def findings(context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig):
    """All findings (rules and anomaly models) with stable ids and kept triage, ranked by priority
    (task_risk: a rule finding on an anomalous task ranks higher), exported as Parquet partitioned
    by day and as OCSF Detection Finding (class 2004) JSON lines."""
    ctx = stages.StageContext(chainwatch.settings(duckdb.database))
    out = ctx.settings.findings_path
    with warehouse(duckdb) as con:
        report = stages.run_stages(con, ctx, ("rank", "export"))
        files = report.exported_files
        ocsf_rows = report.exported["ocsf_rows"]
        total = report.findings
        parquet_rows = (
            scalar(con, "SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]])
            if files
            else 0
        )
        by_severity = dict(
            con.execute("SELECT severity, count(*) FROM findings GROUP BY 1").fetchall()
        )
    yield MaterializeResult(
        metadata={
            "findings": total,
            "by_severity": MetadataValue.json(by_severity),
            "parquet_files": len(files),
            "ocsf_path": str(out / "findings.ocsf.jsonl"),
        }
    )
    yield AssetCheckResult(
        check_name=PUBLISH_CHECK,
        asset_key="findings",
        passed=parquet_rows == total == ocsf_rows,
        metadata={"table": total, "parquet": parquet_rows, "ocsf": ocsf_rows},
    )


ANALYST_DB_CHECK = "views_answer"


@asset(
    group_name=PUBLISH_GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[findings, recommendations],
    kinds={"duckdb"},
    tags=stage_tags("publish"),
    check_specs=[
        AssetCheckSpec(
            ANALYST_DB_CHECK,
            asset="analyst_db",
            blocking=True,
            description="The published file's views answered before the swap, with the warehouse's open findings.",
        )
    ],
)
def analyst_db(
    context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig
):
    """The analyst database (chainwatch_published.duckdb): the tables analysts query, the views
    findings_open, task_timeline, agent_summary and the rule_catalog, built as a new file and
    swapped in atomically, so readers never block a run nor see half of one."""
    ctx = stages.StageContext(chainwatch.settings(duckdb.database))
    with warehouse(duckdb) as con:
        report = stages.run_stages(con, ctx, ("publish",)).published
        assert report is not None  # the publish stage always reports
        open_findings = scalar(
            con, "SELECT count(*) FROM findings WHERE status IN ('new', 'in_progress')"
        )
    published_open = report.views["findings_open"]
    yield MaterializeResult(
        metadata={
            "path": str(report.path),
            "tables": MetadataValue.json(report.tables),
            "published_at": report.published_at.isoformat(),
        }
    )
    yield AssetCheckResult(
        check_name=ANALYST_DB_CHECK,
        asset_key="analyst_db",
        passed=published_open == open_findings,
        metadata={"open_findings": open_findings, "published_open_findings": published_open},
    )


PUBLISH_ASSETS = [findings, analyst_db]
