"""chainwatch on Apache Spark: the canonical tables from a lake path, the derived tables, the rules
and the findings, all from the same SQL as the DuckDB engine (translated by
:mod:`detectors.spark.translate`), written back as Parquet partitioned by day.

The lake layout (``docs/scale-out.md``): ``<lake>/<table>/`` for each canonical table, Parquet
(``day=YYYY-MM-DD/*.parquet``, as ``chainwatch lake-export`` writes it) or JSON lines.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

from detectors.core.settings import AnomalyParams
from detectors.core.sqlfiles import SQL_DIR
from detectors.derive.tables import DERIVED_TABLES
from detectors.rules.engine import (
    HIT_COLUMNS,
    RULE_META_COLUMNS,
    Rule,
    RuleMeta,
    bound_params,
    hits_query,
    rule_meta_of,
)
from detectors.spark.lake import LAKE_TABLES, LakeError
from detectors.spark.translate import (
    TranslationError,
    iter_statements,
    spark_schema,
    to_spark,
    translate_statements,
)
from detectors.stages import STAGE_NAMES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# The findings written to the lake: the run_findings columns DuckDB merges, in its order.
FINDING_COLUMNS = (
    "finding_id",
    "rule_id",
    "title",
    "severity",
    "risk_score",
    "confidence",
    "analytic_type",
    "entity_type",
    *HIT_COLUMNS,
    "frameworks",
    "explanation",
)


def spark_session(master: str | None = "local[2]", app_name: str = "chainwatch", **conf: str):
    """A Spark session set up as the SQL expects: UTC, and ANSI semantics like DuckDB's.

    ``master`` None leaves it to spark-submit / the cluster's defaults.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    if master and master.startswith("local"):
        # Python workers run this interpreter (its packages: scikit-learn, chainwatch itself);
        # PySpark reads the variable when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = {
        "spark.driver.memory": "2g",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        **conf,
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


@cache
def table_schema(table: str) -> str:
    """A canonical table's columns as a Spark DDL schema, read from ``sql/schema.sql``."""
    for statement in sqlglot.parse((SQL_DIR / "schema.sql").read_text(), read="duckdb"):
        if isinstance(statement, exp.Create) and statement.this.this.name == table:
            columns = [c for c in statement.this.expressions if isinstance(c, exp.ColumnDef)]
            break
    else:
        raise LakeError(f"sql/schema.sql has no table {table!r}")
    added = [  # ALTER TABLE ... ADD COLUMN after the CREATE
        s.args["actions"][0]
        for s in sqlglot.parse((SQL_DIR / "schema.sql").read_text(), read="duckdb")
        if isinstance(s, exp.Alter) and s.this.name == table
    ]
    names = {c.name for c in columns}
    columns += [c for c in added if isinstance(c, exp.ColumnDef) and c.name not in names]
    return ", ".join(f"`{c.name}` {c.args['kind'].sql(dialect='spark')}" for c in columns)


def _lake_path(lake: str | Path, table: str) -> str:
    return f"{str(lake).rstrip('/')}/{table}"


