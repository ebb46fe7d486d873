"""Publish findings: a Parquet copy partitioned by day, and OCSF Detection Findings (JSON lines).

Pure logic over a warehouse connection; the publish assets call these functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from detectors.core.sqlfiles import load_sql

# The OCSF schema version the exported events follow (and the tests validate against).
OCSF_VERSION = "1.8.0"
OCSF_CLASS_UID = 2004
PRODUCT_NAME = "chainwatch"
PARTITION_PREFIX = "day="

_EXPORT_PARQUET = """
COPY (SELECT *, CAST(first_seen AS DATE) AS day FROM findings ORDER BY first_seen, finding_id)
TO $out_dir (FORMAT PARQUET, PARTITION_BY (day), OVERWRITE, RETURN_FILES,
             FILENAME_PATTERN 'findings_{i}')
"""


class PublishError(RuntimeError):
    """An export cannot be written where it was asked to go; the message says why."""


def export_findings_parquet(con: duckdb.DuckDBPyConnection, out_dir: Path) -> list[Path]:
    """Write `findings` to ``out_dir/day=YYYY-MM-DD/*.parquet`` (day of first_seen).

    The folder is replaced as a whole, so a rerun never duplicates rows and a day that no longer
    has findings disappears. To avoid deleting anything else, ``out_dir`` must be missing, empty
    or hold only ``day=...`` partition folders. Returns the files written, sorted.
    """
    out_dir = Path(out_dir)
    _check_export_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _, files = con.execute(_EXPORT_PARQUET, {"out_dir": str(out_dir)}).fetchone()  # type: ignore[misc]
    out_dir.mkdir(exist_ok=True)
    # OVERWRITE empties the old partition folders but leaves them; drop those left empty.
    for part in out_dir.iterdir():
        if not any(part.iterdir()):
            part.rmdir()
    return sorted(Path(f) for f in files)


def _check_export_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise PublishError(f"findings export target {out_dir} is a file, not a folder")
    if out_dir.is_dir():
        foreign = [
            p.name
            for p in out_dir.iterdir()
            if not (p.is_dir() and p.name.startswith(PARTITION_PREFIX))
        ]
        if foreign:
            raise PublishError(
                f"findings export folder {out_dir} holds other files ({', '.join(sorted(foreign)[:5])});"
                " it is replaced on every export, so give it a folder of its own"
            )


def findings_to_ocsf(
    con: duckdb.DuckDBPyConnection, *, product_version: str
) -> list[dict[str, Any]]:
    """Every finding as an OCSF Detection Finding (class 2004) event, ordered by first_seen.

    Activity: Create when the finding was first detected in its latest run, Update after that,
    Close once resolved. Attributes without a value are left out, as OCSF expects.
    """
    return list(iter_findings_ocsf(con, product_version=product_version))


def iter_findings_ocsf(
    con: duckdb.DuckDBPyConnection, *, product_version: str, batch_rows: int = 10_000
) -> Iterator[dict[str, Any]]:
    """The events of :func:`findings_to_ocsf`, fetched in batches (memory stays bounded)."""
    (query,) = load_sql("findings_ocsf")
    cursor = con.execute(query, {"ocsf_version": OCSF_VERSION, "product_version": product_version})
    while rows := cursor.fetchmany(batch_rows):
        for _, event in rows:
            yield _drop_empty(json.loads(event))


def export_findings_ocsf(
    con: duckdb.DuckDBPyConnection, path: Path, *, product_version: str
) -> int:
    """Write the OCSF events as JSON lines to ``path`` (replaced atomically); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    written = 0
    with tmp.open("w", encoding="utf-8") as out:
        for event in iter_findings_ocsf(con, product_version=product_version):
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            written += 1
    os.replace(tmp, path)
    return written


def _drop_empty(value: Any) -> Any:
    """Remove nulls and objects left empty, recursively (lists keep their length)."""
    if isinstance(value, dict):
        kept = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def product_version() -> str:
    """chainwatch's installed version, for the OCSF metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chainwatch")
    except PackageNotFoundError:
        return "0.0.0"
