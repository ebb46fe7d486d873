"""Ingest on Spark: landing files in a lake path become the canonical tables.

Parsing reuses the DuckDB engine's parsers as they are: each Spark task copies its share of the
files (read by Spark, so any Hadoop filesystem works) to local disk and runs the same parse SQL in
an embedded, in-memory DuckDB. What needs every file at once — the fate of each record
(loaded, rejected or duplicate), credential aliases, linking credentials to tasks and building
tasks — runs on Spark from the same SQL files (``ingest_commit``, ``credential_owner``,
``link_*``, ``build_tasks``), translated. Every record lands in a table, the rejects or the
duplicate count, exactly as on DuckDB.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from detectors.core.settings import Settings
from detectors.core.warehouse import CANONICAL_TABLES, prepare
from detectors.ingest.catalog import Catalog, load_catalog
from detectors.ingest.formats import UnknownFormatError, detect_format
from detectors.ingest.pipeline import (
    DOCUMENT_WEIGHT,
    LOG_SUFFIXES,
    bounded_batches,
    drop_batch_tables,
    parse_batch,
    partition_day_of,
    prepare_session,
)
from detectors.ingest.reader import UnreadableFileError, read_head
from detectors.spark.lake import DAY_TABLES, LakeError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# What one parsed batch leaves for the commit, as DuckDB's parse SQL builds it.
PARSED_TABLES = (
    "p_records",
    "p_actions_classified",
    "p_creds",
    "p_aliases",
    "p_task_events",
    "p_spans",
    "p_entities",
    "p_content_text",
)
# Written to <lake>/<table>; the event tables partitioned by day. content_text (redacted captured
# text, only with content_keep_text) is for investigation and written too, like rejected_events.
CANONICAL_OUTPUT = (
    *CANONICAL_TABLES,
    "content_entities",
    "content_text",
    "credential_aliases",
    "ingest_files",
)
# Tables the commit and linking SQL read or write, empty before a full rebuild.
COMMIT_TABLES = (*CANONICAL_OUTPUT, "ingest_ledger")
FILE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_format", pa.string()),
        ("file_sha256", pa.string()),
        ("partition_day", pa.date32()),
        ("error", pa.string()),
    ]
)
PAYLOAD_DDL = "kind STRING, payload BINARY"
# Parsed rows per Arrow payload: small enough that a payload is a few MB in the JVM's heap.
ROWS_PER_PAYLOAD = 16_384


@dataclass
class SparkIngestReport:
    """What a Spark ingest found: records per fate and format, and the files it could not read."""

    files: int = 0
    by_format: dict[str, dict[str, int]] = field(default_factory=dict)
    file_errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def total(self, fate: str) -> int:
        return sum(f.get(fate, 0) for f in self.by_format.values())


def _ipc(table: pa.Table | pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue()


def _payloads(kind: str, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        if batch.num_rows:
            yield pa.RecordBatch.from_pydict({"kind": [kind], "payload": [_ipc(batch)]})


def _session(
    settings: Settings, catalog: Catalog, scratch: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB ready to parse, with the warehouse's tables, empty: the parse SQL
    looks up what earlier batches stored (content_entities names the tool of a result whose call
    came in an earlier file), and a Spark task sees no other task's files. Spills go to
    ``scratch``: parallel tasks in one working folder would otherwise share DuckDB's default spill
    file and corrupt each other's."""
    con = duckdb.connect(config={"temp_directory": scratch} if scratch else {})
    prepare(con)
    prepare_session(con, settings, catalog)
    return con


