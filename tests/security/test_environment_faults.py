"""Environment faults: an unreadable or vanished input file, a missing landing folder, a full disk
and a read-only warehouse folder. Each ends with a clear error naming the path, leaves no
half-loaded table behind, and the next run (the fault gone) ends as a clean run does.

Root reads and writes anything, so permission faults run the CLI as the unprivileged user
``nobody`` (``setpriv``, else ``runuser``) on files root owns; as a normal user the files' modes
are enough. The full disk is a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so writes fail with
EFBIG) on the CLI's process.
"""

from __future__ import annotations

import functools
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest

from chainwatch.cli import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_WAREHOUSE
from detectors.core.warehouse import connect
from detectors.ingest import pipeline
from detectors.ingest.pipeline import ingest_paths
from tests.conftest import sample_landing

DAYS = ("2026-11-01",)
CANONICAL = ("agent_actions", "credential_events", "task_events", "agent_spans", "rejected_events")
IS_ROOT = os.geteuid() == 0


# --- helpers ---------------------------------------------------------------------------------


@functools.cache
def unprivileged() -> tuple[tuple[str, ...] | None, str]:
    """A command prefix that runs a command without root's power over file permissions (empty
    when we are not root), or None and why no such prefix works here."""
    if not IS_ROOT:
        return (), ""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None, "there is no user 'nobody'"
    candidates = (
        ("setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"),
        ("runuser", "-u", "nobody", "--"),
    )
    reasons = []
    for prefix in candidates:
        if shutil.which(prefix[0]) is None:
            reasons.append(f"{prefix[0]} is not installed")
            continue
        probe = subprocess.run(
            [*prefix, sys.executable, "-c", "import os, duckdb; print(os.geteuid())"],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=120,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(nobody.pw_uid):
            return prefix, ""
        reasons.append(f"{prefix[0]} failed: {(probe.stderr or probe.stdout).strip()[-200:]}")
    return None, "; ".join(reasons)


def as_unprivileged() -> tuple[str, ...]:
    prefix, why = unprivileged()
    if prefix is None:
        pytest.skip(f"cannot run the CLI without root's file access: {why}")
    return prefix


def give_to_unprivileged(path: Path) -> None:
    """Let the unprivileged user write ``path`` (a folder)."""
    if IS_ROOT:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)


