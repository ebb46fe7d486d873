"""Raw-source assets: each lands one source family's files for its days in the warehouse."""

from datetime import date

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

from detectors.ingest.pipeline import files_by_format, ingest_paths, landing_files
from detectors.ingest.quality import conservation_violations
from pipelines.partitions import DAILY, SINGLE_RUN
from pipelines.resources import ChainwatchConfig, warehouse

GROUP = "raw"
CONSERVATION_CHECK = "conservation"
RECOGNISED_CHECK = "landing_files_recognised"

# Asset name -> (formats it lands, description).
SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "raw_otlp_traces": (
        ("otlp",),
        "OpenTelemetry GenAI traces (OTLP/JSON): tool calls and agent spans.",
    ),
    "raw_vault_audit": (
        ("vault",),
        "HashiCorp Vault audit log: token and lease lifecycle, secret access.",
    ),
    "raw_cloudtrail": (
        ("cloudtrail",),
        "AWS CloudTrail: STS sessions, IAM keys and the API calls made with them.",
    ),
    "raw_k8s_audit": (
        ("k8s",),
        "Kubernetes audit events: TokenRequest issuance and requests made with tokens.",
    ),
    "raw_native_events": (
        ("native", "native_csv", "native_parquet"),
        "chainwatch native records (JSON lines, CSV, Parquet): tasks, approvals, JIT credentials, actions.",
    ),
}


def partition_days(context: AssetExecutionContext) -> list[date]:
    """The UTC days this run materialises (one, or a range in a single-run backfill)."""
    return [date.fromisoformat(key) for key in context.partition_keys]


def _raw_asset(name: str, formats: tuple[str, ...], description: str):
    checks = [
        AssetCheckSpec(
            CONSERVATION_CHECK,
            asset=name,
            blocking=True,
            description="Every record of these files is loaded, rejected or counted as a duplicate.",
        ),
    ]
    if name == "raw_native_events":
        checks.append(
            AssetCheckSpec(
                RECOGNISED_CHECK,
                asset=name,
                description="Every landing file of these days is readable and of a known format.",
            )
        )

    @asset(
        name=name,
        group_name=GROUP,
        partitions_def=DAILY,
        backfill_policy=SINGLE_RUN,
        description=description,
        check_specs=checks,
        kinds={"duckdb"},
    )
    def _land(context: AssetExecutionContext, duckdb: DuckDBResource, chainwatch: ChainwatchConfig):
        days = partition_days(context)
        grouped, unrecognised = files_by_format(landing_files(chainwatch.landing_dir, days))
        files = [p for fmt in formats for p in grouped.get(fmt, [])]
        with warehouse(duckdb) as con:
            settings = chainwatch.settings(duckdb.database)
            report = ingest_paths(con, files, settings, link=False) if files else None
            violations = conservation_violations(con, [str(p) for p in files]) if files else []
        rows = report.files if report else []
        for failed in report.errors if report else []:
            context.log.error(failed.error)
        context.log.info(
            "%s: %d file(s), %d records loaded, %d rejected, %d duplicates",
            name,
            len(rows),
            sum(r.loaded for r in rows),
            sum(r.rejected for r in rows),
            sum(r.duplicates for r in rows),
        )
        yield MaterializeResult(
            metadata={
                "files": len(rows),
                "records": sum(r.records for r in rows),
                "loaded": sum(r.loaded for r in rows),
                "rejected": sum(r.rejected for r in rows),
                "duplicates": sum(r.duplicates for r in rows),
                "per_file": MetadataValue.md(_per_file_table(rows)),
            }
        )
        yield AssetCheckResult(
            check_name=CONSERVATION_CHECK,
            passed=not violations and not (report and report.errors),
            metadata={
                "violations": MetadataValue.json(violations),
                "unreadable": [f.source_file for f in (report.errors if report else [])],
            },
        )
        if name == "raw_native_events":
            yield AssetCheckResult(
                check_name=RECOGNISED_CHECK,
                passed=not unrecognised,
                severity=AssetCheckSeverity.ERROR,
                metadata={"files": MetadataValue.json([f"{p}: {why}" for p, why in unrecognised])},
            )
            for path, why in unrecognised:
                context.log.error("%s", why or path)

    return _land


def _per_file_table(rows) -> str:
    lines = [
        "| file | format | records | loaded | rejected | duplicates |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.source_file} | {r.source_format} | {r.records} | {r.loaded} | {r.rejected} | {r.duplicates} |"
        for r in rows
    ]
    return "\n".join(lines)


RAW_ASSETS = [
    _raw_asset(name, formats, description) for name, (formats, description) in SOURCES.items()
]
