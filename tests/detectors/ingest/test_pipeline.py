"""Conservation, idempotent re-ingest and every kind of bad input, across formats."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from detectors.core.warehouse import connect
from detectors.ingest.pipeline import (
    bounded_batches,
    expand_paths,
    file_day,
    ingest_paths,
    partition_day_of,
)
from detectors.ingest.quality import conservation_violations, schema_drift
from tests.conftest import Ingester, counts, write_lines

NATIVE_OK = {
    "record_type": "action",
    "event_id": "a1",
    "ts": "2026-11-01T10:00:00Z",
    "agent_id": "agent-1",
    "task_id": "task-1",
    "tool": "read_file",
    "arguments": {"path": "/etc/hosts"},
}


def reject_reasons(ingest: Ingester) -> list[str]:
    return [
        r["reason"] for r in ingest.rows("SELECT reason FROM rejected_events ORDER BY source_line")
    ]


def test_every_record_lands_in_exactly_one_place(ingest: Ingester):
    records = [
        NATIVE_OK,
        dict(NATIVE_OK, event_id="a2"),
        NATIVE_OK,
        "{broken",
        dict(NATIVE_OK, event_id="a3", ts="yesterday"),
    ]
    report = ingest.lines("mixed.jsonl", records)
    assert counts(report) == [(5, 2, 2, 1)]
    assert report.files[0].balanced
    assert ingest.one("SELECT count(*) FROM agent_actions") == 2
    assert ingest.one("SELECT count(*) FROM rejected_events") == 2
    assert ingest.one("SELECT count(*) FROM ingest_ledger") == 4
    assert conservation_violations(ingest.con) == []


def test_conservation_check_catches_a_lost_row(ingest: Ingester):
    ingest.lines("one.jsonl", [NATIVE_OK])
    ingest.con.execute("DELETE FROM agent_actions")
    violations = conservation_violations(ingest.con)
    assert len(violations) == 1 and violations[0]["loaded_without_rows"] == 1


def test_reingesting_a_file_adds_nothing(ingest: Ingester, tmp_path: Path):
    path = write_lines(
        tmp_path / "in" / "day.jsonl", [NATIVE_OK, "{bad", dict(NATIVE_OK, event_id="a2")]
    )
    first = ingest.files(path)
    before = {
        t: ingest.one(f"SELECT count(*) FROM {t}")
        for t in ("agent_actions", "rejected_events", "ingest_ledger")
    }
    second = ingest.files(path)
    after = {
        t: ingest.one(f"SELECT count(*) FROM {t}")
        for t in ("agent_actions", "rejected_events", "ingest_ledger")
    }
    assert counts(first) == [(3, 2, 1, 0)]
    assert counts(second) == [(3, 0, 0, 3)]
    assert before == after


def test_same_records_in_a_renamed_or_reordered_file_add_nothing(ingest: Ingester, tmp_path: Path):
    ingest.lines("a.jsonl", [NATIVE_OK, dict(NATIVE_OK, event_id="a2")])
    renamed = ingest.lines("renamed.jsonl", [dict(NATIVE_OK, event_id="a2"), NATIVE_OK, "{bad"])
    assert counts(renamed) == [(3, 0, 1, 2)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 2
    again = ingest.lines("renamed-again.jsonl", ["{bad"], fmt="native")
    assert counts(again) == [(1, 0, 0, 1)]
    assert conservation_violations(ingest.con) == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"record_type": "action", ', "malformed JSON (invalid syntax or truncated line)"),
        (
            b'{"record_type":"action","ts":"2026-11-01T10:00:00Z","agent_id":"a","tool":"t\xff\xfe"}',
            "invalid UTF-8 byte sequence",
        ),
        (
            b'{"record_type":"action","ts":"2026-11-01T10:00:00Z","agent_id":["x"],"tool":"t"}',
            "wrong type for agent_id: expected string, got array",
        ),
        (
            b'{"record_type":"action","ts":"2026-11-01T10:00:00Z","agent_id":"a"}',
            "missing required field tool",
        ),
        (b'{"record_type":"action","agent_id":"a","tool":"t"}', "missing required field ts"),
        (
            b'{"record_type":"action","ts":"31/12/2026 25:61","agent_id":"a","tool":"t"}',
            'unparseable timestamp in ts: "31/12/2026 25:61"',
        ),
        (
            b'{"record_type":"action","ts":"1700-01-01T00:00:00Z","agent_id":"a","tool":"t"}',
            "timestamp out of range in ts: 1700-01-01 00:00:00",
        ),
        (b"42", "record is not a JSON object (got number)"),
    ],
)
def test_each_bad_input_gets_a_specific_reason(ingest: Ingester, line: bytes, reason: str):
    report = ingest.lines("bad.jsonl", [NATIVE_OK, line])
    assert counts(report) == [(2, 1, 1, 0)]
    rejected = ingest.rows("SELECT * FROM rejected_events")[0]
    assert rejected["reason"] == reason
    assert rejected["source_line"] == 2 and rejected["source_file"].endswith("bad.jsonl")


def test_a_10_mb_line_is_rejected_and_the_run_goes_on(ingest: Ingester):
    huge = b'{"record_type":"action","note":"' + b"x" * (10 * 1024 * 1024) + b'"}'
    report = ingest.lines("huge.jsonl", [NATIVE_OK, huge, dict(NATIVE_OK, event_id="after")])
    assert counts(report) == [(3, 2, 1, 0)]
    row = ingest.rows("SELECT reason, raw_bytes, length(raw_text) AS kept FROM rejected_events")[0]
    assert row["reason"].startswith(
        "record too large: 10485794 bytes exceeds the limit of 8388608 bytes"
    )
    assert row["raw_bytes"] == 10485794
    assert row["kept"] <= ingest.settings.reject_text_chars


def test_an_empty_file_is_reported_not_skipped(ingest: Ingester, tmp_path: Path):
    empty = tmp_path / "in" / "empty.jsonl"
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    report = ingest.files(empty, fmt="native")
    assert counts(report) == [(1, 0, 1, 0)]
    assert reject_reasons(ingest) == ["empty file: no records"]


def test_blank_lines_are_separators_not_records(ingest: Ingester):
    report = ingest.lines("blanks.jsonl", ["", NATIVE_OK, "   ", ""])
    assert counts(report) == [(1, 1, 0, 0)]


def test_unreadable_file_fails_with_its_name_and_others_still_load(
    ingest: Ingester, tmp_path: Path
):
    good = write_lines(tmp_path / "in" / "good.jsonl", [NATIVE_OK])
    broken_gz = tmp_path / "in" / "broken.jsonl.gz"
    broken_gz.write_bytes(gzip.compress(b'{"record_type":"action"}\n')[:12])
    missing = tmp_path / "in" / "missing.jsonl"
    report = ingest.files(broken_gz, missing, good)
    errors = {Path(f.source_file).name: f.error for f in report.errors}
    assert set(errors) == {"broken.jsonl.gz", "missing.jsonl"}
    assert all(str(tmp_path) in message for message in errors.values())
    assert [f.loaded for f in report.files if not f.error] == [1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_permission_denied_names_the_file(ingest: Ingester, tmp_path: Path):
    locked = write_lines(tmp_path / "in" / "locked.jsonl", [NATIVE_OK])
    locked.chmod(0)
    report = ingest.files(locked)
    assert "locked.jsonl" in report.files[0].error


def test_gzip_files_load_like_plain_ones(ingest: Ingester):
    report = ingest.lines(
        "day.jsonl.gz", [NATIVE_OK, dict(NATIVE_OK, event_id="a2")], compress=True
    )
    assert counts(report) == [(2, 2, 0, 0)]


def test_unknown_content_is_an_error_naming_the_file(ingest: Ingester):
    report = ingest.lines("weird.log", [{"hello": "world"}])
    assert report.files[0].error and "weird.log" in report.files[0].error
    assert report.files[0].records == 0


def test_a_folder_is_expanded_and_hidden_files_skipped(tmp_path: Path):
    write_lines(tmp_path / "land" / "2026-11-02" / "a.jsonl", [NATIVE_OK])
    write_lines(tmp_path / "land" / ".hidden" / "b.jsonl", [NATIVE_OK])
    (tmp_path / "land" / "notes.txt").write_text("not a log")
    assert [p.name for p in expand_paths([tmp_path / "land"])] == ["a.jsonl"]


def test_partition_day_comes_from_the_path_then_mtime(tmp_path: Path):
    assert str(partition_day_of(Path("land/2026-11-02/x.json"))) == "2026-11-02"
    assert (
        str(partition_day_of(Path("111_CloudTrail_us-east-1_20241130T2045Z_abc.json.gz")))
        == "2024-11-30"
    )
    undated = write_lines(tmp_path / "x.jsonl", [NATIVE_OK])
    os.utime(undated, (1761994800, 1761994800))  # 2025-11-01T11:00:00Z
    assert str(file_day(undated)) == "2025-11-01"


def test_mixed_formats_in_one_folder(ingest: Ingester, tmp_path: Path):
    write_lines(tmp_path / "land" / "native.jsonl", [NATIVE_OK])
    write_lines(
        tmp_path / "land" / "vault.log",
        [
            {
                "time": "2026-11-01T10:00:00Z",
                "type": "response",
                "auth": {"client_token": "hmac-sha256:t"},
                "request": {"id": "r1", "operation": "read", "path": "secret/data/x"},
                "response": {},
            }
        ],
    )
    shutil.copy(tmp_path / "land" / "native.jsonl", tmp_path / "land" / "native-copy.jsonl")
    report = ingest.files(tmp_path / "land")
    by_name = {
        Path(f.source_file).name: (f.source_format, f.loaded, f.duplicates) for f in report.files
    }
    assert by_name["vault.log"] == ("vault", 1, 0)
    assert sorted(v for k, v in by_name.items() if k.startswith("native")) == [
        ("native", 0, 1),
        ("native", 1, 0),
    ]


def test_ingest_without_linking_leaves_tasks_for_the_job(con, settings, tmp_path: Path):
    path = write_lines(tmp_path / "in" / "a.jsonl", [NATIVE_OK])
    ingest_paths(con, [path], settings, link=False)
    assert con.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM agent_actions").fetchone()[0] == 1


def test_a_warehouse_from_before_bytes_out_is_upgraded_when_opened(settings, tmp_path: Path):
    path = tmp_path / "old" / "chainwatch.duckdb"
    old = connect(path)
    ingest_paths(old, [write_lines(tmp_path / "in" / "old.jsonl", [NATIVE_OK])], settings)
    old.execute("ALTER TABLE agent_actions DROP COLUMN bytes_out")  # as the old schema made it
    old.close()

    con = connect(path)
    try:
        assert schema_drift(con) == []
        new = dict(NATIVE_OK, event_id="a2", bytes_out=512)
        report = ingest_paths(con, [write_lines(tmp_path / "in" / "new.jsonl", [new])], settings)
        assert counts(report) == [(1, 1, 0, 0)]
        rows = con.execute("SELECT event_id, bytes_out FROM agent_actions ORDER BY 1").fetchall()
        assert rows == [("native:a1", None), ("native:a2", 512)]
        assert conservation_violations(con) == []
    finally:
        con.close()


@pytest.mark.parametrize(
    ("sizes", "limit", "groups"),
    [
        ([3, 2], 5, [["f0", "f1"]]),  # exactly the limit: one batch
        ([3, 3], 5, [["f0"], ["f1"]]),  # one byte over: a new batch
        ([9, 1, 1], 5, [["f0"], ["f1", "f2"]]),  # a file over the limit goes alone
        ([], 5, []),
    ],
)
def test_bounded_batches_keep_to_the_byte_limit(sizes, limit, groups):
    files = [(Path(f"f{i}"), "fmt") for i in range(len(sizes))]
    weights = {Path(f"f{i}"): n for i, n in enumerate(sizes)}
    batches = list(bounded_batches(files, weights, limit))
    assert [[str(f[0]) for f in batch] for batch in batches] == groups


def test_bounded_batches_load_the_same_as_one_batch(tmp_path: Path):
    """Files parsed in many small batches (the memory bound) give the same tables and counts."""
    from detectors.core.settings import load_settings
    from detectors.core.warehouse import connect
    from detectors.ingest.pipeline import ingest_paths
    from tests.conftest import TEST_KEY, sample_landing

    landing = sample_landing(tmp_path / "landing")
    results = []
    for name, batch_bytes in (("one", 1 << 40), ("many", 1)):
        settings = load_settings(
            db_path=tmp_path / name / "w.duckdb", hash_key=TEST_KEY, ingest_batch_bytes=batch_bytes
        )
        con = connect(settings.db_path)
        report = ingest_paths(con, [landing], settings)
        tables = con.execute(
            """SELECT (SELECT count(*) FROM agent_actions), (SELECT count(*) FROM credential_events),
                      (SELECT count(*) FROM tasks), (SELECT count(*) FROM rejected_events),
                      (SELECT sum(hash(event_id, task_id, credential_id)) FROM agent_actions),
                      (SELECT sum(hash(task_id, agent_id, started_at, ended_at, status)) FROM tasks)"""
        ).fetchone()
        batches = con.execute("SELECT count(DISTINCT started_at) FROM ingest_files").fetchone()[0]
        results.append(
            (report.total("records"), report.total("loaded"), report.total("duplicates"), tables)
        )
        con.close()
        if name == "many":
            assert batches == 8  # every file its own batch
    assert results[0] == results[1]


def test_whole_file_documents_weigh_more_in_a_batch(ingest: Ingester):
    """JSON lines files share a batch up to the byte budget; whole-file documents (parsed in one
    piece, needing several times their size) count DOCUMENT_WEIGHT times and go alone."""
    from detectors.ingest.pipeline import DOCUMENT_WEIGHT
    from tests.conftest import write_json

    lines = [
        write_lines(ingest.tmp_path / "in" / f"n{i}.jsonl", [dict(NATIVE_OK, event_id=f"n{i}")])
        for i in range(2)
    ]
    record = {
        "eventVersion": "1.08",
        "eventTime": "2024-11-30T19:50:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "eventID": "x",
    }
    documents = [
        write_json(
            ingest.tmp_path / "in" / f"ct{i}.json", {"Records": [dict(record, eventID=f"c{i}")]}
        )
        for i in range(2)
    ]
    largest = max(p.stat().st_size for p in lines + documents)
    budget = 2 * largest  # two of either kind fit by bytes, a weighted document does not
    assert DOCUMENT_WEIGHT * min(p.stat().st_size for p in documents) > budget
    report = ingest.files(*lines, *documents, ingest_batch_bytes=budget)
    assert [f.loaded for f in report.files] == [1, 1, 1, 1]
    batches = dict(
        ingest.con.execute(
            "SELECT source_format, count(DISTINCT started_at) FROM ingest_files GROUP BY ALL"
        ).fetchall()
    )
    assert batches == {"native": 1, "cloudtrail": 2}
