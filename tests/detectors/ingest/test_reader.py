"""Streaming a log file into raw units (detectors/ingest/reader.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.ingest import reader
from detectors.ingest.reader import UnreadableFileError, iter_units, read_head
from tests.conftest import Ingester

BIG = 1 << 20


def units(
    path: Path, *, document: bool = False, limit: int = BIG, doc_limit: int = BIG, keep: int = BIG
) -> list[tuple]:
    """(line, offset, raw, raw_len) of every unit; raw as the reader produced it."""
    out = []
    for batch in iter_units(
        path,
        source_file=str(path),
        document=document,
        max_record_bytes=limit,
        max_document_bytes=doc_limit,
        keep_bytes=keep,
    ):
        assert batch.schema == reader.UNIT_SCHEMA
        data = batch.to_pydict()
        assert set(data["source_file"]) == {str(path)}
        out.extend(
            zip(data["unit_line"], data["unit_offset"], data["raw"], data["raw_len"], strict=True)
        )
    return out


def lines_of(path: Path, **kwargs) -> list[tuple]:
    """(line, offset, content) with each unit's own newline removed; checks raw_len is the content length."""
    out = []
    for line, offset, raw, raw_len in units(path, **kwargs):
        assert raw[raw_len:] in (b"", b"\n"), (line, raw, raw_len)
        out.append((line, offset, raw[:raw_len]))
    return out


def expected_lines(data: bytes) -> list[tuple]:
    """What splitting on LF should give: numbered lines with byte offsets (no unit after a final LF)."""
    out, offset = [], 0
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts = parts[:-1]
    for number, part in enumerate(parts, start=1):
        out.append((number, offset, part))
        offset += len(part) + 1
    return out


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_lines_get_numbers_offsets_and_lengths(tmp_path: Path):
    path = write(tmp_path, "a.jsonl", b'{"a":1}\n{"b":22}\n')
    assert units(path) == [(1, 0, b'{"a":1}\n', 7), (2, 8, b'{"b":22}\n', 8)]


def test_crlf_lines_split_on_lf_and_keep_offsets(tmp_path: Path):
    path = write(tmp_path, "crlf.jsonl", b'{"a":1}\r\n{"b":2}\r\n')
    got = units(path)
    assert [(line, offset) for line, offset, _, _ in got] == [(1, 0), (2, 9)]
    assert [raw.rstrip(b"\r\n") for _, _, raw, _ in got] == [b'{"a":1}', b'{"b":2}']


def test_blank_lines_are_units_of_length_zero(tmp_path: Path):
    path = write(tmp_path, "blank.jsonl", b"a\n\nb\n\n")
    assert lines_of(path) == [(1, 0, b"a"), (2, 2, b""), (3, 3, b"b"), (4, 5, b"")]


def test_a_final_line_without_newline_is_a_unit(tmp_path: Path):
    path = write(tmp_path, "tail.jsonl", b"first\nlast")
    assert units(path) == [(1, 0, b"first\n", 5), (2, 6, b"last", 4)]


def test_an_empty_file_has_no_units(tmp_path: Path):
    assert units(write(tmp_path, "empty.jsonl", b"")) == []


MIXED = (
    b'{"n":1}\n'
    + b"\n"
    + b'{"n":22,"pad":"'
    + b"p" * 37
    + b'"}\r\n'
    + b"x\n"
    + b"\n\n"
    + b'{"n":333}' * 5
    + b"\n"
    + b"no newline at the end"
)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 16, 64, 4096])
def test_lines_spanning_block_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
):
    monkeypatch.setattr(reader, "BLOCK_BYTES", block)
    path = write(tmp_path, "mixed.jsonl", MIXED)
    assert lines_of(path) == expected_lines(MIXED)


def test_block_boundary_exactly_at_a_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = b"abcd\nefgh\nij\n"
    monkeypatch.setattr(reader, "BLOCK_BYTES", 5)  # every block ends with the newline
    assert lines_of(write(tmp_path, "exact.txt", data)) == [
        (1, 0, b"abcd"),
        (2, 5, b"efgh"),
        (3, 10, b"ij"),
    ]