def _format_of(path: str) -> str | None:
    """parquet or json, from the files under a local folder (None when it holds none: a table
    without rows, as Spark writes one partitioned by day); remote paths are Parquet."""
    local = Path(path.removeprefix("file://"))
    if "://" in path and not path.startswith("file://"):
        return "parquet"
    if not local.exists():
        raise LakeError(f"lake table folder {path} does not exist")
    names = [p.name for p in local.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
    if not names:
        return None
    if any(n.endswith(".parquet") for n in names):
        return "parquet"
    if any(n.endswith((".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz")) for n in names):
        return "json"
    raise LakeError(f"lake table folder {path} holds no .parquet or .json(l) files")


def load_lake(spark: SparkSession, lake: str | Path) -> dict[str, int]:
    """Register each canonical table of the lake as a view; their row counts. A table folder with
    no files (only a writer's ``_SUCCESS``) is the table without rows."""
    counts = {}
    for table in LAKE_TABLES:
        path = _lake_path(lake, table)
        fmt = _format_of(path)
        reader = spark.read.schema(table_schema(table))
        if fmt is None:
            frame = spark.createDataFrame([], table_schema(table))
        elif fmt == "json":
            frame = reader.option("mode", "FAILFAST").json(path)
        else:
            frame = reader.parquet(path)
        frame.createOrReplaceTempView(table)
        counts[table] = frame.count()
    return counts


def run_statements(spark: SparkSession, name: str, params: dict[str, Any] | None = None) -> None:
    """Run the translated statements of ``sql/<name>.sql``: each built or changed table becomes a
    view over its materialised rows (the view is replaced; nothing is updated in place). Local
    checkpoints cut the lineage: a chain of cached plans over plans grows the plan text Spark
    keeps for each one until the driver runs out of memory."""
    for statement in iter_statements(
        name, params, columns=lambda table: spark.table(table).columns
    ):
        if statement.kind in ("create", "replace"):
            frame = spark.sql(statement.sql).localCheckpoint()
            frame.createOrReplaceTempView(statement.table)
        elif statement.kind == "insert":
            target = spark.table(statement.table)
            rows = spark.sql(statement.sql)
            if statement.by_name:
                rows = rows.unionByName(target.limit(0), allowMissingColumns=True)
            else:
                rows = rows.toDF(*target.columns)
            rows = rows.select([rows[c].cast(t).alias(c) for c, t in target.dtypes])
            target.unionByName(rows).localCheckpoint().createOrReplaceTempView(statement.table)
        elif statement.kind == "drop":
            spark.catalog.dropTempView(statement.table)
        else:
            spark.sql(statement.sql).collect()


def build_derived(spark: SparkSession) -> dict[str, int]:
    """The derived tables (:data:`detectors.derive.tables.DERIVED_TABLES`, in order); their row
    counts."""
    counts = {}
    for table in DERIVED_TABLES:
        run_statements(spark, table)
        counts[table] = spark.table(table).count()
    return counts


def rule_sql(rule: Rule) -> str:
    """A rule's hits query in Spark SQL (its HIT_COLUMNS), from the same SQL or YAML chain."""
    try:
        return to_spark(hits_query(rule), bound_params(rule), source=str(rule.path))
    except TranslationError:
        raise
    except Exception as exc:  # a rule error names the file already; anything else gets it
        raise TranslationError(f"{rule.path}: {exc}") from exc


def run_rules(spark: SparkSession, rules: Iterable[Rule]) -> DataFrame:
    """Every rule's hits as one frame with a ``rule_id`` column. Each rule's hits are computed
    and cached on their own: one plan holding all rules took twice as long as running them in
    turn."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    frames = []
    for rule in rules:
        try:
            frame = spark.sql(rule_sql(rule))
        except AnalysisException as exc:
            message = str(exc).splitlines()[0] if str(exc).strip() else repr(exc)
            raise TranslationError(
                f"{rule.path}: Spark cannot run the translated SQL: {message}"
            ) from exc
        started = time.perf_counter()
        frame = frame.select(F.lit(rule.id).alias("rule_id"), "*").persist()
        hits = frame.count()
        log.info("rule %s: %d hits in %.1f s", rule.id, hits, time.perf_counter() - started)
        frames.append(frame)
    if not frames:
        raise ValueError("no rules to run")
    hits = frames[0]
    for frame in frames[1:]:
        hits = hits.unionByName(frame, allowMissingColumns=True)
    return hits


def _rule_meta(spark: SparkSession, meta: Iterable[RuleMeta]) -> DataFrame:
    """``rule_meta`` for Spark: the DuckDB engine's columns (RULE_META_COLUMNS), Spark types."""
    rows = [
        (
            m.rule_id,
            m.title,
            m.severity,
            int(m.risk_score),
            m.confidence,
            m.analytic_type,
            m.entity_type,
            json.dumps(m.frameworks, sort_keys=True),
        )
        for m in meta
    ]
    return spark.createDataFrame(rows, spark_schema(RULE_META_COLUMNS))


_OVERRIDES = (
    ("severity", "STRING"),
    ("risk_score", "INT"),
    ("analytic_type", "STRING"),
    ("explanation", "STRING"),
)


def merge_findings(
    spark: SparkSession,
    hits: DataFrame,
    rules: list[Rule],
    extra_hits: DataFrame | None = None,
    extra_meta: Iterable[RuleMeta] = (),
) -> DataFrame:
    """The run's findings from the rules' ``hits`` (run_rules) and ``extra_hits`` (e.g. anomaly
    hits, described by ``extra_meta``), with the DuckDB engine's finding ids: the first statement
    of ``sql/merge_findings.sql`` (run_findings), translated. Triage state stays with the
    analysts' DuckDB database; here every finding is a fresh snapshot."""
    from pyspark.sql import functions as F

    for name, dtype in _OVERRIDES:
        # A rule's own per-hit overrides (hit_overrides) are kept; the rest are NULL.
        hits = hits.withColumn(
            name, (F.col(name) if name in hits.columns else F.lit(None)).cast(dtype)
        )
    if extra_hits is not None:
        # Like DuckDB's INSERT ... BY NAME: columns the extra hits lack are NULL.
        aligned = extra_hits.select(
            *(
                F.col(f.name).cast(f.dataType)
                if f.name in extra_hits.columns
                else F.lit(None).cast(f.dataType).alias(f.name)
                for f in hits.schema.fields
            )
        )
        hits = hits.unionByName(aligned)
    hits.createOrReplaceTempView("rule_hits")
    _rule_meta(spark, [*(rule_meta_of(r) for r in rules), *extra_meta]).createOrReplaceTempView(
        "rule_meta"
    )
    statement = translate_statements("merge_findings", first=1)[0]
    if statement.table != "run_findings":
        raise TranslationError("sql/merge_findings.sql must start by building run_findings")
    return spark.sql(statement.sql).select(*FINDING_COLUMNS)


def findings(
    spark: SparkSession,
    rules: list[Rule],
    extra_hits: DataFrame | None = None,
    extra_meta: Iterable[RuleMeta] = (),
) -> DataFrame:
    """The rules run (run_rules), then their hits merged with ``extra_hits`` (merge_findings)."""
    return merge_findings(spark, run_rules(spark, rules), rules, extra_hits, extra_meta)


@dataclass
class SparkRunReport:
    """What a Spark run read, built and wrote."""

    lake_counts: dict[str, int] = field(default_factory=dict)
    derived_counts: dict[str, int] = field(default_factory=dict)
    scored_tasks: int = 0
    refit_sampled_tasks: int = 0
    refit_trained: list[str] = field(default_factory=list)
    findings_by_rule: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


# The stages of detectors/stages.py the Spark engine runs, in the same order; ranking,
# recommendations and the analyst database stay with DuckDB (they need the triage history).
SPARK_STAGES = ("derive", "rules", "score", "flag", "export")


def run_on_spark(
    spark: SparkSession,
    lake: str | Path,
    out: str | Path,
    rules: list[Rule],
    *,
    anomaly: AnomalyParams | None = None,
    refit: str = "never",
    refit_tasks_per_agent: int = 1000,
) -> SparkRunReport:
    """Lake in; derived tables, anomaly scores and findings out as Parquet (findings partitioned by
    the day of first_seen). With ``anomaly``, tasks are scored with the models in
    ``<lake>/models`` and anomaly findings join the rule findings. ``refit`` ("always", or "auto"
    when the lake has no models; "never") first retrains those models on each agent's
    ``refit_tasks_per_agent`` most recent tasks. Stages run in the order of
    :data:`detectors.stages.STAGE_NAMES`."""
    if anomaly is not None and refit not in ("auto", "always", "never"):
        raise ValueError(f"refit must be auto, always or never, not {refit!r}")
    run = _SparkRun(spark, lake, out, rules, anomaly, refit, refit_tasks_per_agent)
    with run.clock("load"):
        run.report.lake_counts = load_lake(spark, lake)
    for stage in STAGE_NAMES:
        if stage in SPARK_STAGES:
            getattr(run, stage)()
    return run.report


@dataclass
class _SparkRun:
    """One Spark run's state, one method per stage it runs."""

    spark: SparkSession
    lake: str | Path
    out: str | Path
    rule_list: list[Rule]
    anomaly: AnomalyParams | None
    refit: str
    refit_tasks_per_agent: int
    report: SparkRunReport = field(default_factory=SparkRunReport)
    rule_hits: DataFrame | None = None
    extra_hits: DataFrame | None = None
    extra_meta: list[RuleMeta] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = _Clock(self.report.seconds)

    def derive(self) -> None:
        with self.clock("derived"):
            self.report.derived_counts = build_derived(self.spark)

    def rules(self) -> None:
        with self.clock("rules"):
            self.rule_hits = run_rules(self.spark, self.rule_list)

    def score(self) -> None:
        if self.anomaly is None:
            return
        from detectors.spark.models import models_exist, refit_on_spark, score_on_spark

        if self.refit == "always" or (
            self.refit == "auto" and not models_exist(self.spark, self.lake)
        ):
            with self.clock("models_refit"):
                refitted, self.report.refit_sampled_tasks = refit_on_spark(
                    self.spark,
                    self.lake,
                    self.anomaly,
                    max_tasks_per_agent=self.refit_tasks_per_agent,
                )
                self.report.refit_trained = refitted.trained
        with self.clock("models_score"):
            scores = score_on_spark(self.spark, self.lake, top_g=self.anomaly.top_g).persist()
            scores.createOrReplaceTempView("task_anomaly_scores")
            self.report.scored_tasks = scores.count()

    def flag(self) -> None:
        if self.anomaly is None:
            return
        from detectors.findings.merge import anomaly_meta
        from detectors.spark.models import anomaly_hits

        with self.clock("models_flag"):
            self.extra_hits = anomaly_hits(self.spark, self.anomaly).persist()
            self.extra_meta = [anomaly_meta()]

    def export(self) -> None:
        from pyspark.sql import functions as F

        with self.clock("merge"):
            found = merge_findings(
                self.spark, self.rule_hits, self.rule_list, self.extra_hits, self.extra_meta
            ).persist()
            self.report.findings_by_rule = {
                row["rule_id"]: row["count"] for row in found.groupBy("rule_id").count().collect()
            }
        with self.clock("write"):
            base = str(self.out).rstrip("/")
            scored = ["task_anomaly_scores"] if self.anomaly is not None else []
            for table in [*DERIVED_TABLES, *scored]:
                path = f"{base}/{table}"
                self.spark.table(table).write.mode("overwrite").parquet(path)
                self.report.outputs[table] = path
            path = f"{base}/findings"
            (
                found.withColumn("day", F.to_date("first_seen"))
                .write.mode("overwrite")
                .partitionBy("day")
                .parquet(path)
            )
            self.report.outputs["findings"] = path


class _Clock:
    def __init__(self, into: dict[str, float]):
        self.into = into

    def __call__(self, name: str):
        import time
        from contextlib import contextmanager

        @contextmanager
        def timed():
            started = time.perf_counter()
            yield
            self.into[name] = round(time.perf_counter() - started, 3)

        return timed()
