"""Warehouse connections: session settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.core.warehouse import MEMORY_LIMIT_ENV, WarehouseError, connect


def _limit(con) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_memory_limit_from_the_environment(tmp_path: Path, monkeypatch):
    db = tmp_path / "w.duckdb"
    con = connect(db)
    default = _limit(con)
    con.close()
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "512MiB")
    for read_only in (False, True):
        con = connect(db, read_only=read_only)
        try:
            assert _limit(con) == "512.0 MiB"
            assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"
        finally:
            con.close()
    assert default != "512.0 MiB"


@pytest.mark.parametrize("value", ["lots", "3GB'; DROP TABLE tasks; --", "-1GB", "80%"])
def test_bad_memory_limit_is_refused_before_any_file_is_made(tmp_path: Path, monkeypatch, value):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, value)
    db = tmp_path / "new" / "w.duckdb"
    with pytest.raises(WarehouseError, match=MEMORY_LIMIT_ENV):
        connect(db)
    assert not db.exists()
