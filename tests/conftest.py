"""Shared fixtures: a temporary warehouse and a helper that ingests hand-written records."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import jsonschema
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from detectors.core.settings import Settings, load_settings
from detectors.core.warehouse import connect
from detectors.findings.exports import OCSF_VERSION
from detectors.ingest.pipeline import IngestReport, ingest_paths

TEST_KEY = "test-hash-key"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a warehouse in a temporary folder, with a fixed hash key."""
    return load_settings(db_path=tmp_path / "wh" / "chainwatch.duckdb", hash_key=TEST_KEY)


@pytest.fixture
def con(settings: Settings):
    connection = connect(settings.db_path)
    yield connection
    connection.close()


def write_lines(path: Path, records: list, *, compress: bool = False) -> Path:
    """Write records as JSON lines (dicts/lists are dumped; str/bytes written as they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = []
    for rec in records:
        if isinstance(rec, bytes):
            chunks.append(rec)
        elif isinstance(rec, str):
            chunks.append(rec.encode())
        else:
            chunks.append(json.dumps(rec).encode())
    data = b"\n".join(chunks) + b"\n"
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def native_task(task: str, agent: str, start: str, end: str) -> list[dict]:
    """Native start and end events of a completed task."""
    return [
        {
            "record_type": "task",
            "event_id": f"{task}-s",
            "ts": start,
            "event": "start",
            "task_id": task,
            "agent_id": agent,
        },
        {
            "record_type": "task",
            "event_id": f"{task}-e",
            "ts": end,
            "event": "end",
            "task_id": task,
            "status": "completed",
        },
    ]


def write_json(path: Path, document, *, indent: int | None = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=indent))
    return path


def counts(report: IngestReport) -> list[tuple[int, int, int, int]]:
    """(records, loaded, rejected, duplicates) per file of an ingest report."""
    return [(f.records, f.loaded, f.rejected, f.duplicates) for f in report.files]


class Ingester:
    """Ingest files into the test warehouse and query it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, settings: Settings, tmp_path: Path):
        self.con, self.settings, self.tmp_path = con, settings, tmp_path

    def files(self, *paths: Path, fmt: str | None = None, **overrides) -> IngestReport:
        settings = self.settings.with_overrides(**overrides) if overrides else self.settings
        return ingest_paths(self.con, list(paths), settings, fmt=fmt)

    def lines(self, name: str, records: list, **kwargs) -> IngestReport:
        compress = kwargs.pop("compress", False)
        return self.files(
            write_lines(self.tmp_path / "in" / name, records, compress=compress), **kwargs
        )

    def document(self, name: str, document, **kwargs) -> IngestReport:
        return self.files(write_json(self.tmp_path / "in" / name, document), **kwargs)

    def rows(self, sql: str, params=None) -> list[dict]:
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def one(self, sql: str, params=None):
        return self.con.execute(sql, params or []).fetchone()[0]

    def stored_text(self) -> str:
        """Every VARCHAR (and VARCHAR[]) value of every warehouse table, as one text."""
        columns = self.rows(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_catalog = current_database() AND table_schema = 'main'
                 AND data_type IN ('VARCHAR', 'VARCHAR[]')"""
        )
        assert len(columns) > 20
        values = []
        for col in columns:
            sql = f'SELECT "{col["column_name"]}"::VARCHAR FROM "{col["table_name"]}"'  # noqa: S608 - names from information_schema
            values.extend(v for (v,) in self.con.execute(sql).fetchall() if v is not None)
        return "\n".join(values)

    def cred_id(self, namespace: str, raw: str) -> str:
        """The keyed hash chainwatch stores for a raw credential identifier."""
        import hashlib
        import hmac

        return (
            "cred_"
            + hmac.new(
                self.settings.hash_key.encode(), f"{namespace}:{raw}".encode(), hashlib.sha256
            ).hexdigest()[:32]
        )


@pytest.fixture
def ingest(con, settings, tmp_path) -> Ingester:
    return Ingester(con, settings, tmp_path)


@pytest.fixture(scope="session")
def validator() -> jsonschema.Draft202012Validator:
    """JSON schema of OCSF class detection_finding, built offline from the bundled OCSF export."""
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION)).get_class_schema(
        "detection_finding"
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
SAMPLE_SOURCES = ("otlp", "vault", "cloudtrail", "native")


def sample_landing(dest: Path, days: tuple[str, ...] | None = None) -> Path:
    """Copy the committed sample's log folders into ``dest`` (only files of ``days``, YYYYMMDD or
    YYYY-MM-DD in their names, when given)."""
    for source in SAMPLE_SOURCES:
        for path in sorted((SAMPLES / source).iterdir()):
            if days is None or any(d in path.name for d in days):
                target = dest / source / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    return dest


@pytest.fixture(scope="session")
def published_sample(tmp_path_factory) -> Path:
    """The analyst database the real Dagster job publishes from the committed sample (models
    refit on the first run), built once per test session; open it read-only."""
    from pipelines.run import run_landing

    root = tmp_path_factory.mktemp("published_sample")
    outcome = run_landing(sample_landing(root / "landing"), root / "wh.duckdb", refit="auto")
    assert outcome.success, outcome.failed_checks
    return root / "chainwatch_published.duckdb"


def pytest_collection_modifyitems(config, items):
    """Under `make test` (pytest-xdist, --dist loadgroup): a test file runs whole on one worker, and
    the Spark tests, which share one Spark session and its temporary views, all on the same one."""
    for item in items:
        path = Path(item.path)
        group = "spark" if "spark" in path.parent.parts else str(path)
        item.add_marker(pytest.mark.xdist_group(group))
