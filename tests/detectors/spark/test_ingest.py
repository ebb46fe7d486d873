"""Ingest on Spark: the DuckDB parsers inside Spark tasks, each record's fate decided over all
files on Spark. Against the DuckDB ingest of the same landing folder, with every format, planted
secrets, a corrupt gzip file, a file of no known format and files that are not logs."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from detectors.core.settings import Settings
from detectors.core.warehouse import prepare
from detectors.ingest.pipeline import ingest_paths
from detectors.spark.ingest import CANONICAL_OUTPUT, ingest_to_lake
from detectors.spark.lake import LakeError
from tests.security.test_secrets_everywhere import DAY, build_landing, leaks_in

pytestmark = pytest.mark.slow
FATES = ("records", "loaded", "rejected", "duplicates")


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    """(Spark report, lake, DuckDB connection with the same folder ingested, DuckDB report)."""
    root = tmp_path_factory.mktemp("spark_ingest")
    landing = build_landing(root / "landing")
    (landing / "otlp" / f"broken-{DAY}.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00not gzip")
    (landing / "native" / f"unknown-{DAY}.jsonl").write_text('{"colour": "blue"}\n')
    (landing / "native" / f".hidden-{DAY}.jsonl").write_text("not read\n")
    (landing / "native" / "notes.txt").write_text("not a log\n")
    settings = Settings()
    report = ingest_to_lake(spark, landing, root / "lake", settings)
    con = duckdb.connect()
    prepare(con)
    duck = ingest_paths(con, [landing], settings)
    yield report, root / "lake", con, duck
    con.close()


def _lake(lake: Path, table: str) -> str:
    return str(lake / table / "**" / "*.parquet")


def test_every_record_has_the_fate_duckdb_gives_it(ingested):
    report, lake, _, duck = ingested
    expected: dict[str, dict[str, int]] = {}
    for f in duck.files:
        if not f.error:
            counts = expected.setdefault(f.source_format, dict.fromkeys(FATES, 0))
            for fate in FATES:
                counts[fate] += getattr(f, fate)
    assert report.by_format == expected
    assert set(expected) >= {"otlp", "vault", "cloudtrail", "k8s", "native", "native_csv"}
    written = duckdb.execute(
        "SELECT sum(records), sum(loaded), sum(rejected), sum(duplicates) FROM read_parquet(?)",
        [_lake(lake, "ingest_files")],
    ).fetchone()
    assert written == tuple(report.total(f) for f in FATES)
    assert written[0] == written[1] + written[2] + written[3]
    assert written[2] > 0  # the planted malformed line


def test_canonical_tables_equal_duckdbs(ingested):
    _, lake, con, _ = ingested
    keys = {
        "agent_actions": "event_id, task_id, agent_id, tool, action_class, args",
        "credential_events": "event_id, event_type, credential_id, task_id",
        "task_events": "event_id, event_type, task_id",
        "agent_spans": "event_id, operation, task_id",
        "tasks": "task_id, agent_id, actions, credentials_issued",
        "rejected_events": "event_id, source_format, source_line, reason, raw_text",
        "credential_aliases": "alias_id, credential_id",
        "content_entities": "event_id, origin, argument, entity_kind, entity_hash, in_text, critical",
    }
    for table, columns in keys.items():
        duck = con.execute(f"SELECT {columns} FROM {table} ORDER BY ALL").fetchall()
        spark = duckdb.execute(
            f"SELECT {columns} FROM read_parquet(?, union_by_name = true) ORDER BY ALL",
            [_lake(lake, table)],
        ).fetchall()
        assert spark == duck, table
        assert duck or table == "credential_aliases", table


def test_unreadable_files_are_named_in_one_line_and_the_run_goes_on(ingested):
    report, _, _, duck = ingested
    assert len(report.file_errors) == 2
    unknown, broken = report.file_errors  # in order of path: native/ before otlp/
    assert f"broken-{DAY}.jsonl.gz: cannot read file" in broken
    assert f"unknown-{DAY}.jsonl: unrecognised record shape" in unknown
    assert all("\n" not in e and e.startswith("file:/") for e in report.file_errors)
    duck_errors = sorted(f.error.rsplit("/", 1)[1] for f in duck.errors)
    assert sorted(e.rsplit("/", 1)[1] for e in report.file_errors) == duck_errors
    assert report.files == len(duck.files)  # hidden files and notes.txt are not landing files


def test_no_planted_secret_reaches_the_lake(ingested):
    _, lake, _, _ = ingested
    leaks, scanned = [], 0
    for path in sorted(lake.rglob("*.parquet")):
        leaks += leaks_in(str(path), path.read_bytes())
        scanned += 1
    for table in CANONICAL_OUTPUT:
        reader = duckdb.execute(
            "SELECT * FROM read_parquet(?, union_by_name = true)", [_lake(lake, table)]
        )
        text = "\n".join(str(row) for row in reader.fetchall())
        leaks += leaks_in(table, text)
    assert scanned >= len(CANONICAL_OUTPUT)
    assert leaks == []


def test_a_rerun_replaces_the_tables_never_duplicates(spark, ingested):
    report, lake, _, _ = ingested
    again = ingest_to_lake(spark, lake.parent / "landing", lake, Settings())
    assert again.counts == report.counts
    rows = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?)", [_lake(lake, "agent_actions")]
    ).fetchone()[0]
    assert rows == report.counts["agent_actions"] > 0


def test_a_missing_or_empty_landing_folder_is_named(spark, tmp_path):
    with pytest.raises(LakeError, match=f"landing folder {tmp_path / 'nowhere'} does not exist"):
        ingest_to_lake(spark, tmp_path / "nowhere", tmp_path / "lake", Settings())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no logs here")
    with pytest.raises(LakeError, match="empty holds no landing files"):
        ingest_to_lake(spark, tmp_path / "empty", tmp_path / "lake", Settings())
    assert not (tmp_path / "lake").exists()


def test_each_parse_task_spills_to_its_own_folder(tmp_path):
    """Two tasks in one working folder must not share DuckDB's default spill file (they corrupt
    each other's: "Could not read enough bytes from file .tmp/duckdb_temp_storage...")."""
    from detectors.ingest.catalog import load_catalog
    from detectors.spark.ingest import _session

    settings = Settings()
    catalog = load_catalog(settings.catalog_path)
    one = _session(settings, catalog, str(tmp_path / "one"))
    two = _session(settings, catalog, str(tmp_path / "two"))
    try:
        folders = [
            c.execute("SELECT current_setting('temp_directory')").fetchone()[0] for c in (one, two)
        ]
    finally:
        one.close()
        two.close()
    assert folders == [str(tmp_path / "one"), str(tmp_path / "two")]