@pytest.mark.parametrize("block", [3, 4, 7, 11])
def test_oversized_lines_are_truncated_and_raw_len_tells_the_true_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
):
    monkeypatch.setattr(reader, "BLOCK_BYTES", block)
    data = b"short\n" + b"x" * 40 + b"\n" + b"tail\n" + b"y" * 30
    got = units(write(tmp_path, "big.jsonl", data), limit=16, keep=8)
    assert [(line, offset, raw_len) for line, offset, _, raw_len in got] == [
        (1, 0, 5),
        (2, 6, 40),
        (3, 47, 4),
        (4, 52, 30),
    ]
    raws = [raw for _, _, raw, _ in got]
    assert raws[0].rstrip(b"\n") == b"short" and raws[2].rstrip(b"\n") == b"tail"
    # lines longer than a block and than the limit keep only `keep` bytes
    assert raws[1] == b"x" * 8
    assert raws[3] == b"y" * 8


def test_oversized_line_inside_one_block_keeps_its_true_length(tmp_path: Path):
    data = b"short\n" + b"x" * 40 + b"\nend\n"
    got = units(write(tmp_path, "big.jsonl", data), limit=16, keep=8)
    assert [(line, offset, raw_len) for line, offset, _, raw_len in got] == [
        (1, 0, 5),
        (2, 6, 40),
        (3, 47, 3),
    ]
    assert got[1][2].startswith(b"x" * 8)


def test_a_line_at_exactly_the_limit_is_kept_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(reader, "BLOCK_BYTES", 3)
    data = b"z" * 16 + b"\n" + b"w" * 17 + b"\n"
    got = units(write(tmp_path, "edge.jsonl", data), limit=16, keep=8)
    assert [(line, offset, raw_len) for line, offset, _, raw_len in got] == [
        (1, 0, 16),
        (2, 17, 17),
    ]
    assert got[0][2].rstrip(b"\n") == b"z" * 16
    assert got[1][2].startswith(b"w" * 8)


def test_gzip_gives_the_same_units_as_plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    plain = write(tmp_path, "plain.jsonl", MIXED)
    packed = write(tmp_path, "packed.jsonl.gz", gzip.compress(MIXED))
    assert lines_of(packed) == lines_of(plain) == expected_lines(MIXED)
    monkeypatch.setattr(reader, "BLOCK_BYTES", 4)
    assert lines_of(packed) == expected_lines(MIXED)
    head = read_head(packed)
    assert (head.compressed, head.head, head.is_parquet) == (True, MIXED, False)
    assert read_head(plain).compressed is False


def test_gzip_is_recognised_by_magic_not_name(tmp_path: Path):
    path = write(tmp_path, "no_suffix.log", gzip.compress(b'{"a":1}\n'))
    assert lines_of(path) == [(1, 0, b'{"a":1}')]


def test_read_head_stops_at_the_size(tmp_path: Path):
    path = write(tmp_path, "long.jsonl", b"0123456789\n" * 10)
    head = read_head(path, size=15)
    assert head.head == b"0123456789\n0123"
    assert head.first_lines() == [b"0123456789"]  # the incomplete line is not offered


def test_document_mode_yields_the_whole_file_as_one_unit(tmp_path: Path):
    data = json.dumps({"resourceSpans": [{"scopeSpans": []}]}, indent=2).encode()
    path = write(tmp_path, "doc.json", data)
    assert units(path, document=True) == [(1, 0, data, len(data))]


def test_document_over_the_limit_is_truncated_with_its_true_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(reader, "BLOCK_BYTES", 7)
    data = b"{\n" + b'  "k": "' + b"v" * 200 + b'"\n}\n'
    got = units(write(tmp_path, "doc.json", data), document=True, doc_limit=50, keep=10)
    assert got == [(1, 0, data[:10], len(data))]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            json.dumps({"Records": [{"eventName": "X"}]}, indent=2).encode(),
            True,
            id="pretty-object",
        ),
        pytest.param(
            json.dumps([{"eventName": "X"}, {"eventName": "Y"}], indent=2).encode(),
            True,
            id="pretty-array",
        ),
        pytest.param(
            b'{"Records": [\n{"eventName": "X"},\n{"eventName": "Y"},\n{"eventName": "Z"}\n]}\n',
            True,
            id="semi-pretty",
        ),
        pytest.param(
            b'[\n{"eventName": "X"},\n{"eventName": "Y"}\n]\n',
            True,
            id="small-array-one-record-per-line",
        ),
        pytest.param(
            b"\n\n" + json.dumps({"a": {"b": 1}}, indent=4).encode(), True, id="leading-blank-lines"
        ),
        pytest.param(b'{"a":1}\n{"a":2}\n', False, id="json-lines"),
        pytest.param(b'[{"a":1}]\n[{"a":2}]\n', False, id="json-lines-of-arrays"),
        pytest.param(b'{"a":1}\n', False, id="one-compact-line"),
        pytest.param(b"record_type,ts\naction,2024\n", False, id="csv"),
        pytest.param(b"hello\nworld\n", False, id="text"),
        pytest.param(b"", False, id="empty"),
    ],
)
def test_is_document(tmp_path: Path, data: bytes, expected: bool):
    assert read_head(write(tmp_path, "f", data)).is_document() is expected
    assert read_head(write(tmp_path, "f.gz", gzip.compress(data))).is_document() is expected