def parse_lake_files(
    batches: Iterator[pa.RecordBatch], settings: Settings, catalog: Catalog, run_id: str
) -> Iterator[pa.RecordBatch]:
    """The Spark task: binaryFile rows (path, modificationTime, length, content) in; for each
    parsed table, Arrow IPC payloads of its rows out, plus one ``file`` payload per file."""
    started = datetime.now(UTC).replace(tzinfo=None)
    with tempfile.TemporaryDirectory(prefix="chainwatch-spark-") as scratch:
        by_format: dict[str, list[tuple[Path, str, bool, bool]]] = {}
        labels: dict[Path, str] = {}
        files = []
        for batch in batches:
            for i, (name, modified, content) in enumerate(
                zip(
                    batch.column("path").to_pylist(),
                    batch.column("modificationTime").to_pylist(),
                    batch.column("content").to_pylist(),
                    strict=True,
                )
            ):
                local = Path(scratch) / f"{len(labels)}-{i}" / Path(name).name
                local.parent.mkdir()
                local.write_bytes(content)
                labels[local] = name
                day = partition_day_of(Path(name)) or _day_of(modified)
                sha = hashlib.sha256(content).hexdigest()
                try:
                    head = read_head(local)
                    fmt = detect_format(head)
                except (UnreadableFileError, UnknownFormatError) as exc:
                    files.append((name, None, sha, day, str(exc).replace(str(local), name)))
                    continue
                document = fmt not in ("native_csv", "native_parquet") and head.is_document()
                by_format.setdefault(fmt, []).append((local, sha, document, head.compressed))
                files.append((name, fmt, sha, day, None))
        errors: dict[str, str] = {}
        sizes = {f[0]: f[0].stat().st_size for group in by_format.values() for f in group}
        weights = {
            f[0]: sizes[f[0]] * (DOCUMENT_WEIGHT if f[2] else 1)
            for g in by_format.values()
            for f in g
        }
        con = _session(settings, catalog, str(Path(scratch) / "duckdb-spill"))
        try:
            for fmt, group in by_format.items():
                for chunk in bounded_batches(group, weights, settings.ingest_batch_bytes):
                    _params, failed = parse_batch(
                        con,
                        fmt,
                        chunk,
                        settings,
                        run_id=run_id,
                        started=started,
                        label=labels.__getitem__,
                    )
                    errors.update(failed)
                    for table in PARSED_TABLES:
                        reader = con.execute(f"SELECT * FROM {table}").fetch_record_batch(  # noqa: S608 - fixed names
                            ROWS_PER_PAYLOAD
                        )
                        yield from _payloads(table, reader)
                    drop_batch_tables(con)
        finally:
            con.close()
        rows = [(n, f, s, d, errors.get(n, e)) for n, f, s, d, e in files]
        if rows:
            table = pa.Table.from_pylist(
                [dict(zip(FILE_SCHEMA.names, r, strict=True)) for r in rows], schema=FILE_SCHEMA
            )
            yield pa.RecordBatch.from_pydict({"kind": ["file"], "payload": [_ipc(table)]})


def _day_of(modified) -> date:
    if isinstance(modified, datetime):
        return (
            (modified if modified.tzinfo else modified.replace(tzinfo=UTC)).astimezone(UTC).date()
        )
    return datetime.now(UTC).date()


def parsed_schemas(settings: Settings, catalog: Catalog) -> dict[str, pa.Schema]:
    """The Arrow schema of each parsed table, from DuckDB's own SQL run on no input; timestamps
    are marked UTC so Spark reads them as instants."""
    con = _session(settings, catalog)
    try:
        parse_batch(con, "native", [], settings, run_id="schema", started=datetime.now(UTC))
        return {
            t: _utc(con.execute(f"SELECT * FROM {t} LIMIT 0").to_arrow_table().schema)  # noqa: S608
            for t in PARSED_TABLES
        }
    finally:
        con.close()


def _utc(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [
            f.with_type(pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) else f
            for f in schema
        ]
    )


def _decoder(schema: pa.Schema):
    def decode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for payload in batch.column("payload").to_pylist():
                for part in pa.ipc.open_stream(payload):
                    yield part.cast(schema)

    return decode


def ingest_to_lake(
    spark: SparkSession, raw: str | Path, lake: str | Path, settings: Settings
) -> SparkIngestReport:
    """Parse the landing files under ``raw`` on Spark and write the canonical tables to ``lake``
    (``<lake>/<table>/``, Parquet, the event tables by ``day``), each replaced whole so a rerun
    never duplicates. Models under ``<lake>/models`` are left alone."""
    raw = str(raw)
    if "://" not in raw and not Path(raw).is_dir():
        raise LakeError(f"landing folder {raw} does not exist")
    report = ingest_on_spark(spark, raw, settings, load_catalog(settings.catalog_path))
    if not report.files:
        raise LakeError(f"{raw} holds no landing files ({', '.join(LOG_SUFFIXES)})")
    report.outputs = write_canonical(spark, str(lake))
    return report