@pytest.fixture(scope="module")
def public():
    """A folder every user can traverse (pytest's own temp folders are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="cw-envfaults-"))
    root.chmod(0o755)
    yield root
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(stat.S_IRWXU | path.stat().st_mode)
    shutil.rmtree(root, ignore_errors=True)


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINWATCH_")}
    env.update(
        HOME=str(home),
        MPLCONFIGDIR=str(home / ".mpl"),
        PYTHONDONTWRITEBYTECODE="1",
        TMPDIR=str(home),
    )
    return env


def run_cli(
    *args: str, cwd: Path, prefix: tuple[str, ...] = (), preexec_fn=None
) -> subprocess.CompletedProcess:
    """``chainwatch ARGS`` in its own process (optionally as another user or with limits)."""
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    give_to_unprivileged(home)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "chainwatch.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(home),
        preexec_fn=preexec_fn,
        timeout=900,
    )


def state(db: Path) -> dict[str, object]:
    """Rows per table, and what each input file (by format folder and name) contributed.
    `ingest_files` logs every attempt, so it is compared by file, not by rows."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                """SELECT table_name FROM information_schema.tables
                   WHERE table_catalog = current_database() AND table_schema = 'main'
                     AND table_type = 'BASE TABLE' AND table_name <> 'ingest_files'
                   ORDER BY 1"""
            ).fetchall()
        ]
        out: dict[str, object] = {
            t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables
        }
        out["ingest_files by file"] = con.execute(
            """SELECT regexp_extract(source_file, '[^/]+/[^/]+$'), sum(loaded), sum(rejected)
               FROM ingest_files GROUP BY 1 ORDER BY 1"""
        ).fetchall()
        return out
    finally:
        con.close()


def assert_no_partial_tables(db: Path) -> None:
    """Every file is in the warehouse whole or not at all: its conservation counts balance, the
    ledger holds exactly its loaded and rejected records, and no row comes from a file the
    warehouse has no count for. A warehouse that was never created passes trivially."""
    if not db.exists():
        return
    con = duckdb.connect(str(db), read_only=True)  # it must open: never left unreadable
    try:
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        }
        if "ingest_files" not in tables:
            assert not tables & set(CANONICAL), tables
            return
        assert (
            con.execute(
                "SELECT source_file FROM ingest_files WHERE records <> loaded + rejected + duplicates"
            ).fetchall()
            == []
        )
        assert (
            con.execute(
                """WITH f AS (SELECT source_file, sum(loaded + rejected) AS n FROM ingest_files GROUP BY 1),
                        l AS (SELECT source_file, count(*) AS n FROM ingest_ledger GROUP BY 1)
                   SELECT coalesce(f.source_file, l.source_file), f.n, l.n
                   FROM f FULL JOIN l USING (source_file)
                   WHERE coalesce(f.n, 0) <> coalesce(l.n, 0)"""
            ).fetchall()
            == []
        )
        for table in CANONICAL:
            orphans = con.execute(
                f"""SELECT DISTINCT source_file FROM {table}
                    WHERE source_file NOT IN (SELECT source_file FROM ingest_files WHERE loaded + rejected > 0)"""
            ).fetchall()
            assert orphans == [], (table, orphans)
    finally:
        con.close()


def rows_from(db: Path, path: Path) -> int:
    """Rows anywhere in the warehouse that came from ``path``."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return (
            sum(
                con.execute(
                    f"SELECT count(*) FROM {t} WHERE source_file = ?", [str(path)]
                ).fetchone()[0]
                for t in (*CANONICAL, "ingest_ledger")
            )
            + con.execute(
                "SELECT count(*) FROM ingest_files WHERE source_file = ? AND loaded + rejected > 0",
                [str(path)],
            ).fetchone()[0]
        )
    finally:
        con.close()


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("chainwatch: error:")]


