"""Output: per-kind, per-day files fed in time order from a heap."""

from __future__ import annotations

import gzip
import heapq
from pathlib import Path
from typing import BinaryIO

from chainwatch.harness.simulate.clock import _DAY, _Clock

_OTLP, _VAULT, _CLOUDTRAIL, _NATIVE = range(4)
_KIND_PATHS = (
    ("otlp", "traces-{day}.jsonl"),
    ("vault", "audit-{day}.log"),
    ("cloudtrail", "cloudtrail-{day}.json"),
    ("native", "tasks-{day}.jsonl"),
)

_WRITE_BATCH = 256 * 1024  # characters buffered per open file before a write


class _DayFile:
    """One output file; lines are batched because many small writes are the slow part."""

    def __init__(self, path: Path, kind: int, compress: bool) -> None:
        self.kind = kind
        self._raw = open(path, "wb")
        # mtime=0 and no file name in the gzip header keep the bytes identical run to run.
        self._stream: BinaryIO = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
            if compress
            else self._raw
        )
        self._buf: list[str] = ['{"Records":['] if kind == _CLOUDTRAIL else []
        self._size = 0
        self._first = True

    def write(self, line: str) -> None:
        buf = self._buf
        if self.kind == _CLOUDTRAIL:
            buf.append("\n" if self._first else ",\n")
            self._first = False
        buf.append(line)
        if self.kind != _CLOUDTRAIL:
            buf.append("\n")
        self._size += len(line)
        if self._size > _WRITE_BATCH:
            self._drain()

    def _drain(self) -> None:
        self._stream.write("".join(self._buf).encode("utf-8"))
        self._buf.clear()
        self._size = 0

    def close(self) -> None:
        if self.kind == _CLOUDTRAIL:
            self._buf.append("\n]}\n")
        self._drain()
        self._stream.close()
        self._raw.close()


class _Sinks:
    """Writes lines in time order per kind, one file per UTC day.

    Every line is pushed with a time at or after the start of the task being generated, and tasks
    are generated in start order; so a line can be written once the next task starts after it.
    """

    def __init__(self, out: Path, gzip_cloudtrail: bool) -> None:
        self._out = out
        self._clock = _Clock()
        self._gzip = gzip_cloudtrail
        self._heap: list[tuple[int, int, int, str]] = []
        self._seq = 0
        self._current: list[_DayFile | None] = [None, None, None, None]
        self._current_day = [-1, -1, -1, -1]
        self.files: list[str] = []
        self._made: set[tuple[int, int]] = set()
        for sub, _ in _KIND_PATHS:
            (out / sub).mkdir(parents=True, exist_ok=True)

    def push(self, kind: int, t: int, line: str) -> None:
        heapq.heappush(self._heap, (t, self._seq, kind, line))
        self._seq += 1

    def flush(self, until: int | None = None) -> None:
        heap = self._heap
        pop = heapq.heappop
        while heap and (until is None or heap[0][0] < until):
            t, _, kind, line = pop(heap)
            day = t // _DAY
            if day != self._current_day[kind]:
                self._open(kind, day)
            self._current[kind].write(line)  # type: ignore[union-attr]

    def _path(self, kind: int, day: int) -> Path:
        sub, pattern = _KIND_PATHS[kind]
        name = pattern.format(day=self._clock.day_str(day * _DAY))
        if kind == _CLOUDTRAIL and self._gzip:
            name += ".gz"
        return self._out / sub / name

    def _open(self, kind: int, day: int) -> None:
        current = self._current[kind]
        if current is not None:
            current.close()
        path = self._path(kind, day)
        self._current[kind] = _DayFile(path, kind, self._gzip and kind == _CLOUDTRAIL)
        self._current_day[kind] = day
        self._made.add((kind, day))
        self.files.append(path.relative_to(self._out).as_posix())

    def close(self, days: range) -> None:
        """Flush everything and make sure every kind has a (possibly empty) file for each day."""
        self.flush()
        for kind in range(4):
            current = self._current[kind]
            if current is not None:
                current.close()
                self._current[kind] = None
            for day in days:
                if (kind, day) not in self._made:
                    path = self._path(kind, day)
                    _DayFile(path, kind, self._gzip and kind == _CLOUDTRAIL).close()
                    self.files.append(path.relative_to(self._out).as_posix())


class _NullSinks(_Sinks):
    """Discards everything: used to measure the average task size before the real run."""

    def __init__(self) -> None:
        self.files = []

    def push(self, kind: int, t: int, line: str) -> None:
        pass

    def flush(self, until: int | None = None) -> None:
        pass
