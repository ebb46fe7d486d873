"""One pipeline run per warehouse at a time: an advisory lock on a file beside it.

DuckDB already refuses a second writing process, but with a low-level error in the middle of a
run. Runs take ``<warehouse>.lock`` first: a second run waits for the first (up to ``wait_s``)
or refuses with a message naming the file and the holder. The lock is ``flock``-based, so it is
released by the operating system when the holder dies (a killed run never leaves it stuck).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from detectors.core.warehouse import WarehouseError


class WarehouseBusy(WarehouseError):
    """Another run holds the warehouse."""


def lock_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}.lock")


@contextmanager
def warehouse_lock(db_path: str | Path, *, wait_s: float = 0.0) -> Iterator[Path]:
    """Hold the warehouse's run lock; wait up to ``wait_s`` seconds for it, then raise
    :class:`WarehouseBusy`."""
    path = lock_path(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only or unwritable folder: exit 3, not a traceback
        raise WarehouseError(
            f"cannot open warehouse {db_path}: cannot create its run lock {path}: "
            f"{exc.strerror or exc}"
        ) from exc
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
                    raise WarehouseBusy(
                        f"warehouse {db_path} is busy: another run holds {path} ({holder}); "
                        f"try again when it ends, or pass a longer wait"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC".encode(), 0
        )
        yield path
    finally:
        os.close(fd)  # closing releases the flock
