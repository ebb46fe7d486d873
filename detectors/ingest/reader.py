"""Stream a log file into Arrow batches of raw records ("units"), without a Python loop per line.

A unit is one line of a line-oriented file, or the whole file for a pretty-printed JSON document.
Lines are split with numpy over large blocks; decoding, JSON validation and parsing happen later
in DuckDB.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

BLOCK_BYTES = 64 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"

UNIT_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("unit_line", pa.int64()),
        ("unit_offset", pa.int64()),
        ("raw", pa.large_binary()),
        ("raw_len", pa.int64()),
    ]
)


class UnreadableFileError(OSError):
    """A file that cannot be opened or decompressed at all."""


@dataclass(frozen=True)
class FileHead:
    """The first bytes of a (decompressed) file, used for format detection."""

    path: Path
    compressed: bool
    head: bytes
    is_parquet: bool
    complete: bool = False  # the head is the whole file

    def first_lines(self, limit: int = 5) -> list[bytes]:
        """Up to ``limit`` complete, non-blank lines from the head."""
        lines = [ln.strip() for ln in self.head.split(b"\n")]
        if not self.head.endswith(b"\n"):
            lines = lines[:-1]
        return [ln for ln in lines if ln][:limit]

    def is_document(self) -> bool:
        """True for a JSON document spread over several lines (pretty-printed)."""
        lines = self.first_lines(3)
        if not lines or lines[0][:1] not in (b"{", b"[") or _is_json(lines[0]):
            return False
        # A lone bracket never starts a JSON-lines file; nor does a head that parses whole.
        if lines[0] in (b"{", b"[") or (self.complete and _is_json(self.head)):
            return True
        return not any(_is_json(ln) for ln in lines)


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line, parse_int=str)  # integers beyond Python's digit limit are still JSON
    except RecursionError:  # nested too deeply for Python to tell: taken as one value
        return True
    except ValueError:
        return False
    return True


# A corrupt deflate stream raises zlib.error, which is not an OSError.
_READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error)


def _open(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb"), True
    return open(path, "rb"), False


def read_head(path: Path, size: int = 1 << 20) -> FileHead:
    """Read the first ``size`` decompressed bytes; raise UnreadableFileError naming the file."""
    try:
        handle, compressed = _open(path)
        with handle:
            head = handle.read(size)
    except _READ_ERRORS as exc:
        raise UnreadableFileError(f"{path}: cannot read file: {exc}") from exc
    return FileHead(path, compressed, head, head[:4] == PARQUET_MAGIC, complete=len(head) < size)


def iter_units(
    path: Path,
    *,
    source_file: str,
    document: bool,
    max_record_bytes: int,
    max_document_bytes: int,
    keep_bytes: int,
) -> Iterator[pa.RecordBatch]:
    """Yield batches of units; raw_len is each unit's true length. A unit too large to buffer (a
    whole document, or a line running across blocks) keeps only its first ``keep_bytes`` bytes."""
    try:
        handle, _ = _open(path)
        with handle:
            if document:
                yield from _document_unit(handle, source_file, max_document_bytes, keep_bytes)
            else:
                yield from _line_units(handle, source_file, max_record_bytes, keep_bytes)
    except _READ_ERRORS as exc:
        raise UnreadableFileError(f"{path}: cannot read file: {exc}") from exc


def _document_unit(handle, source_file: str, limit: int, keep: int) -> Iterator[pa.RecordBatch]:
    data = handle.read(limit + 1)
    raw_len = len(data)
    if raw_len > limit:
        raw_len += sum(len(chunk) for chunk in iter(lambda: handle.read(BLOCK_BYTES), b""))
        data = data[:keep]
    yield _batch(source_file, [1], [0], [data], [raw_len])


def _line_units(handle, source_file: str, limit: int, keep: int) -> Iterator[pa.RecordBatch]:
    """Split into lines. Each unit's bytes keep their trailing newline (DuckDB trims it), so one
    shared buffer with contiguous offsets serves a whole block: no copy per line."""
    line_no = 0  # lines emitted so far
    consumed = 0  # bytes of the file before `carry`
    carry = b""  # the unfinished last line of the previous block
    carry_len = 0  # its true length; larger than len(carry) once it passed the limit
    while True:
        block = handle.read(BLOCK_BYTES)
        if not block:
            break
        if carry_len > len(carry):  # an oversized line still running: skip to its end
            newline = block.find(b"\n")
            if newline < 0:
                carry_len += len(block)
                continue
            carry_len += newline
            line_no += 1
            yield _batch(source_file, [line_no], [consumed], [carry[:keep]], [carry_len])
            consumed += carry_len + 1
            block, carry, carry_len = block[newline + 1 :], b"", 0
        data = carry + block if carry else block
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        if ends.size == 0:
            carry, carry_len = data[: limit + 1], len(data)
            continue
        offsets = np.concatenate(([0], ends + 1)).astype(np.int64)
        lengths = ends - offsets[:-1]
        values = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), ends.size, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        yield pa.RecordBatch.from_arrays(
            [
                pa.repeat(source_file, ends.size).cast(pa.string()),
                pa.array(np.arange(line_no + 1, line_no + 1 + ends.size), pa.int64()),
                pa.array(consumed + offsets[:-1], pa.int64()),
                values,
                pa.array(lengths, pa.int64()),
            ],
            schema=UNIT_SCHEMA,
        )
        line_no += int(ends.size)
        consumed += int(offsets[-1])
        tail = data[int(offsets[-1]) :]
        carry, carry_len = tail[: limit + 1], len(tail)
    if carry_len:
        kept = carry if carry_len <= limit else carry[:keep]
        yield _batch(source_file, [line_no + 1], [consumed], [kept], [carry_len])


def _batch(source_file, lines, offsets, values, lengths) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            pa.array([source_file] * len(values), pa.string()),
            pa.array(lines, pa.int64()),
            pa.array(offsets, pa.int64()),
            pa.array(values, pa.large_binary()),
            pa.array(lengths, pa.int64()),
        ],
        schema=UNIT_SCHEMA,
    )