@pytest.fixture(scope="module")
def clean(public: Path) -> tuple[Path, Path, dict]:
    """One day of the sample in a landing folder everyone can read, the warehouse of an
    uninterrupted run over it, and that warehouse's state."""
    landing = sample_landing(public / "landing", days=DAYS)
    for path in [landing, *landing.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    db = public / "clean" / "w.duckdb"
    result = run_cli("run", "--landing", str(landing), "--db", str(db), cwd=public)
    assert result.returncode == EXIT_OK, output(result)[-3000:]
    return landing, db, state(db)


def copy_landing(clean_landing: Path, dest: Path) -> Path:
    shutil.copytree(clean_landing, dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


# --- an unreadable input file ------------------------------------------------------------------


@pytest.mark.slow
def test_an_unreadable_landing_file_is_named_and_the_next_run_recovers(public: Path, clean):
    prefix = as_unprivileged()
    clean_landing, _, expected = clean
    case = public / "unreadable"
    case.mkdir()
    landing = copy_landing(clean_landing, case / "landing")
    locked = landing / "vault" / "audit-2026-11-01.log"
    locked.chmod(0)
    wh = case / "wh"
    wh.mkdir()
    give_to_unprivileged(wh)
    db = wh / "w.duckdb"
    try:
        first = run_cli("run", "--landing", str(landing), "--db", str(db), cwd=wh, prefix=prefix)
    finally:
        locked.chmod(0o644)
    assert first.returncode == EXIT_PARTIAL, output(first)[-3000:]
    assert f"{locked}: cannot read file" in first.stderr and "Permission denied" in first.stderr
    assert "check FAILED: raw_native_events:landing_files_recognised" in first.stdout
    assert "Traceback" not in first.stderr
    assert rows_from(db, locked) == 0
    assert_no_partial_tables(db)

    second = run_cli("run", "--landing", str(landing), "--db", str(db), cwd=wh, prefix=prefix)
    assert second.returncode == EXIT_OK, output(second)[-3000:]
    assert rows_from(db, locked) > 0
    assert state(db) == expected


@pytest.mark.slow
def test_a_broken_symlink_in_the_landing_folder_is_named_and_the_next_run_recovers(
    public: Path, clean
):
    clean_landing, _, expected = clean
    case = public / "symlink"
    case.mkdir()
    landing = copy_landing(clean_landing, case / "landing")
    link = landing / "vault" / "audit-2026-11-01.log"
    moved = case / "audit-2026-11-01.log"
    link.rename(moved)
    # Log rotation moved the file the link points to (inside the landing folder).
    link.symlink_to(landing / "vault" / "rotated" / "audit-2026-11-01.log.1")
    db = case / "wh" / "w.duckdb"
    first = run_cli("run", "--landing", str(landing), "--db", str(db), cwd=case)
    assert first.returncode == EXIT_PARTIAL, output(first)[-3000:]
    assert str(link) in first.stderr, first.stderr[-3000:]
    assert_no_partial_tables(db)

    link.unlink()
    moved.rename(link)
    second = run_cli("run", "--landing", str(landing), "--db", str(db), cwd=case)
    assert second.returncode == EXIT_OK, output(second)[-3000:]
    assert state(db) == expected


@pytest.mark.parametrize("when", ["before its head is read", "before its records are read"])
def test_a_file_that_vanishes_mid_ingest_is_named_and_loaded_next_time(
    tmp_path: Path, settings, monkeypatch, when: str
):
    landing = sample_landing(tmp_path / "landing", days=DAYS)
    victim = landing / "native" / "tasks-2026-11-01.jsonl"
    away = tmp_path / "away.jsonl"
    name = "read_head" if when == "before its head is read" else "iter_units"
    original = getattr(pipeline, name)

    def vanish_then(path, *args, **kwargs):
        if Path(path) == victim and victim.exists():
            victim.rename(away)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, name, vanish_then)
    con = connect(settings.db_path)
    try:
        report = ingest_paths(con, [landing], settings)
        assert [f.source_file for f in report.errors] == [str(victim)]
        (failed,) = report.errors
        assert str(victim) in failed.error and "No such file" in failed.error
        assert report.total("loaded") > 0  # the other files are in
    finally:
        con.close()
    assert rows_from(settings.db_path, victim) == 0
    assert_no_partial_tables(settings.db_path)

    monkeypatch.undo()
    away.rename(victim)
    con = connect(settings.db_path)
    try:
        again = ingest_paths(con, [landing], settings)
    finally:
        con.close()
    assert again.errors == []
    (victim_report,) = [f for f in again.files if f.source_file == str(victim)]
    assert victim_report.loaded > 0 and victim_report.duplicates == 0
    assert_no_partial_tables(settings.db_path)


# --- a missing landing folder ------------------------------------------------------------------


@pytest.mark.slow
def test_a_missing_landing_folder_is_named_and_creates_nothing(public: Path, clean):
    clean_landing, _, expected = clean
    case = public / "missing"
    case.mkdir()
    landing = case / "landing"
    db = case / "wh" / "w.duckdb"
    first = run_cli("run", "--landing", str(landing), "--db", str(db), cwd=case)
    assert first.returncode == EXIT_USAGE, output(first)[-3000:]
    assert error_lines(first) == [
        f"chainwatch: error: landing folder {landing} does not exist or is not a folder"
    ]
    assert "Traceback" not in first.stderr
    assert not db.exists() and not db.parent.exists()

    copy_landing(clean_landing, landing)
    second = run_cli("run", "--landing", str(landing), "--db", str(db), cwd=case)
    assert second.returncode == EXIT_OK, output(second)[-3000:]
    assert state(db) == expected


# --- a full disk -------------------------------------------------------------------------------


def file_size_limit(limit: int):
    """For ``preexec_fn``: writes past ``limit`` bytes fail with EFBIG instead of killing us."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
@pytest.mark.parametrize("limit_kib", [8, 512], ids=["cannot-create", "fills-up-mid-ingest"])
def test_a_full_disk_fails_naming_the_warehouse_and_the_next_run_recovers(
    public: Path, clean, limit_kib: int
):
    clean_landing, _, expected = clean
    case = public / f"full-{limit_kib}"
    case.mkdir()
    landing = copy_landing(clean_landing, case / "landing")
    db = case / "wh" / "w.duckdb"
    first = run_cli(
        "run",
        "--landing",
        str(landing),
        "--db",
        str(db),
        cwd=case,
        preexec_fn=file_size_limit(limit_kib * 1024),
    )
    assert first.returncode not in (EXIT_OK, -signal.SIGXFSZ), output(first)[-3000:]
    assert f'Could not write file "{db}' in first.stderr, first.stderr[-3000:]
    assert "File too large" in first.stderr, first.stderr[-3000:]
    if limit_kib == 8:
        # The warehouse cannot even be created: one line, exit 3, and no half-written file
        # (which would stop every later run from opening it).
        assert first.returncode == EXIT_WAREHOUSE, output(first)[-3000:]
        (line,) = error_lines(first)
        assert line.startswith(f"chainwatch: error: cannot open warehouse {db}: "), line
        assert first.stderr.strip() == line, first.stderr[-3000:]
        assert not db.exists()
    else:
        # Dagster reports the failed step (with its stack); the run ends and says so.
        assert first.returncode == EXIT_PARTIAL, output(first)[-3000:]
        assert "FAILED" in first.stdout
    assert_no_partial_tables(db)

    second = run_cli("run", "--landing", str(landing), "--db", str(db), cwd=case)
    assert second.returncode == EXIT_OK, output(second)[-3000:]
    assert state(db) == expected


# --- a read-only warehouse folder --------------------------------------------------------------


@pytest.mark.slow
def test_a_read_only_warehouse_folder_is_exit_3_naming_the_path(public: Path, clean):
    prefix = as_unprivileged()
    clean_landing, clean_db, expected = clean
    case = public / "read-only"
    case.mkdir()
    ro = case / "wh"
    shutil.copytree(clean_db.parent, ro, ignore=shutil.ignore_patterns("*.lock"))
    for path in [ro, *ro.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    db = ro / clean_db.name
    finding = _one_finding(db)
    try:
        for args in (
            ("run", "--landing", str(clean_landing)),
            ("ingest", str(clean_landing), "-q"),
            ("detect",),
            ("refit",),
            ("triage", finding, "--status", "resolved"),
        ):
            result = run_cli(*args, "--db", str(db), cwd=case, prefix=prefix)
            assert result.returncode == EXIT_WAREHOUSE, (args, output(result)[-3000:])
            (line,) = error_lines(result)
            assert str(db) in line, (args, line)
            assert "Traceback" not in result.stderr, (args, result.stderr[-3000:])
        # Reading needs no write access: an analyst with a read-only copy still can.
        readable = run_cli("findings", "--db", str(db), cwd=case, prefix=prefix)
        assert readable.returncode == EXIT_OK, output(readable)[-3000:]
        assert state(db) == expected
    finally:
        for path in [ro, *ro.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    recovered = run_cli("run", "--landing", str(clean_landing), "--db", str(db), cwd=case)
    assert recovered.returncode == EXIT_OK, output(recovered)[-3000:]
    assert state(db) == expected


@pytest.mark.slow
def test_a_warehouse_folder_that_cannot_be_created_is_exit_3_naming_the_path(public: Path, clean):
    prefix = as_unprivileged()
    clean_landing, _, expected = clean
    case = public / "cannot-create"
    case.mkdir()
    parent = case / "locked"
    parent.mkdir(mode=0o555)
    parent.chmod(0o555)
    db = parent / "wh" / "w.duckdb"
    try:
        for args in (
            ("run", "--landing", str(clean_landing)),
            ("ingest", str(clean_landing), "-q"),
        ):
            result = run_cli(*args, "--db", str(db), cwd=case, prefix=prefix)
            assert result.returncode == EXIT_WAREHOUSE, (args, output(result)[-3000:])
            (line,) = error_lines(result)
            assert str(db) in line, (args, line)
            assert "Traceback" not in result.stderr, (args, result.stderr[-3000:])
        assert not db.parent.exists()
    finally:
        parent.chmod(0o755)
    recovered = run_cli("run", "--landing", str(clean_landing), "--db", str(db), cwd=case)
    assert recovered.returncode == EXIT_OK, output(recovered)[-3000:]
    assert state(db) == expected


def _one_finding(db: Path) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT finding_id FROM findings ORDER BY finding_id LIMIT 1"
        ).fetchone()[0]
    finally:
        con.close()
