"""Anomaly models: a scheduled refit asset, and per-partition scoring and findings that never refit."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster_duckdb import DuckDBResource

from detectors import stages
from detectors.anomaly.train import default_train_until, refit
from detectors.core.settings import Settings
from detectors.core.warehouse import scalar
from pipelines.detect.assets import chain_rules, credential_rules, task_features, task_sequences
from pipelines.partitions import DAILY, SINGLE_RUN
from pipelines.resources import ChainwatchConfig, warehouse
from pipelines.stages import stage_tags

GROUP = "anomaly"
REFIT_GROUP = "anomaly_refit"
SCORES_CHECK = "scores_in_range"


def _window_context(context: AssetExecutionContext, settings: Settings) -> stages.StageContext:
    """Stage context over the run's partitions (tasks started in the window)."""
    window = context.partition_time_window
    return stages.StageContext(
        settings, since=window.start.replace(tzinfo=None), until=window.end.replace(tzinfo=None)
    )


@asset(
    group_name=REFIT_GROUP, deps=[task_features, task_sequences], kinds={"duckdb", "scikitlearn"}
)
def anomaly_models(
    context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig
):
    """Peer groups, and per peer group a new version of its isolation forest and sequence model,
    trained on the last `window_days` days of tasks. Runs on its own schedule; scoring only reads
    the latest versions. A peer group with too little history is skipped (cold start) and logged."""
    params = chainwatch.settings(duckdb.database).anomaly
    with warehouse(duckdb) as con:
        until = default_train_until(con)
        report = refit(con, params, train_until=until)
    for model in report.models:
        if model.skipped:
            context.log.info(f"peer group {model.peer_group} skipped: {model.reason}")
    return MaterializeResult(
        metadata={
            "train_until": until.isoformat(),
            "window_days": params.window_days,
            "trained": MetadataValue.json(
                {
                    m.peer_group: {"version": m.version, "tasks": m.n_train}
                    for m in report.models
                    if not m.skipped
                }
            ),
            "skipped_cold_start": MetadataValue.json(
                {m.peer_group: m.n_train for m in report.models if m.skipped}
            ),
            "agents_per_group": MetadataValue.json(report.groups),
        }
    )


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    # The rules run before scoring, as in detectors/stages.py (STAGE_NAMES).
    deps=[task_features, task_sequences, anomaly_models, credential_rules, chain_rules],
    kinds={"duckdb"},
    tags=stage_tags("score"),
    check_specs=[
        AssetCheckSpec(
            SCORES_CHECK,
            asset="task_anomaly_scores",
            blocking=True,
            description="Every score of the partitions is finite, percentiles lie in 0..100, one row per task.",
        )
    ],
)
def task_anomaly_scores(
    context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig
):
    """Forest, baseline, sequence and fused scores of the tasks started in the partitions, with
    the latest models; never refits. Tasks of peer groups without a model are not scored."""
    ctx = _window_context(context, chainwatch.settings(duckdb.database))
    since, until = ctx.since, ctx.until
    with warehouse(duckdb) as con:
        scored = stages.run_stages(con, ctx, ("score",)).anomaly_scored
        problems = scalar(
            con,
            """SELECT count(*) - count(DISTINCT task_id)
                    + coalesce(count_if(NOT (isfinite(fused_score) AND isfinite(iforest_score)
                                             AND isfinite(baseline_score))), 0)
                    + coalesce(count_if(fused_percentile NOT BETWEEN 0 AND 100
                                        OR iforest_percentile NOT BETWEEN 0 AND 100), 0)
               FROM task_anomaly_scores WHERE started_at >= $since AND started_at < $until""",
            {"since": since, "until": until},
        )
    if not scored:
        context.log.info("no task scored: no model yet (cold start) or no task in the partitions")
    yield MaterializeResult(metadata={"scored": scored})
    yield AssetCheckResult(
        check_name=SCORES_CHECK,
        asset_key="task_anomaly_scores",
        passed=problems == 0,
        metadata={"problems": problems},
    )


@asset(
    group_name=GROUP,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    deps=[task_anomaly_scores],
    kinds={"duckdb"},
    tags=stage_tags("flag"),
)
def anomaly_findings(
    context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig
):
    """Tasks of the partitions at or above the alert percentile of their peer group, merged into
    findings (analytic type learning or statistical) with their explanation."""
    ctx = _window_context(context, chainwatch.settings(duckdb.database))
    with warehouse(duckdb) as con:
        hits = stages.run_stages(con, ctx, ("flag",)).anomaly_hits
    return MaterializeResult(
        metadata={"hits": hits, "alert_percentile": ctx.settings.anomaly.alert_percentile}
    )


ANOMALY_ASSETS = [anomaly_models, task_anomaly_scores, anomaly_findings]
