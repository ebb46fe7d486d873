"""chainwatch native records: JSON lines, CSV and Parquet (sql/parse_native.sql)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.core.warehouse import connect
from tests.conftest import Ingester, counts

TS = "2024-05-01T10:00:00Z"


def act(event_id: str | None = "a1", **fields) -> dict:
    rec = {
        "record_type": "action",
        "event_id": event_id,
        "ts": TS,
        "agent_id": "agent-1",
        "task_id": "task-1",
        "tool": "read_file",
    }
    if event_id is None:
        del rec["event_id"]
    rec.update(fields)
    return {k: v for k, v in rec.items() if v is not None or k in fields}


# --- the same records in three encodings -------------------------------------------------------

RECORDS = [
    {
        "record_type": "task",
        "event_id": "t1",
        "ts": "2024-05-01T10:00:00Z",
        "event": "start",
        "task_id": "task-1",
        "agent_id": "agent-1",
    },
    {
        "record_type": "credential",
        "event_id": "c1",
        "ts": "2024-05-01T10:01:00Z",
        "event": "issue",
        "credential_ref": "jit-123",
        "credential_kind": "native_jit",
        "principal": "svc-reports",
        "agent_id": "agent-1",
        "task_id": "task-1",
        "scopes": ["repo:read", "repo:write"],
        "ttl_s": 900,
    },
    {
        "record_type": "action",
        "event_id": "a1",
        "ts": "2024-05-01T10:02:00Z",
        "agent_id": "agent-1",
        "task_id": "task-1",
        "tool": "send_email",
        "system": "gmail",
        "arguments": {"to": "bob@partner.org", "subject": "report"},
        "outcome": "ok",
        "duration_ms": 12.5,
        "credential_ref": "jit-123",
        "source_ip": "10.0.0.5",
        "bytes_out": 2048,
    },
    {
        "record_type": "action",
        "event_id": "a2",
        "ts": "2024-05-01T10:03:00Z",
        "agent_id": "agent-1",
        "task_id": "task-1",
        "tool": "delete_repo",
        "outcome": "denied",
        "error_type": "Forbidden",
        "action_class": "delete",
        "sensitivity": "high",
        "external": False,
    },
    {
        "record_type": "task",
        "event_id": "t2",
        "ts": "2024-05-01T10:04:00Z",
        "event": "approval",
        "task_id": "task-1",
        "approved_by": "alice",
        "approved_scope": ["deploy"],
        "approval_expires_at": "2024-05-01T11:00:00Z",
    },
    {
        "record_type": "task",
        "event_id": "t3",
        "ts": "2024-05-01T10:05:00Z",
        "event": "end",
        "task_id": "task-1",
        "status": "completed",
    },
]


COMPACT = (",", ":")


def write_csv(
    path: Path,
    records: list[dict],
    *,
    list_style: str = "semicolon",
    separators: tuple[str, str] = COMPACT,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for rec in records for k in rec))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for rec in records:
        row = []
        for col in columns:
            value = rec.get(col)
            if value is None:
                row.append("")
            elif isinstance(value, list):
                row.append(";".join(value) if list_style == "semicolon" else json.dumps(value))
            elif isinstance(value, dict):
                row.append(json.dumps(value, separators=separators))
            elif isinstance(value, bool):
                row.append("true" if value else "false")
            else:
                row.append(str(value))
        writer.writerow(row)
    path.write_text(buf.getvalue())
    return path


def write_parquet(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    types = {
        "ttl_s": pa.int64(),
        "bytes_out": pa.int64(),
        "duration_ms": pa.float64(),
        "external": pa.bool_(),
        "scopes": pa.list_(pa.string()),
        "approved_scope": pa.list_(pa.string()),
    }
    columns = list(dict.fromkeys(k for rec in records for k in rec))
    arrays = {}
    for col in columns:
        values = [rec.get(col) for rec in records]
        if col == "arguments":
            values = [json.dumps(v, separators=COMPACT) if v is not None else None for v in values]
        arrays[col] = pa.array(values, types.get(col, pa.string()))
    pq.write_table(pa.table(arrays), path)
    return path


CANONICAL = {
    "agent_actions": "event_id",
    "credential_events": "event_id",
    "task_events": "event_id",
    "tasks": "task_id",
}
PLACEMENT = {
    "source_file",
    "source_offset",
    "source_line",
    "source_record",
    "ingested_at",
    "updated_at",
}


def snapshot(ingest: Ingester) -> dict[str, list[dict]]:
    out = {}
    for table, key in CANONICAL.items():
        rows = ingest.rows(f"SELECT * FROM {table} ORDER BY {key}")
        out[table] = [{k: v for k, v in row.items() if k not in PLACEMENT} for row in rows]
    return out


def ingest_into_fresh_warehouse(ingest: Ingester, name: str, path: Path) -> tuple[list, dict]:
    con = connect(ingest.tmp_path / "wh" / f"{name}.duckdb")
    try:
        other = Ingester(con, ingest.settings, ingest.tmp_path)
        report = other.files(path)
        return [
            (f.source_format, *c) for f, c in zip(report.files, counts(report), strict=True)
        ], snapshot(other)
    finally:
        con.close()


def test_json_lines_csv_and_parquet_give_the_same_rows(ingest: Ingester, tmp_path: Path):
    jsonl = tmp_path / "in" / "native.jsonl"
    jsonl.parent.mkdir(parents=True)
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    csv_semicolon = write_csv(tmp_path / "in" / "native_a.csv", RECORDS, list_style="semicolon")
    csv_json = write_csv(tmp_path / "in" / "native_b.csv", RECORDS, list_style="json")
    parquet = write_parquet(tmp_path / "in" / "native.parquet", RECORDS)

    base_counts, base = ingest_into_fresh_warehouse(ingest, "jsonl", jsonl)
    assert base_counts == [("native", 6, 6, 0, 0)]
    assert len(base["agent_actions"]) == 2 and len(base["credential_events"]) == 1
    assert len(base["task_events"]) == 3 and len(base["tasks"]) == 1
    for name, path, fmt in [
        ("csv_a", csv_semicolon, "native_csv"),
        ("csv_b", csv_json, "native_csv"),
        ("parquet", parquet, "native_parquet"),
    ]:
        got_counts, got = ingest_into_fresh_warehouse(ingest, name, path)
        assert got_counts == [(fmt, 6, 6, 0, 0)], name
        for table in CANONICAL:
            assert got[table] == base[table], (name, table)


def test_native_rows_have_the_record_values(ingest: Ingester):
    report = ingest.lines("native.jsonl", RECORDS)
    assert counts(report) == [(6, 6, 0, 0)]
    a1 = ingest.rows("SELECT * FROM agent_actions WHERE event_id = 'native:a1'")[0]
    assert (
        a1["ts"],
        a1["agent_id"],
        a1["task_id"],
        a1["task_source"],
        a1["tool"],
        a1["system"],
    ) == (datetime(2024, 5, 1, 10, 2), "agent-1", "task-1", "native", "send_email", "gmail")
    assert json.loads(a1["args"]) == {"to": "bob@partner.org", "subject": "report"}
    assert (a1["outcome"], a1["duration_ms"], a1["source_ip"], a1["source_format"]) == (
        "ok",
        12.5,
        "10.0.0.5",
        "native",
    )
    assert a1["credential_id"] == ingest.cred_id("native", "jit-123")
    assert a1["bytes_out"] == 2048
    assert (a1["source_line"], a1["source_record"]) == (3, 0)
    a2 = ingest.rows("SELECT * FROM agent_actions WHERE event_id = 'native:a2'")[0]
    assert (a2["action_class"], a2["classified_by"], a2["sensitivity"], a2["external"]) == (
        "delete",
        "source",
        "high",
        False,
    )
    assert (a2["outcome"], a2["error_type"]) == ("denied", "Forbidden")
    assert a2["bytes_out"] is None


def test_csv_arguments_as_json_string_equal_json_lines_arguments(ingest: Ingester, tmp_path: Path):
    rec = act("x1", arguments={"path": "/etc/hosts", "lines": [1, 2]})
    ingest.lines("a.jsonl", [rec])
    # written as json.dumps writes by default, with spaces after ':' and ','
    ingest.files(
        write_csv(
            tmp_path / "in" / "b.csv",
            [act("x2", arguments={"path": "/etc/hosts", "lines": [1, 2]})],
            separators=(", ", ": "),
        )
    )
    rows = ingest.rows("SELECT event_id, args, args_digest FROM agent_actions ORDER BY event_id")
    assert [json.loads(r["args"]) for r in rows] == [{"path": "/etc/hosts", "lines": [1, 2]}] * 2
    # same arguments, same stored text and digest, whichever file format carried them
    assert rows[0]["args"] == rows[1]["args"]
    assert rows[0]["args_digest"] == rows[1]["args_digest"]


def test_csv_lists_as_semicolons_or_json_arrays(ingest: Ingester, tmp_path: Path):
    recs = [
        {
            "record_type": "credential",
            "event_id": "c1",
            "ts": TS,
            "event": "issue",
            "credential_ref": "r1",
            "scopes": "a;b;;c",
        },
        {
            "record_type": "credential",
            "event_id": "c2",
            "ts": TS,
            "event": "issue",
            "credential_ref": "r2",
            "scopes": '["a;x", "b"]',
        },
        {
            "record_type": "credential",
            "event_id": "c3",
            "ts": TS,
            "event": "issue",
            "credential_ref": "r3",
            "scopes": "single",
        },
        {
            "record_type": "credential",
            "event_id": "c4",
            "ts": TS,
            "event": "issue",
            "credential_ref": "r4",
            "scopes": "",
        },
    ]
    assert counts(ingest.files(write_csv(tmp_path / "in" / "scopes.csv", recs))) == [(4, 4, 0, 0)]
    got = {
        r["event_id"]: r["scopes"]
        for r in ingest.rows("SELECT event_id, scopes FROM credential_events")
    }
    assert got == {
        "native:c1": ["a", "b", "c"],
        "native:c2": ["a;x", "b"],
        "native:c3": ["single"],
        "native:c4": None,
    }


def test_csv_row_numbers_count_the_header(ingest: Ingester, tmp_path: Path):
    path = write_csv(
        tmp_path / "in" / "lines.csv", [act("l1"), act("l2", ts="2024-05-01T10:00:01Z")]
    )
    ingest.files(path)
    assert ingest.rows("SELECT event_id, source_line FROM agent_actions ORDER BY source_line") == [
        {"event_id": "native:l1", "source_line": 2},
        {"event_id": "native:l2", "source_line": 3},
    ]


def test_parquet_timestamp_column(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "in" / "ts.parquet"
    path.parent.mkdir(parents=True)
    table = pa.table(
        {
            "record_type": ["action"],
            "event_id": ["p1"],
            "ts": pa.array([datetime(2024, 5, 1, 10, 0, 0, 250000)], pa.timestamp("us")),
            "agent_id": ["agent-1"],
            "tool": ["read_file"],
        }
    )
    pq.write_table(table, path)
    assert counts(ingest.files(path)) == [(1, 1, 0, 0)]
    assert ingest.one("SELECT ts FROM agent_actions") == datetime(2024, 5, 1, 10, 0, 0, 250000)


# --- tasks ---------------------------------------------------------------------------------------


def test_explicit_task_events_set_the_task_bounds_status_and_approval(ingest: Ingester):
    recs = [
        {
            "record_type": "task",
            "event_id": "s",
            "ts": "2024-05-01T10:00:00Z",
            "event": "start",
            "task_id": "task-1",
            "agent_id": "agent-1",
        },
        act("a1", ts="2024-05-01T09:59:00Z"),  # before the start event
        act("a2", ts="2024-05-01T10:10:00Z"),
        {
            "record_type": "task",
            "event_id": "ap",
            "ts": "2024-05-01T10:05:00Z",
            "event": "approval",
            "task_id": "task-1",
            "approved_by": "alice",
            "approved_scope": ["repo:write", "deploy"],
            "approval_expires_at": "2024-05-01T11:00:00Z",
        },
        {
            "record_type": "task",
            "event_id": "e",
            "ts": "2024-05-01T10:30:00Z",
            "event": "end",
            "task_id": "task-1",
            "status": "completed",
        },
        act("a3", ts="2024-05-01T10:45:00Z"),  # after the end event
    ]
    assert counts(ingest.lines("task.jsonl", recs)) == [(6, 6, 0, 0)]
    events = ingest.rows(
        "SELECT event_id, event_type, status, approved_by, approved_scope, approval_expires_at "
        "FROM task_events ORDER BY ts"
    )
    assert events == [
        {
            "event_id": "native:s",
            "event_type": "start",
            "status": None,
            "approved_by": None,
            "approved_scope": None,
            "approval_expires_at": None,
        },
        {
            "event_id": "native:ap",
            "event_type": "approval",
            "status": None,
            "approved_by": "alice",
            "approved_scope": ["repo:write", "deploy"],
            "approval_expires_at": datetime(2024, 5, 1, 11),
        },
        {
            "event_id": "native:e",
            "event_type": "end",
            "status": "completed",
            "approved_by": None,
            "approved_scope": None,
            "approval_expires_at": None,
        },
    ]
    task = ingest.rows("SELECT * EXCLUDE (updated_at) FROM tasks")
    assert task == [
        {
            "task_id": "task-1",
            "agent_id": "agent-1",
            "started_at": datetime(2024, 5, 1, 10),
            "ended_at": datetime(2024, 5, 1, 10, 30),
            "start_source": "task_event",
            "end_source": "task_event",
            "status": "completed",
            "actions": 3,
            "credentials_issued": 0,
            "approved_by": "alice",
            "approved_at": datetime(2024, 5, 1, 10, 5),
            "approved_scope": ["repo:write", "deploy"],
            "approval_expires_at": datetime(2024, 5, 1, 11),
        }
    ]


def test_without_an_end_event_the_task_ends_at_its_last_activity(ingest: Ingester):
    recs = [
        {
            "record_type": "task",
            "event_id": "s",
            "ts": "2024-05-01T10:00:00Z",
            "event": "start",
            "task_id": "task-2",
        },
        act("a1", task_id="task-2", ts="2024-05-01T10:10:00Z"),
        act("a2", task_id="task-2", ts="2024-05-01T10:20:00Z"),
    ]
    ingest.lines("open.jsonl", recs)
    row = ingest.rows("SELECT * FROM tasks")[0]
    assert (
        row["started_at"],
        row["ended_at"],
        row["start_source"],
        row["end_source"],
        row["status"],
    ) == (
        datetime(2024, 5, 1, 10),
        datetime(2024, 5, 1, 10, 20),
        "task_event",
        "last_activity",
        "unknown",
    )
    assert (row["agent_id"], row["actions"], row["approved_by"]) == ("agent-1", 2, None)


def test_a_later_end_event_in_another_file_updates_the_task(ingest: Ingester):
    ingest.lines("part1.jsonl", [act("a1", ts="2024-05-01T10:10:00Z")])
    assert ingest.one("SELECT end_source FROM tasks") == "last_activity"
    ingest.lines(
        "part2.jsonl",
        [
            {
                "record_type": "task",
                "event_id": "e",
                "ts": "2024-05-01T11:00:00Z",
                "event": "end",
                "task_id": "task-1",
                "status": "failed",
            }
        ],
    )
    row = ingest.rows("SELECT * FROM tasks")[0]
    assert (row["ended_at"], row["end_source"], row["status"], row["actions"]) == (
        datetime(2024, 5, 1, 11),
        "task_event",
        "failed",
        1,
    )


# --- credentials -----------------------------------------------------------------------------------


def test_credential_issue_with_ttl_sets_expiry(ingest: Ingester):
    recs = [
        {
            "record_type": "credential",
            "event_id": "c1",
            "ts": "2024-05-01T10:00:00Z",
            "event": "issue",
            "credential_ref": "jit-1",
            "ttl_s": 900,
            "task_id": "task-1",
            "agent_id": "agent-1",
        },
        {
            "record_type": "credential",
            "event_id": "c2",
            "ts": "2024-05-01T10:00:00Z",
            "event": "issue",
            "credential_ref": "jit-2",
            "ttl_s": "3600",
            "expires_at": "2024-05-01T10:05:00Z",
        },
        {
            "record_type": "credential",
            "event_id": "c3",
            "ts": "2024-05-01T10:00:00Z",
            "event": "issue",
            "credential_ref": "jit-3",
        },
        {
            "record_type": "credential",
            "event_id": "c4",
            "ts": "2024-05-01T10:10:00Z",
            "event": "use",
            "credential_ref": "jit-1",
            "ttl_s": 900,
        },
        {
            "record_type": "credential",
            "event_id": "c5",
            "ts": "2024-05-01T10:20:00Z",
            "event": "renew",
            "credential_ref": "jit-1",
            "ttl_s": 600,
        },
    ]
    assert counts(ingest.lines("creds.jsonl", recs)) == [(5, 5, 0, 0)]
    got = {r["event_id"]: r for r in ingest.rows("SELECT * FROM credential_events")}
    c1 = got["native:c1"]
    assert (c1["credential_kind"], c1["ttl_s"], c1["issued_at"], c1["expires_at"]) == (
        "native_jit",
        900,
        datetime(2024, 5, 1, 10),
        datetime(2024, 5, 1, 10, 15),
    )
    assert c1["credential_id"] == ingest.cred_id("native", "jit-1")
    assert (c1["outcome"], c1["task_source"]) == ("ok", "native")
    assert got["native:c2"]["expires_at"] == datetime(2024, 5, 1, 10, 5)  # an explicit expiry wins
    assert (got["native:c3"]["ttl_s"], got["native:c3"]["expires_at"]) == (None, None)
    assert (got["native:c4"]["issued_at"], got["native:c4"]["expires_at"]) == (None, None)
    assert got["native:c5"]["expires_at"] == datetime(2024, 5, 1, 10, 30)
    # uses and renewals without a task inherit the issuing task
    assert (got["native:c4"]["task_id"], got["native:c4"]["task_source"]) == (
        "task-1",
        "credential",
    )
    assert ingest.one("SELECT credentials_issued FROM tasks WHERE task_id = 'task-1'") == 1


def test_sts_session_hashes_in_the_aws_namespace_like_cloudtrail(ingest: Ingester):
    key = "ASIAAGENT00000000042"
    ingest.lines(
        "native.jsonl",
        [
            {
                "record_type": "credential",
                "event_id": "sts1",
                "ts": "2024-05-01T10:00:00Z",
                "event": "issue",
                "credential_ref": key,
                "credential_kind": "sts_session",
                "ttl_s": 3600,
                "task_id": "task-sts",
                "agent_id": "agent-9",
            },
            {
                "record_type": "credential",
                "event_id": "jit1",
                "ts": "2024-05-01T10:00:00Z",
                "event": "issue",
                "credential_ref": key,
                "credential_kind": "native_jit",
            },
        ],
    )
    ids = {
        r["event_id"]: r["credential_id"]
        for r in ingest.rows("SELECT event_id, credential_id FROM credential_events")
    }
    assert ids == {
        "native:sts1": ingest.cred_id("aws", key),
        "native:jit1": ingest.cred_id("native", key),
    }
    assert ids["native:sts1"] != ids["native:jit1"]
    # a CloudTrail call made with that key is the same credential and joins the task
    ingest.document(
        "ct.json",
        {
            "Records": [
                {
                    "eventTime": "2024-05-01T10:05:00Z",
                    "eventSource": "s3.amazonaws.com",
                    "eventName": "GetObject",
                    "eventID": "ct-1",
                    "userIdentity": {
                        "type": "AssumedRole",
                        "accessKeyId": key,
                        "arn": "arn:aws:sts::1:assumed-role/AgentRole/plain-session",
                    },
                    "requestParameters": {"bucketName": "b", "key": "k"},
                },
            ]
        },
    )
    ct = ingest.rows(
        "SELECT credential_id, task_id, task_source FROM agent_actions WHERE event_id = 'ct:ct-1'"
    )[0]
    assert ct == {
        "credential_id": ingest.cred_id("aws", key),
        "task_id": "task-sts",
        "task_source": "credential",
    }


def test_action_with_credential_ref_links_to_the_issuing_task(ingest: Ingester):
    recs = [
        {
            "record_type": "credential",
            "event_id": "c1",
            "ts": "2024-05-01T10:00:00Z",
            "event": "issue",
            "credential_ref": "jit-77",
            "task_id": "task-9",
            "agent_id": "agent-9",
        },
        act(
            "u1",
            task_id=None,
            agent_id="agent-3",
            credential_ref="jit-77",
            ts="2024-05-01T10:01:00Z",
        ),
        act("u2", task_id=None, credential_ref="jit-other", ts="2024-05-01T10:02:00Z"),
        act("u3", task_id="task-own", credential_ref="jit-77", ts="2024-05-01T10:03:00Z"),
    ]
    assert counts(ingest.lines("link.jsonl", recs)) == [(4, 4, 0, 0)]
    got = {
        r["event_id"]: (r["task_id"], r["task_source"], r["agent_id"], r["credential_id"])
        for r in ingest.rows("SELECT * FROM agent_actions")
    }
    assert got == {
        "native:u1": ("task-9", "credential", "agent-3", ingest.cred_id("native", "jit-77")),
        "native:u2": (None, None, "agent-1", ingest.cred_id("native", "jit-other")),
        "native:u3": ("task-own", "native", "agent-1", ingest.cred_id("native", "jit-77")),
    }
    assert ingest.one("SELECT actions FROM tasks WHERE task_id = 'task-9'") == 1


def test_credential_issued_in_a_later_file_links_earlier_actions(ingest: Ingester):
    ingest.lines("use.jsonl", [act("u1", task_id=None, credential_ref="jit-5")])
    assert ingest.one("SELECT task_id FROM agent_actions") is None
    ingest.lines(
        "issue.jsonl",
        [
            {
                "record_type": "credential",
                "event_id": "c1",
                "ts": "2024-05-01T09:00:00Z",
                "event": "issue",
                "credential_ref": "jit-5",
                "task_id": "task-5",
            }
        ],
    )
    assert ingest.rows("SELECT task_id, task_source FROM agent_actions") == [
        {"task_id": "task-5", "task_source": "credential"}
    ]
    assert ingest.one("SELECT actions FROM tasks WHERE task_id = 'task-5'") == 1


# --- identity and deduplication ----------------------------------------------------------------------


def test_event_id_absent_uses_a_content_hash(ingest: Ingester):
    one = act(None, tool="read_file")
    other = act(None, tool="write_file")
    report = ingest.lines("noid.jsonl", [one, one, other])
    assert counts(report) == [(3, 2, 0, 1)]
    ids = [r["event_id"] for r in ingest.rows("SELECT event_id FROM agent_actions ORDER BY tool")]
    assert len(set(ids)) == 2
    assert all(i.startswith("native:") and len(i) == len("native:") + 32 for i in ids)
    # the same content in a later file is still a duplicate
    assert counts(ingest.lines("noid2.jsonl", [other, act(None, tool="list_dir")])) == [
        (2, 1, 0, 1)
    ]


def test_explicit_event_ids_deduplicate_even_when_content_differs(ingest: Ingester):
    report = ingest.lines(
        "ids.jsonl", [act("same", tool="read_file"), act("same", tool="write_file")]
    )
    assert counts(report) == [(2, 1, 0, 1)]
    assert ingest.one("SELECT tool FROM agent_actions") == "read_file"  # the first one is kept


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        pytest.param(
            {**act("r1"), "record_type": "bogus"},
            "invalid value for record_type: bogus (expected action, credential or task)",
            id="record_type",
        ),
        pytest.param(
            {k: v for k, v in act("r2").items() if k != "record_type"},
            "missing required field record_type",
            id="no-record_type",
        ),
        pytest.param(
            {**act("r3"), "record_type": 5},
            "wrong type for record_type: expected string, got number",
            id="record_type-number",
        ),
        pytest.param(
            {
                "record_type": "credential",
                "event_id": "r4",
                "ts": TS,
                "event": "explode",
                "credential_ref": "x",
            },
            "invalid value for event: explode (expected issue, use, renew, revoke or expire)",
            id="credential-event",
        ),
        pytest.param(
            {"record_type": "task", "event_id": "r5", "ts": TS, "event": "pause", "task_id": "t"},
            "invalid value for event: pause (expected start, end or approval)",
            id="task-event",
        ),
        pytest.param(
            {"record_type": "task", "event_id": "r5b", "ts": TS, "event": "start"},
            "missing required field task_id",
            id="task-without-task_id",
        ),
        pytest.param(
            {"record_type": "credential", "event_id": "r5c", "ts": TS, "event": "issue"},
            "missing required field credential_ref",
            id="no-credential_ref",
        ),
        pytest.param(
            {
                "record_type": "credential",
                "event_id": "r5d",
                "ts": TS,
                "event": "issue",
                "credential_ref": "x",
                "credential_kind": "password",
            },
            "invalid value for credential_kind: password",
            id="credential_kind",
        ),
        pytest.param(
            {
                "record_type": "credential",
                "event_id": "r5e",
                "ts": TS,
                "event": "issue",
                "credential_ref": "x",
                "ttl_s": "forever",
            },
            "wrong type for ttl_s: expected integer seconds, got forever",
            id="ttl_s",
        ),
        pytest.param(
            {**act("r6"), "outcome": "maybe"}, "invalid value for outcome: maybe", id="outcome"
        ),
        pytest.param(
            {**act("r7"), "agent_id": 42},
            "wrong type for agent_id: expected string, got number",
            id="agent_id-type",
        ),
        pytest.param(
            {**act("r7b"), "agent_id": ""}, "empty required field agent_id", id="agent_id-empty"
        ),
        pytest.param(
            {k: v for k, v in act("r8").items() if k != "tool"},
            "missing required field tool",
            id="no-tool",
        ),
        pytest.param(
            {**act("r8b"), "tool": ["a"]},
            "wrong type for tool: expected string, got array",
            id="tool-type",
        ),
        pytest.param(
            {**act("r9"), "ts": "yesterday"},
            'unparseable timestamp in ts: "yesterday"',
            id="ts-text",
        ),
        pytest.param(
            {k: v for k, v in act("r10").items() if k != "ts"},
            "missing required field ts",
            id="no-ts",
        ),
        pytest.param(
            {**act("r11"), "ts": "1970-01-02T00:00:00Z"},
            "timestamp out of range in ts: 1970-01-02 00:00:00",
            id="ts-range",
        ),
        pytest.param(
            {**act("r12"), "action_class": "steal"},
            "invalid value for action_class: steal",
            id="class",
        ),
        pytest.param(
            {**act("r13"), "sensitivity": "extreme"},
            "invalid value for sensitivity: extreme",
            id="sensitivity",
        ),
        pytest.param(
            {**act("r14"), "external": "sometimes"},
            "wrong type for external: expected boolean",
            id="external",
        ),
        pytest.param(
            {**act("r15"), "bytes_out": -1},
            "invalid value for bytes_out: -1 (expected an integer >= 0)",
            id="bytes_out-negative",
        ),
        pytest.param(
            {**act("r15b"), "bytes_out": "-20"},
            "invalid value for bytes_out: -20 (expected an integer >= 0)",
            id="bytes_out-negative-string",
        ),
        pytest.param(
            {**act("r16"), "bytes_out": 1.5},
            "wrong type for bytes_out: expected integer bytes, got 1.5",
            id="bytes_out-fraction",
        ),
        pytest.param(
            {**act("r16b"), "bytes_out": "lots"},
            "wrong type for bytes_out: expected integer bytes, got lots",
            id="bytes_out-text",
        ),
        pytest.param(
            {**act("r16c"), "bytes_out": True},
            "wrong type for bytes_out: expected integer bytes, got true",
            id="bytes_out-boolean",
        ),
        pytest.param([1, 2], "record is not a JSON object (got array)", id="not-object"),
    ],
)
def test_invalid_records_are_rejected_with_a_reason(ingest: Ingester, record, reason):
    report = ingest.lines("bad.jsonl", [act("good"), record])
    assert counts(report) == [(2, 1, 1, 0)]
    rejected = ingest.rows("SELECT reason, source_format, source_line FROM rejected_events")
    assert rejected == [{"reason": reason, "source_format": "native", "source_line": 2}]
    assert ingest.one("SELECT event_id FROM agent_actions") == "native:good"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(4096, 4096, id="integer"),
        pytest.param(0, 0, id="zero"),
        pytest.param("4096", 4096, id="numeric-string"),
        pytest.param(4096.0, 4096, id="whole-number-float"),
        pytest.param(None, None, id="null"),
        pytest.param("", None, id="empty"),
    ],
)
def test_bytes_out_accepted_forms(ingest: Ingester, value, expected):
    assert counts(ingest.lines("b.jsonl", [act("b", bytes_out=value)])) == [(1, 1, 0, 0)]
    assert ingest.one("SELECT bytes_out FROM agent_actions") == expected


def test_bytes_out_absent_is_null(ingest: Ingester):
    assert counts(ingest.lines("b.jsonl", [act("b")])) == [(1, 1, 0, 0)]
    assert ingest.one("SELECT bytes_out FROM agent_actions") is None


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        pytest.param(1714557600, datetime(2024, 5, 1, 10), id="epoch-seconds"),
        pytest.param(
            1714557600.5, datetime(2024, 5, 1, 10, 0, 0, 500000), id="epoch-seconds-fraction"
        ),
        pytest.param(
            1714557600123, datetime(2024, 5, 1, 10, 0, 0, 123000), id="epoch-milliseconds"
        ),
        pytest.param("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10), id="iso-offset"),
        pytest.param("2024-05-01 10:00:00", datetime(2024, 5, 1, 10), id="iso-naive-is-utc"),
    ],
)
def test_timestamp_forms_accepted(ingest: Ingester, ts, expected):
    assert counts(ingest.lines("ts.jsonl", [act("t", ts=ts)])) == [(1, 1, 0, 0)]
    assert ingest.one("SELECT ts FROM agent_actions") == expected


def test_csv_row_with_the_wrong_number_of_columns_is_rejected(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "in" / "bad.csv"
    path.parent.mkdir(parents=True)
    bad_line = "action,bad,2024-05-01T10:00:00Z,agent-1,read_file,surplus,columns"
    path.write_text(
        "record_type,event_id,ts,agent_id,tool\n"
        "action,ok1,2024-05-01T10:00:00Z,agent-1,read_file\n"
        f"{bad_line}\n"
        "action,ok2,2024-05-01T10:01:00Z,agent-1,write_file\n"
    )
    report = ingest.files(path)
    assert counts(report) == [(3, 2, 1, 0)]
    assert report.files[0].source_format == "native_csv"
    assert sorted(r["event_id"] for r in ingest.rows("SELECT event_id FROM agent_actions")) == [
        "native:ok1",
        "native:ok2",
    ]
    rejected = ingest.rows("SELECT reason, source_line, raw_text, raw_bytes FROM rejected_events")
    assert len(rejected) == 1
    assert "csv" in rejected[0]["reason"].lower(), rejected[0]["reason"]
    assert "too many columns" in rejected[0]["reason"].lower()
    assert rejected[0]["source_line"] == 3
    assert bad_line in rejected[0]["raw_text"]
    assert rejected[0]["raw_bytes"] == len(bad_line)


def test_csv_rejects_are_counted_against_their_own_file(ingest: Ingester, tmp_path: Path):
    bad = tmp_path / "in" / "a_bad.csv"
    good = tmp_path / "in" / "b_good.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "record_type,event_id,ts,agent_id,tool\naction,x1,2024-05-01T10:00:00Z,agent-1,t,extra\n"
        "action,x2,2024-05-01T10:00:00Z,agent-1,t\n"
    )
    good.write_text(
        "record_type,event_id,ts,agent_id,tool\naction,y1,2024-05-01T10:00:00Z,agent-1,t\n"
    )
    report = ingest.files(bad, good)
    assert {Path(f.source_file).name: (f.records, f.loaded, f.rejected) for f in report.files} == {
        "a_bad.csv": (2, 1, 1),
        "b_good.csv": (1, 1, 0),
    }


def test_crlf_json_lines_and_blank_lines(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "in" / "crlf.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        json.dumps(act("c1")).encode()
        + b"\r\n\r\n"
        + json.dumps(act("c2", tool="x")).encode()
        + b"\r\n"
    )
    assert counts(ingest.files(path)) == [(2, 2, 0, 0)]
    assert ingest.rows("SELECT event_id, source_line FROM agent_actions ORDER BY source_line") == [
        {"event_id": "native:c1", "source_line": 1},
        {"event_id": "native:c2", "source_line": 3},
    ]


def test_annotations_object_is_read(ingest: Ingester):
    ingest.lines("ann.jsonl", [act("n1", tool="frobnicate", annotations={"readOnlyHint": True})])
    row = ingest.rows("SELECT action_class, classified_by FROM agent_actions")[0]
    assert row == {"action_class": "read", "classified_by": "mcp_annotation"}


def test_secret_names_are_kept_and_secret_ids_redacted(ingest: Ingester):
    # A Secrets Manager secret's id or name says which secret was read; Vault AppRole's
    # secret_id is itself the secret.
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
    args = {
        "secretId": arn,
        "secret_name": "prod/db",
        "role_id": "r-1",
        "secret_id": "7d1c-s3cr3t-9f",
    }
    ingest.lines("approle.jsonl", [act("s1", tool="vault_login", arguments=args)])
    stored = json.loads(ingest.one("SELECT args FROM agent_actions"))
    assert stored == {**args, "secret_id": "[REDACTED]"}
    assert "7d1c-s3cr3t-9f" not in ingest.stored_text()