def ingest_on_spark(
    spark: SparkSession, raw: str, settings: Settings, catalog: Catalog
) -> SparkIngestReport:
    """Parse every landing file under ``raw`` and build the canonical tables as temp views
    (``COMMIT_TABLES``); records per fate and format, and the files that could not be read."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from detectors.spark.engine import run_statements, table_schema

    now = datetime.now(UTC).replace(tzinfo=None)
    run_id = now.strftime("%Y%m%dT%H%M%S") + "-spark"
    files = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(raw)
        .where(_suffix_filter(F.col("path")))
    )
    parsed = files.mapInArrow(
        lambda batches: parse_lake_files(batches, settings, catalog, run_id), PAYLOAD_DDL
    ).persist(StorageLevel.DISK_ONLY)  # in memory, 10M actions' payloads ran the heap out
    try:
        schemas = parsed_schemas(settings, catalog)
        for table, schema in {**schemas, "file": FILE_SCHEMA}.items():
            frame = (
                parsed.where(F.col("kind") == table)
                .select("payload")
                .mapInArrow(_decoder(schema), from_arrow_schema(schema, prefer_timestamp_ntz=False))
            )
            frame.persist(StorageLevel.MEMORY_AND_DISK).createOrReplaceTempView(
                "parsed_files" if table == "file" else table
            )
        for table in COMMIT_TABLES:
            spark.createDataFrame([], table_schema(table)).createOrReplaceTempView(table)
        params = {"now": now, "run_id": run_id, "reject_text_chars": settings.reject_text_chars}
        run_statements(spark, "ingest_commit", params)
        run_statements(spark, "credential_owner")
        run_statements(spark, "link_credential_events")
        run_statements(spark, "credential_owner")
        run_statements(spark, "link_agent_actions")
        run_statements(spark, "affected_tasks_batch")
        run_statements(spark, "build_tasks", params)
        report = _report(spark, run_id, now)
    finally:
        parsed.unpersist()
    return report


def _suffix_filter(path):
    from pyspark.sql import functions as F

    lowered = F.lower(path)
    condition = F.lit(False)
    for suffix in LOG_SUFFIXES:
        condition = condition | lowered.endswith(suffix)
    return condition


def _report(spark: SparkSession, run_id: str, now: datetime) -> SparkIngestReport:
    """Per-file conservation counts into the ``ingest_files`` view; the run's report."""
    from pyspark.sql import functions as F

    fates = (
        spark.table("p_fate")
        .groupBy("source_file")
        .agg(
            F.count("*").alias("records"),
            F.count_if(F.col("fate") == "loaded").alias("loaded"),
            F.count_if(F.col("fate") == "rejected").alias("rejected"),
            F.count_if(F.col("fate") == "duplicate").alias("duplicates"),
        )
    )
    files = spark.table("parsed_files")
    read = files.where(F.col("error").isNull()).join(fates, "source_file", "left")
    ingest_files = read.select(
        F.lit(run_id).alias("run_id"),
        "source_file",
        "source_format",
        "file_sha256",
        "partition_day",
        *(
            F.coalesce(F.col(c), F.lit(0)).cast("bigint").alias(c)
            for c in ("records", "loaded", "rejected", "duplicates")
        ),
        F.lit(now).alias("started_at"),
        F.lit(datetime.now(UTC).replace(tzinfo=None)).alias("finished_at"),
    ).persist()
    ingest_files.createOrReplaceTempView("ingest_files")
    report = SparkIngestReport(files=files.count())
    for row in (
        ingest_files.groupBy("source_format")
        .agg(*(F.sum(c).alias(c) for c in ("records", "loaded", "rejected", "duplicates")))
        .collect()
    ):
        report.by_format[row["source_format"]] = {
            c: int(row[c]) for c in ("records", "loaded", "rejected", "duplicates")
        }
    report.file_errors = [
        row["error"]
        for row in files.where(F.col("error").isNotNull()).orderBy("source_file").collect()
    ]
    for message in report.file_errors:
        log.error("%s", message)
    for table in CANONICAL_OUTPUT:
        report.counts[table] = spark.table(table).count()
    return report


def write_canonical(spark: SparkSession, out: str) -> dict[str, str]:
    """Write the canonical tables (event tables partitioned by day) under ``out``; their paths.
    A table without rows is one file of its schema (partitioned, Spark would write no file)."""
    paths = {}
    for table in CANONICAL_OUTPUT:
        path = f"{out.rstrip('/')}/{table}"
        frame = spark.table(table)
        if table in DAY_TABLES and frame.isEmpty():
            frame.coalesce(1).write.mode("overwrite").parquet(path)
        else:
            writer = frame.write.mode("overwrite")
            if table in DAY_TABLES:
                writer = writer.partitionBy("day")
            writer.parquet(path)
        paths[table] = path
    return paths
