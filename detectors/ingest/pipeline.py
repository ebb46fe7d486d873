"""Ingest log files into the warehouse: detect, parse, classify, deduplicate, link, count.

Work is set-based: files of one format are parsed together by DuckDB SQL over all their records;
Python only streams bytes and runs the statements.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from detectors.core.faults import crash_point
from detectors.core.settings import Settings
from detectors.core.sqlfiles import run_sql
from detectors.ingest.catalog import Catalog, load_catalog, register_catalog
from detectors.ingest.formats import FORMATS, UnknownFormatError, detect_format
from detectors.ingest.reader import UNIT_SCHEMA, UnreadableFileError, iter_units, read_head

log = logging.getLogger(__name__)

PARSE_SQL = {
    "otlp": "parse_otlp",
    "vault": "parse_vault",
    "cloudtrail": "parse_cloudtrail",
    "k8s": "parse_k8s",
    "native": "parse_native",
    "native_csv": "parse_native",
    "native_parquet": "parse_native",
}
_DATE_IN_PATH = re.compile(r"(20\d\d)-?([01]\d)-?([0-3]\d)")
DOCUMENT_WEIGHT = 8
# What a landing folder's log files end with (expand_paths; the Spark ingest too).
LOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".log", ".csv", ".parquet", ".gz")


class IngestError(RuntimeError):
    """A problem that stops ingest of a file; the message names the file."""


@dataclass
class FileReport:
    """The conservation counts of one input file."""

    source_file: str
    source_format: str | None
    records: int = 0
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    error: str | None = None

    @property
    def balanced(self) -> bool:
        return self.records == self.loaded + self.rejected + self.duplicates


@dataclass
class IngestReport:
    """What one ingest run did, per file."""

    run_id: str
    files: list[FileReport] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def errors(self) -> list[FileReport]:
        return [f for f in self.files if f.error]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus log-looking files found under named folders (sorted, no hidden)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if (p.is_file() or (p.is_symlink() and not p.exists()))  # broken: reported
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.name.lower().endswith(LOG_SUFFIXES)
            )
        else:
            found.append(path)
    return found


def partition_day_of(path: Path) -> date | None:
    """The event day a landing file belongs to, from a date in its path (YYYY-MM-DD or YYYYMMDD)."""
    for match in reversed(list(_DATE_IN_PATH.finditer(str(path)))):
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            continue
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_pads(key: str) -> tuple[bytes, bytes]:
    """HMAC-SHA256 inner and outer pads of `key` (the cw_hash macro takes them as parameters)."""
    raw = key.encode()
    if len(raw) > 64:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[str | Path],
    settings: Settings,
    *,
    fmt: str | None = None,
    catalog: Catalog | None = None,
    link: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> IngestReport:
    """Load files (or folders of files) into the warehouse and report conservation counts per file.

    Unreadable or unrecognised files are reported with an error and skipped; bad records inside
    readable files go to ``rejected_events``. Re-ingesting the same records adds nothing.
    With ``link`` (the CLI path) credentials and tasks are linked and rebuilt in the same
    transaction; the Dagster job does that in its canonical-table assets instead.
    ``progress(message, bytes_done, bytes_total)`` is called before and after each batch of files
    of one format (the CLI draws a progress bar with it).
    """
    if fmt is not None and fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    report = IngestReport(
        run_id=datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    )
    catalog = catalog or load_catalog(settings.catalog_path)
    prepare_session(con, settings, catalog)

    batches: dict[str, list[tuple[Path, str, bool, bool]]] = {}
    for path in expand_paths(paths):
        name = str(path)
        try:
            head = read_head(path)
            file_fmt = fmt or detect_format(head)
            sha = file_sha256(path)
        except (UnreadableFileError, UnknownFormatError, OSError) as exc:
            log.error("%s", exc)
            report.files.append(FileReport(name, None, error=str(exc)))
            continue
        previous = _previous_ingest(con, sha, file_fmt)
        if previous is not None:
            report.files.append(FileReport(name, file_fmt, records=previous, duplicates=previous))
            _record_file(con, report.run_id, report.files[-1], sha, path)
            continue
        document = file_fmt not in ("native_csv", "native_parquet") and head.is_document()
        batches.setdefault(file_fmt, []).append((path, sha, document, head.compressed))

    sizes = {f[0]: _size(f[0]) for files in batches.values() for f in files}
    # A whole-file document is parsed in one piece and needs several times its size, so it
    # weighs more in a batch than the same bytes of JSON lines.
    weights = {
        f[0]: sizes[f[0]] * (DOCUMENT_WEIGHT if f[2] else 1) for fs in batches.values() for f in fs
    }
    total, done = sum(sizes.values()), 0
    for file_fmt, all_files in batches.items():
        for files in bounded_batches(all_files, weights, settings.ingest_batch_bytes):
            if progress:
                progress(f"parsing {len(files)} {file_fmt} file(s)", done, total)
            report.files.extend(_ingest_batch(con, report.run_id, file_fmt, files, settings, link))
            crash_point("ingest.after_batch")
            done += sum(sizes[f[0]] for f in files)
            if progress:
                progress(f"parsed {len(files)} {file_fmt} file(s)", done, total)
    return report


def bounded_batches(files: list, sizes: dict[Path, int], limit: int) -> Iterator[list]:
    """Consecutive groups of files of at most ``limit`` bytes together (a bigger file alone), so
    a batch's intermediate tables stay a bounded size however much is ingested at once. Batches
    are independent, like files landing on different days."""
    group: list = []
    group_bytes = 0
    for item in files:
        size = sizes[item[0]]
        if group and group_bytes + size > limit:
            yield group
            group, group_bytes = [], 0
        group.append(item)
        group_bytes += size
    if group:
        yield group


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def prepare_session(con: duckdb.DuckDBPyConnection, settings: Settings, catalog: Catalog) -> None:
    """Macros (with the hashing key), the tool catalog and lookup tables the parse SQL needs."""
    ipad, opad = hash_pads(settings.hash_key)
    run_sql(con, "ingest_macros", {"ipad": ipad, "opad": opad})
    register_catalog(con, catalog)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE cw_internal_domains AS SELECT ?::VARCHAR[] AS domains",
        [list(catalog.internal_domains)],
    )
    con.execute("CREATE OR REPLACE TEMP TABLE cw_vault_lease_ttls (prefix VARCHAR, ttl_s BIGINT)")
    if settings.vault_lease_ttls:
        con.executemany(
            "INSERT INTO cw_vault_lease_ttls VALUES (?, ?)", list(settings.vault_lease_ttls.items())
        )


def _previous_ingest(con: duckdb.DuckDBPyConnection, sha: str, fmt: str) -> int | None:
    """Records of an identical file ingested before (any name), or None if it is new."""
    row = con.execute(
        "SELECT max(records) FROM ingest_files WHERE file_sha256 = ? AND source_format = ? AND loaded + rejected > 0",
        [sha, fmt],
    ).fetchone()
    return row[0] if row and row[0] is not None else None


def _record_file(con, run_id: str, rep: FileReport, sha: str, path: Path, started=None) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute(
        "INSERT INTO ingest_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            rep.source_file,
            rep.source_format,
            sha,
            file_day(path),
            rep.records,
            rep.loaded,
            rep.rejected,
            rep.duplicates,
            started or now,
            now,
        ],
    )


def _load_units(
    con: duckdb.DuckDBPyConnection,
    fmt: str,
    files,
    settings: Settings,
    label: Callable[[Path], str],
) -> dict[str, str]:
    """Fill temp table ``units`` with every file's records (``source_file`` is ``label(path)``);
    return {label: error} for unreadable files."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE units (source_file VARCHAR, is_document BOOLEAN,
           unit_line BIGINT, unit_offset BIGINT, raw BLOB, raw_len BIGINT, unit_error VARCHAR)"""
    )
    keep = max(65536, settings.reject_text_chars * 4)
    failed: dict[str, str] = {}
    for path, _sha, document, compressed in files:
        name = label(path)
        try:
            if fmt == "native_parquet":
                con.execute(
                    """INSERT INTO units SELECT ?, false, row_number() OVER (), 0,
                           encode(to_json(t)::VARCHAR), strlen(to_json(t)::VARCHAR), NULL
                       FROM read_parquet(?) t""",
                    [name, str(path)],
                )
            elif fmt == "native_csv":
                _load_csv_units(con, path, name, compressed)
            else:
                for batch in iter_units(
                    path,
                    source_file=name,
                    document=document,
                    max_record_bytes=settings.max_record_bytes,
                    max_document_bytes=settings.max_document_bytes,
                    keep_bytes=keep,
                ):
                    arrow_batch = pa.Table.from_batches([batch], schema=UNIT_SCHEMA)  # noqa: F841 - scanned by DuckDB
                    con.execute(
                        """INSERT INTO units SELECT source_file, ?, unit_line, unit_offset, raw, raw_len, NULL
                           FROM arrow_batch""",
                        [document],
                    )
        except (UnreadableFileError, duckdb.Error, OSError) as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: cannot read file: {exc}"
            message = message.replace(str(path), name)
            log.error("%s", message)
            failed[name] = message
            con.execute("DELETE FROM units WHERE source_file = ?", [name])
    return failed


def _load_csv_units(
    con: duckdb.DuckDBPyConnection, path: Path, name: str, compressed: bool
) -> None:
    """CSV rows become JSON objects; rows DuckDB cannot split become units with their CSV error."""
    con.execute("DROP TABLE IF EXISTS cw_csv_rejects")
    con.execute("DROP TABLE IF EXISTS cw_csv_scans")
    con.execute(
        """INSERT INTO units
           SELECT ?, false, row_number() OVER () + 1, 0, encode(to_json(t)::VARCHAR), strlen(to_json(t)::VARCHAR), NULL
           FROM read_csv(?, header = true, all_varchar = true, ignore_errors = true, compression = ?,
                         store_rejects = true, rejects_table = 'cw_csv_rejects', rejects_scan = 'cw_csv_scans') t""",
        [name, str(path), "gzip" if compressed else "none"],
    )
    # DuckDB writes one reject row per problem; a bad line is one record.
    con.execute(
        """INSERT INTO units
           SELECT ?, false, line, any_value(byte_position), encode(any_value(coalesce(csv_line, ''))),
                  strlen(any_value(coalesce(csv_line, ''))),
                  'csv error: ' || string_agg(DISTINCT lower(replace(error_type::VARCHAR, '_', ' ')), ', ')
                      || ': ' || left(any_value(error_message), 200)
           FROM cw_csv_rejects GROUP BY line""",
        [name],
    )


def parse_batch(
    con: duckdb.DuckDBPyConnection,
    fmt: str,
    files,
    settings: Settings,
    *,
    run_id: str,
    started: datetime,
    label: Callable[[Path], str] = str,
) -> tuple[dict, dict[str, str]]:
    """Parse and classify one batch of ``fmt`` files into the ``p_*`` temp tables, not yet
    committed; return the statement parameters and {source file: error} for unreadable files.

    ``files`` holds (path, sha256, is_document, compressed); ``label(path)`` names a file in every
    output row (the Spark engine parses a copy of a lake file under its lake name). Needs
    ``prepare_session`` on the connection first.
    """
    params = {
        "max_record_bytes": settings.max_record_bytes,
        "max_document_bytes": settings.max_document_bytes,
        "reject_text_chars": settings.reject_text_chars,
        "args_chars": settings.args_chars,
        "content_capture": settings.content_capture,
        "content_keep_text": settings.content_keep_text,
        "content_chars": settings.content_text_chars,
        "now": started,
        "run_id": run_id,
        **_link_params(settings),
    }
    con.execute(
        "CREATE OR REPLACE TEMP TABLE batch_files (source_file VARCHAR, source_format VARCHAR, file_sha256 VARCHAR)"
    )
    if files:
        con.executemany(
            "INSERT INTO batch_files VALUES (?, ?, ?)",
            [(label(p), fmt, sha) for p, sha, _, _ in files],
        )
    failed = _load_units(con, fmt, files, settings, label)
    if failed:
        con.execute("DELETE FROM batch_files WHERE list_contains(?, source_file)", [list(failed)])
    run_sql(con, "ingest_parsed_tables")
    run_sql(con, "ingest_units", params)
    run_sql(con, PARSE_SQL[fmt], params)
    if fmt == "otlp" and settings.content_capture:
        run_sql(con, "parse_otlp_content", params)
    params["internal_domains"] = list(
        con.execute("SELECT domains FROM cw_internal_domains").fetchone()[0]
    )
    run_sql(con, "classify_actions", params)
    run_sql(con, "content_entities", params)
    return params, failed


def _ingest_batch(
    con, run_id: str, fmt: str, files, settings: Settings, link: bool
) -> list[FileReport]:
    started = datetime.now(UTC).replace(tzinfo=None)
    params, failed = parse_batch(con, fmt, files, settings, run_id=run_id, started=started)
    con.execute("BEGIN TRANSACTION")
    try:
        run_sql(con, "ingest_commit", params)
        if link:
            run_sql(con, "credential_owner")
            run_sql(con, "link_credential_events")
            run_sql(con, "link_agent_actions")
            run_sql(con, "affected_tasks_batch")
            run_sql(con, "build_tasks", params)
        crash_point("ingest.in_transaction")
        counts = con.execute(
            """SELECT source_file, count(*), count_if(fate = 'loaded'), count_if(fate = 'rejected'),
                      count_if(fate = 'duplicate')
               FROM p_fate GROUP BY source_file"""
        ).fetchall()
        by_file = {row[0]: row[1:] for row in counts}
        reports = []
        for path, sha, _, _ in files:
            if str(path) in failed:
                reports.append(FileReport(str(path), fmt, error=failed[str(path)]))
                continue
            records, loaded, rejected, duplicates = by_file.get(str(path), (0, 0, 0, 0))
            rep = FileReport(str(path), fmt, records, loaded, rejected, duplicates)
            _record_file(con, run_id, rep, sha, path, started)
            reports.append(rep)
        con.execute("COMMIT")
    except Exception:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT has rolled back already
            con.execute("ROLLBACK")
        raise
    finally:
        drop_batch_tables(con)
    return reports


_SESSION_TABLES = {"cw_key", "catalog", "cw_internal_domains", "cw_vault_lease_ttls"}


def drop_batch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Free the batch's temp tables: they hold raw (unredacted) input and can be large."""
    names = [
        row[0]
        for row in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    ]
    for name in names:
        if name not in _SESSION_TABLES:
            con.execute(f'DROP TABLE IF EXISTS temp.main."{name}"')


