"""What ships is what runs: build the wheel, install it in a fresh venv outside the repository,
and run the main path (simulate -> run -> findings) with the installed `chainwatch` script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("detectors", "pipelines", "chainwatch")
SHIPPED = "detectors/_shipped"
FLEET = "--seed 3 --agents 6 --days 1 --actions 400 --start 2026-11-01".split()

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """The environment minus anything that could put the checkout on sys.path or point the CLI
    at another warehouse or configuration."""
    drop = ("PYTHON", "CHAINWATCH_", "DAGSTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.pop("VIRTUAL_ENV", None)
    return env


def _run(args: list[str | Path], cwd: Path, timeout: float) -> str:
    """Run a command outside the checkout; its stdout, once it has exited 0."""
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{done.args} exited {done.returncode}\n{done.stderr[-4000:]}"
    return done.stdout


def _repo_files(folder: str, *suffixes: str) -> set[str]:
    """Files of the checkout under `folder` (hidden and cache folders left out, as git does)."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / folder).rglob("*")
        if p.is_file()
        and p.suffix in suffixes
        and not any(part.startswith((".", "__pycache__")) for part in p.parts)
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the checkout (pip fetches hatchling into an isolated build env)."""
    out = tmp_path_factory.mktemp("dist")
    build = "wheel --no-deps --disable-pip-version-check -q -w".split()
    _run([sys.executable, "-m", "pip", *build, out, ROOT], cwd=out, timeout=600)
    (built,) = out.glob("chainwatch-*.whl")
    return built


def test_wheel_carries_the_sql_notebooks_and_metadata(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"{SHIPPED}/sql/schema.sql",
        f"{SHIPPED}/notebooks/investigate_task.ipynb",
        "detectors/ingest/catalog/default.yaml",
        "detectors/anomaly/anomaly.yaml",
    }
    expected |= {f"{SHIPPED}/{f}" for f in _repo_files("sql", ".sql")}
    expected |= {f"{SHIPPED}/{f}" for f in _repo_files("notebooks", ".ipynb")}
    expected |= _repo_files("detectors/rules/library", ".yaml", ".sql")
    # Every module and data file of the three packages.
    for package in PACKAGES:
        expected |= _repo_files(package, ".py", ".yaml", ".sql")
    assert sorted(expected - names) == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.split("/")[0] in ("sql", "notebooks", "tests", "data")]


def _known_rule_ids(wheel: Path) -> set[str]:
    """Rule ids as the wheel ships them: the library's metadata files and the anomaly detector."""
    with zipfile.ZipFile(wheel) as whl:
        metadata = [
            n
            for n in whl.namelist()
            if n.startswith("detectors/rules/library/")
            and n.endswith(".yaml")
            and not n.endswith(".cases.yaml")
        ]
        metadata.append("detectors/anomaly/anomaly.yaml")
        return {yaml.safe_load(whl.read(n))["id"] for n in metadata}


def test_installed_wheel_runs_the_main_path(wheel: Path, tmp_path: Path):
    venv, work = tmp_path / "venv", tmp_path / "outside"
    work.mkdir()
    assert not venv.is_relative_to(ROOT) and not work.is_relative_to(ROOT)
    # A venv without its own pip (faster); this interpreter's pip installs into it. Dependencies
    # come from pip's cache (or the index) at the versions the wheel's metadata asks for.
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work, timeout=120)
    python, chainwatch = venv / "bin" / "python", venv / "bin" / "chainwatch"
    install = "install -q --disable-pip-version-check --no-compile --no-warn-script-location"
    _run(
        [sys.executable, "-m", "pip", "--python", python, *install.split(), wheel],
        cwd=work,
        timeout=900,
    )

    # The installed copy is the one that runs, with its SQL and notebooks inside it.
    probe = (
        "import json, chainwatch, detectors, pipelines\n"
        "from detectors.core.resources import NOTEBOOKS_DIR, SQL_DIR\n"
        "print(json.dumps([m.__file__ for m in (chainwatch, detectors, pipelines)]"
        " + [str(SQL_DIR), str(NOTEBOOKS_DIR)]))\n"
    )
    located = json.loads(_run([python, "-c", probe], cwd=work, timeout=120))
    site = venv.resolve()
    for where in located:
        assert Path(where).resolve().is_relative_to(site), where
        assert not Path(where).resolve().is_relative_to(ROOT), where

    landing, db = tmp_path / "landing", tmp_path / "wh" / "chainwatch.duckdb"
    _run([chainwatch, "simulate", "--out", landing, *FLEET], cwd=work, timeout=300)
    # The labels are the simulator's answer key, not a log: a landing folder never holds them
    # (left there, `run` reports an unrecognised file and exits 1).
    shutil.move(landing / "labels.jsonl", tmp_path / "labels.jsonl")
    ran = _run([chainwatch, "run", "--landing", landing, "--db", db], cwd=work, timeout=600)
    assert "chainwatch_ingest" in ran and "success" in ran
    listed = _run([chainwatch, "findings", "--db", db, "--format", "json"], cwd=work, timeout=300)
    findings = [json.loads(line) for line in listed.splitlines() if line.strip()]
    assert len(findings) >= 1
    assert {f["rule_id"] for f in findings} <= _known_rule_ids(wheel)
    # Commands write where they are told, never into the directory they run from.
    leftovers = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    assert not leftovers, f"written into the working directory: {leftovers}"
