"""The analyst database: built beside the warehouse, swapped in atomically, readable during runs."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from detectors.findings.snapshot import PUBLISHED_TABLES, VIEWS, publish_analyst_db
from pipelines.run import run_landing
from tests.conftest import sample_landing


@pytest.mark.slow
def test_a_reader_keeps_its_snapshot_while_a_run_publishes_the_next(tmp_path: Path):
    landing = sample_landing(tmp_path / "landing", days=("2026-11-01",))
    db = tmp_path / "wh.duckdb"
    assert run_landing(landing, db, refit="auto").success
    published = tmp_path / "chainwatch_published.duckdb"

    reader = duckdb.connect(str(published), read_only=True)  # an analyst, held open
    before = reader.execute(
        "SELECT (SELECT count(*) FROM tasks), (SELECT published_at FROM published_info)"
    ).fetchone()
    assert before[0] > 0

    sample_landing(landing)  # the next day's files arrive; the next run must not wait for us
    outcome = run_landing(landing, db)
    assert outcome.success
    assert "analyst_db:views_answer" not in outcome.failed_checks

    # The held connection still reads its own, complete snapshot...
    assert (
        reader.execute(
            "SELECT (SELECT count(*) FROM tasks), (SELECT published_at FROM published_info)"
        ).fetchone()
        == before
    )
    assert reader.execute("SELECT count(*) FROM findings_open").fetchone()[0] >= 0
    reader.close()
    # ...and a new one sees the new run.
    fresh = duckdb.connect(str(published), read_only=True)
    after = fresh.execute(
        "SELECT (SELECT count(*) FROM tasks), (SELECT published_at FROM published_info)"
    ).fetchone()
    fresh.close()
    assert after[0] > before[0] and after[1] > before[1]
    # nothing half-built is left beside it
    assert sorted(p.name for p in tmp_path.iterdir() if "published" in p.name) == [published.name]


def test_published_file_holds_the_tables_views_and_catalog(con, tmp_path: Path):
    con.execute(
        """INSERT INTO tasks (task_id, agent_id, start_source, end_source, status, actions,
               credentials_issued, updated_at)
           VALUES ('t1', 'a1', 'task_event', 'task_event', 'completed', 0, 0, now())"""
    )
    dest = tmp_path / "out" / "analyst.duckdb"
    report = publish_analyst_db(con, dest, product_version="1.2.3")
    assert report.path == dest and report.tables["tasks"] == 1
    reader = duckdb.connect(str(dest), read_only=True)
    names = {
        r[0]: r[1]
        for r in reader.execute(
            "SELECT table_name, table_type FROM information_schema.tables"
        ).fetchall()
    }
    assert {v: "VIEW" for v in VIEWS}.items() <= names.items()
    assert set(report.tables) <= set(names)
    assert set(report.tables) - {"rule_catalog"} <= set(PUBLISHED_TABLES)
    assert reader.execute("SELECT agent_id, tasks FROM agent_summary").fetchall() == [("a1", 1)]
    assert reader.execute("SELECT chainwatch_version FROM published_info").fetchone() == ("1.2.3",)
    reader.close()
    # the pipeline's connection is back on its own database, nothing left attached
    assert con.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1
    attached = {
        r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    assert "cw_published" not in attached
    # republishing replaces the file in one rename
    inode = os.stat(dest).st_ino
    publish_analyst_db(con, dest)
    assert os.stat(dest).st_ino != inode


def test_a_failed_publication_leaves_the_previous_file(con, tmp_path: Path, monkeypatch):
    dest = tmp_path / "analyst.duckdb"
    publish_analyst_db(con, dest, product_version="old")

    def broken(*args, **kwargs):
        raise RuntimeError("disk trouble")

    monkeypatch.setattr("detectors.findings.snapshot.run_sql", broken)
    with pytest.raises(RuntimeError, match="disk trouble"):
        publish_analyst_db(con, dest, product_version="new")
    reader = duckdb.connect(str(dest), read_only=True)
    assert reader.execute("SELECT chainwatch_version FROM published_info").fetchone() == ("old",)
    reader.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