def test_parquet_is_recognised_by_magic(tmp_path: Path):
    path = tmp_path / "x.bin"
    pq.write_table(pa.table({"record_type": ["action"]}), path)
    head = read_head(path)
    assert (head.is_parquet, head.compressed, head.is_document()) == (True, False, False)
    assert read_head(write(tmp_path, "y.parquet", b'{"a":1}\n')).is_parquet is False


# --- unreadable files -------------------------------------------------------------------------------


def _truncated_gzip(tmp_path: Path) -> Path:
    blob = gzip.compress(b"".join(b'{"n":%d}\n' % i for i in range(2000)))
    return write(tmp_path, "cut.jsonl.gz", blob[: len(blob) // 2])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: tmp / "missing.jsonl", id="missing"),
        pytest.param(lambda tmp: (tmp / "a_dir").mkdir() or tmp / "a_dir", id="directory"),
        pytest.param(
            lambda tmp: write(tmp, "junk.gz", b"\x1f\x8bnot really gzip at all"), id="bad-gzip"
        ),
        pytest.param(_truncated_gzip, id="truncated-gzip"),
    ],
)
def test_unreadable_file_raises_naming_the_path(tmp_path: Path, make):
    path = make(tmp_path)
    with pytest.raises(UnreadableFileError, match="cannot read file") as err:
        read_head(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, OSError)
    with pytest.raises(UnreadableFileError) as err:
        units(path)
    assert str(path) in str(err.value)


def test_ingest_reports_an_unreadable_file_and_loads_the_others(ingest: Ingester, tmp_path: Path):
    bad = write(tmp_path, "bad.jsonl.gz", b"\x1f\x8b\x08garbage")
    good = write(
        tmp_path,
        "good.jsonl",
        json.dumps(
            {
                "record_type": "action",
                "event_id": "g",
                "ts": "2024-05-01T10:00:00Z",
                "agent_id": "a",
                "tool": "t",
            }
        ).encode()
        + b"\n",
    )
    report = ingest.files(bad, good)
    by_name = {Path(f.source_file).name: f for f in report.files}
    assert by_name["bad.jsonl.gz"].source_format is None
    assert str(bad) in by_name["bad.jsonl.gz"].error
    assert (by_name["good.jsonl"].loaded, by_name["good.jsonl"].error) == (1, None)
    assert [f.source_file for f in report.errors] == [str(bad)]