def _link_params(settings: Settings) -> dict:
    sts = re.compile(settings.sts_session_pattern)
    k8s = re.compile(settings.k8s_pod_pattern)
    return {
        "sts_session_pattern": settings.sts_session_pattern,
        "sts_task_group": sts.groupindex["task_id"],
        "sts_agent_group": sts.groupindex["agent_id"],
        "sts_task_tag_keys": list(settings.sts_task_tag_keys),
        "k8s_pod_pattern": settings.k8s_pod_pattern,
        "k8s_task_group": k8s.groupindex["task_id"],
        "k8s_agent_group": k8s.groupindex["agent_id"],
        "vault_task_keys": list(settings.vault_task_keys),
        "vault_agent_keys": list(settings.vault_agent_keys),
    }


def landing_files(landing_dir: str | Path, days: Iterable[date] | None = None) -> list[Path]:
    """Log files under the landing folder whose partition day is among ``days`` (all when None).

    A file's day is the date in its path, else its modification date (UTC). Links that lead
    outside the folder are skipped.
    """
    root = Path(landing_dir).resolve()
    wanted = set(days) if days is not None else None
    out = []
    for path in expand_paths([root]):
        try:
            if not path.resolve().is_relative_to(root):
                log.warning("%s: skipped, it links outside the landing folder %s", path, root)
                continue
        except OSError:
            continue
        if wanted is None or file_day(path) in wanted:
            out.append(path)
    return out


def file_day(path: Path) -> date:
    """The partition day of a landing file: a date in its path, else its modification day (UTC)."""
    day = partition_day_of(path)
    if day is None:
        day = datetime.fromtimestamp(path.stat().st_mtime, UTC).date()
    return day


def files_by_format(paths: Iterable[Path]) -> tuple[dict[str, list[Path]], list[tuple[Path, str]]]:
    """Group files by detected format; the second value lists files that could not be recognised."""
    grouped: dict[str, list[Path]] = {}
    failed: list[tuple[Path, str]] = []
    for path in paths:
        try:
            grouped.setdefault(detect_format(read_head(path)), []).append(path)
        except (UnreadableFileError, UnknownFormatError) as exc:
            failed.append((path, str(exc)))
    return grouped, failed
