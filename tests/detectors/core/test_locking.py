"""One run per warehouse: a second run refuses (or waits) with a clear message; a dead holder
releases the lock."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chainwatch.cli import EXIT_WAREHOUSE, main
from detectors.core.locking import WarehouseBusy, lock_path, warehouse_lock


def test_a_second_holder_is_refused_with_the_holder_named(tmp_path: Path):
    db = tmp_path / "w.duckdb"
    with warehouse_lock(db):
        with pytest.raises(
            WarehouseBusy, match=r"busy: another run holds .*w\.duckdb\.lock \(pid \d+"
        ):
            with warehouse_lock(db):
                pass
    with warehouse_lock(db):  # released
        pass


def test_a_waiting_run_gets_the_lock_when_the_first_ends(tmp_path: Path):
    db = tmp_path / "w.duckdb"
    got = []

    def second():
        with warehouse_lock(db, wait_s=10):
            got.append(time.monotonic())

    with warehouse_lock(db):
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(0.5)
        released = time.monotonic()
    worker.join(5)
    assert got and got[0] >= released


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path: Path):
    db = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from detectors.core.locking import warehouse_lock\n"
            f"with warehouse_lock({str(db)!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(WarehouseBusy):
        with warehouse_lock(db):
            pass
    holder.kill()  # SIGKILL: no cleanup code runs
    holder.wait()
    with warehouse_lock(db, wait_s=5):
        assert lock_path(db).exists()


def test_cli_write_commands_refuse_while_a_run_holds_the_warehouse(tmp_path: Path, capsys):
    db = tmp_path / "w.duckdb"
    with warehouse_lock(db):
        assert main(["detect", "--db", str(db)]) == EXIT_WAREHOUSE
        assert "is busy" in capsys.readouterr().err
        landing = tmp_path / "landing" / "2026-11-01"
        landing.mkdir(parents=True)
        (landing / "n.jsonl").write_text("{}\n")
        assert (
            main(["run", "--landing", str(tmp_path / "landing"), "--db", str(db)]) == EXIT_WAREHOUSE
        )
        assert "is busy" in capsys.readouterr().err
    assert main(["detect", "--db", str(db)]) == 0