def test_ingest_reports_a_gzip_that_breaks_after_the_head(ingest: Ingester, tmp_path: Path):
    """A gzip whose first MiB is fine but whose end is cut off: reported, and the other files still load."""
    import random

    rng = random.Random(7)
    body = b"".join(
        json.dumps(
            {
                "record_type": "action",
                "event_id": f"e{i}",
                "ts": "2024-05-01T10:00:00Z",
                "agent_id": "a",
                "tool": "t",
                "pad": rng.randbytes(24).hex(),
            }
        ).encode()
        + b"\n"
        for i in range(20000)
    )
    assert len(body) > 2 * (1 << 20)
    blob = gzip.compress(body)
    bad = write(tmp_path, "cut.jsonl.gz", blob[: len(blob) * 3 // 4])
    good = write(
        tmp_path,
        "good.jsonl",
        json.dumps(
            {
                "record_type": "action",
                "event_id": "g",
                "ts": "2024-05-01T10:00:00Z",
                "agent_id": "a",
                "tool": "t",
            }
        ).encode()
        + b"\n",
    )
    report = ingest.files(bad, good)
    by_name = {Path(f.source_file).name: f for f in report.files}
    assert str(bad) in (by_name["cut.jsonl.gz"].error or "")
    assert by_name["good.jsonl"].loaded == 1


# --- through the pipeline -----------------------------------------------------------------------------


def _native(i: int) -> bytes:
    return json.dumps(
        {
            "record_type": "action",
            "event_id": f"e{i}",
            "ts": "2024-05-01T10:00:00Z",
            "agent_id": "agent-1",
            "tool": "read_file",
        }
    ).encode()


def test_pipeline_with_tiny_blocks_loads_every_line(
    ingest: Ingester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(reader, "BLOCK_BYTES", 13)
    data = (
        _native(1) + b"\r\n\r\n" + _native(2) + b"\n   \n" + _native(3)
    )  # CRLF, blank, spaces-only, no final LF
    report = ingest.files(write(tmp_path, "tiny.jsonl", data))
    assert [(f.records, f.loaded, f.rejected, f.duplicates) for f in report.files] == [(3, 3, 0, 0)]
    assert ingest.rows("SELECT event_id, source_line FROM agent_actions ORDER BY source_line") == [
        {"event_id": "native:e1", "source_line": 1},
        {"event_id": "native:e2", "source_line": 3},
        {"event_id": "native:e3", "source_line": 5},
    ]
    offsets = [
        r["source_offset"]
        for r in ingest.rows("SELECT source_offset FROM agent_actions ORDER BY source_line")
    ]
    assert offsets == [0, len(_native(1)) + 4, len(_native(1)) + 4 + len(_native(2)) + 5]


def test_pipeline_rejects_an_oversized_line_with_its_true_size(ingest: Ingester, tmp_path: Path):
    big = json.dumps(
        {
            "record_type": "action",
            "event_id": "big",
            "ts": "2024-05-01T10:00:00Z",
            "agent_id": "agent-1",
            "tool": "t",
            "pad": "q" * 500,
        }
    ).encode()
    data = _native(1) + b"\n" + big + b"\n" + _native(2) + b"\n"
    report = ingest.files(write(tmp_path, "big.jsonl", data), max_record_bytes=300)
    assert [(f.records, f.loaded, f.rejected) for f in report.files] == [(3, 2, 1)]
    row = ingest.rows("SELECT reason, raw_bytes, source_line FROM rejected_events")[0]
    assert row == {
        "reason": f"record too large: {len(big)} bytes exceeds the limit of 300 bytes",
        "raw_bytes": len(big),
        "source_line": 2,
    }


def test_pipeline_rejects_invalid_utf8_and_malformed_lines(ingest: Ingester, tmp_path: Path):
    data = (
        _native(1)
        + b"\n"
        + b'{"record_type": "action", "tool": "\xff\xfe"}\n'
        + b'{"truncated": \n'
    )
    report = ingest.files(write(tmp_path, "bad.jsonl", data))
    assert [(f.records, f.loaded, f.rejected) for f in report.files] == [(3, 1, 2)]
    assert ingest.rows("SELECT source_line, reason FROM rejected_events ORDER BY source_line") == [
        {"source_line": 2, "reason": "invalid UTF-8 byte sequence"},
        {"source_line": 3, "reason": "malformed JSON (invalid syntax or truncated line)"},
    ]
    raw_text = ingest.one("SELECT raw_text FROM rejected_events WHERE source_line = 2")
    assert "\\xFF\\xFE" in raw_text  # invalid bytes shown as \xNN


def test_secrets_in_an_invalid_utf8_line_are_redacted(ingest: Ingester, tmp_path: Path):
    bad = b'{"record_type": "action", "password": "hunter2", "note": "\xff", "api_key": "abcd1234"}'
    report = ingest.files(write(tmp_path, "secret.jsonl", _native(1) + b"\n" + bad + b"\n"))
    assert [(f.records, f.loaded, f.rejected) for f in report.files] == [(2, 1, 1)]
    row = ingest.rows("SELECT reason, raw_text FROM rejected_events")[0]
    assert row["reason"] == "invalid UTF-8 byte sequence"
    assert "hunter2" not in row["raw_text"] and "abcd1234" not in row["raw_text"]
    assert '"record_type": "action"' in row["raw_text"]  # only the invalid bytes are escaped


def test_pipeline_reads_gzip(ingest: Ingester, tmp_path: Path):
    report = ingest.files(
        write(tmp_path, "z.jsonl.gz", gzip.compress(_native(1) + b"\n" + _native(2) + b"\n"))
    )
    assert [(f.source_format, f.records, f.loaded) for f in report.files] == [("native", 2, 2)]
