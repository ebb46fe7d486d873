"""Recognising a file's format from its content (detectors/ingest/formats.py) and --format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.ingest.formats import FORMATS, UnknownFormatError, detect_format
from detectors.ingest.pipeline import IngestError
from detectors.ingest.reader import read_head
from tests.conftest import Ingester

OTLP = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "agent-svc"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "t"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "execute_tool read_file",
                            "kind": 1,
                            "startTimeUnixNano": "1714557600000000000",
                            "endTimeUnixNano": "1714557600100000000",
                            "attributes": [
                                {
                                    "key": "gen_ai.operation.name",
                                    "value": {"stringValue": "execute_tool"},
                                },
                                {"key": "gen_ai.tool.name", "value": {"stringValue": "read_file"}},
                            ],
                        }
                    ],
                }
            ],
        }
    ]
}
VAULT = {
    "time": "2024-05-01T10:00:00Z",
    "type": "request",
    "auth": {
        "client_token": "hmac-sha256:aaaa",
        "accessor": "hmac-sha256:bbbb",
        "display_name": "approle",
        "policies": ["default"],
        "metadata": {"task_id": "task-1"},
        "token_type": "service",
        "token_ttl": 3600,
        "token_issue_time": "2024-05-01T09:00:00Z",
    },
    "request": {
        "id": "req-1",
        "operation": "read",
        "path": "secret/data/app",
        "mount_type": "kv",
        "remote_address": "10.0.0.1",
    },
}
VAULT_RESPONSE = {**VAULT, "type": "response", "response": {"data": {"value": "hmac-sha256:cccc"}}}
CT_RECORD = {
    "eventTime": "2024-05-01T10:00:00Z",
    "eventSource": "s3.amazonaws.com",
    "eventName": "GetObject",
    "eventID": "ct-1",
    "userIdentity": {"type": "IAMUser", "userName": "bot", "accessKeyId": "AKIAEXAMPLE000000001"},
    "requestParameters": {"bucketName": "b", "key": "k"},
    "sourceIPAddress": "10.0.0.2",
}
CT_RECORD2 = {**CT_RECORD, "eventID": "ct-2", "eventName": "ListBuckets", "requestParameters": None}
K8S = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "3a5e1f2c-0000-4000-8000-000000000001",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods",
    "verb": "list",
    "user": {"username": "system:serviceaccount:default:agent-task-1"},
    "objectRef": {"resource": "pods", "namespace": "default"},
    "responseStatus": {"code": 200},
    "requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z",
    "stageTimestamp": "2024-05-01T10:00:00.100000Z",
}
# AKS diagnostic log: the Event as a JSON string in properties.log.
K8S_AKS = {
    "time": "2024-05-01T10:00:00.1000000Z",
    "resourceId": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-1",
    "category": "kube-audit",
    "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
    "properties": {"log": json.dumps(K8S), "stream": "stdout", "pod": "kube-apiserver-abc"},
}
# GKE Cloud Logging entry of a Kubernetes API call.
K8S_GKE = {
    "protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": "system:serviceaccount:default:agent-task-1"},
        "methodName": "io.k8s.core.v1.pods.list",
        "resourceName": "core/v1/namespaces/default/pods",
        "requestMetadata": {"callerIp": "10.128.0.7"},
        "serviceName": "k8s.io",
    },
    "insertId": "b1c2d3",
    "resource": {
        "type": "k8s_cluster",
        "labels": {"cluster_name": "c1", "location": "eu", "project_id": "p"},
    },
    "timestamp": "2024-05-01T10:00:00.000000Z",
    "operation": {
        "id": "3a5e1f2c-0000-4000-8000-000000000001",
        "producer": "k8s.io",
        "first": True,
        "last": True,
    },
}
NATIVE = {
    "record_type": "action",
    "event_id": "n1",
    "ts": "2024-05-01T10:00:00Z",
    "agent_id": "agent-1",
    "tool": "read_file",
}
NATIVE2 = {**NATIVE, "event_id": "n2", "tool": "write_file"}
CSV = b"record_type,event_id,ts,agent_id,tool\naction,c1,2024-05-01T10:00:00Z,agent-1,read_file\n"


def jsonl(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def pretty(doc) -> bytes:
    return json.dumps(doc, indent=2).encode()


def parquet_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "tmp.parquet"
    pq.write_table(pa.table({k: [v] for k, v in NATIVE.items()}), path)
    return path.read_bytes()


CASES = [
    pytest.param("t.json", pretty(OTLP), "otlp", id="otlp-pretty"),
    pytest.param("t.jsonl", jsonl(OTLP, OTLP), "otlp", id="otlp-json-lines"),
    pytest.param("t.json.gz", gzip.compress(pretty(OTLP)), "otlp", id="otlp-gzip-pretty"),
    pytest.param("t.json", json.dumps(OTLP).encode(), "otlp", id="otlp-one-line-no-newline"),
    pytest.param("audit.log", jsonl(VAULT, VAULT_RESPONSE), "vault", id="vault-lines"),
    pytest.param("audit.log", jsonl(VAULT_RESPONSE), "vault", id="vault-response-first"),
    pytest.param("audit.log.gz", gzip.compress(jsonl(VAULT)), "vault", id="vault-gzip"),
    pytest.param(
        "ct.json",
        pretty({"Records": [CT_RECORD, CT_RECORD2]}),
        "cloudtrail",
        id="cloudtrail-records-pretty",
    ),
    pytest.param(
        "ct.json",
        json.dumps({"Records": [CT_RECORD]}).encode() + b"\n",
        "cloudtrail",
        id="cloudtrail-records-compact",
    ),
    pytest.param(
        "ct.json.gz",
        gzip.compress(json.dumps({"Records": [CT_RECORD]}).encode()),
        "cloudtrail",
        id="cloudtrail-s3-delivery-gzip",
    ),
    pytest.param(
        "ct.json", pretty([CT_RECORD, CT_RECORD2]), "cloudtrail", id="cloudtrail-array-pretty"
    ),
    pytest.param(
        "ct.json",
        json.dumps([CT_RECORD, CT_RECORD2]).encode() + b"\n",
        "cloudtrail",
        id="cloudtrail-array-compact",
    ),
    pytest.param(
        "ct.jsonl", jsonl(CT_RECORD, CT_RECORD2), "cloudtrail", id="cloudtrail-json-lines"
    ),
    pytest.param("k8s.log", jsonl(K8S), "k8s", id="k8s-lines"),
    pytest.param(
        "k8s.log",
        jsonl({k: v for k, v in K8S.items() if k not in ("apiVersion", "kind")}),
        "k8s",
        id="k8s-without-apiVersion",
    ),
    pytest.param(
        "k8s.json",
        pretty({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [K8S]}),
        "k8s",
        id="k8s-event-list",
    ),
    pytest.param("aks.json", jsonl(K8S_AKS, K8S_AKS), "k8s", id="k8s-aks-lines"),
    pytest.param(
        "aks.json",
        jsonl({**K8S_AKS, "category": "kube-audit-admin"}),
        "k8s",
        id="k8s-aks-kube-audit-admin",
    ),
    pytest.param(
        "PT1H.json", pretty({"records": [K8S_AKS, K8S_AKS]}), "k8s", id="k8s-aks-records-document"
    ),
    pytest.param(
        "PT1H.json",
        json.dumps({"records": [K8S_AKS] * 400}).encode() + b"\n",
        "k8s",
        id="k8s-aks-records-one-line",
    ),
    pytest.param("gke.json", jsonl(K8S_GKE), "k8s", id="k8s-gke-lines"),
    pytest.param("gke.json", pretty([K8S_GKE, K8S_GKE]), "k8s", id="k8s-gke-array"),
    pytest.param("n.jsonl", jsonl(NATIVE, NATIVE2), "native", id="native-lines"),
    pytest.param("n.jsonl.gz", gzip.compress(jsonl(NATIVE)), "native", id="native-gzip"),
    pytest.param("n.json", pretty([NATIVE, NATIVE2]), "native", id="native-array-pretty"),
    pytest.param(
        "n.jsonl",
        b"this line is broken\n" + jsonl(NATIVE),
        "native",
        id="native-after-a-broken-line",
    ),
    pytest.param("n.csv", CSV, "native_csv", id="native-csv"),
    pytest.param("n.csv.gz", gzip.compress(CSV), "native_csv", id="native-csv-gzip"),
    # the name does not decide
    pytest.param("looks_like.csv", pretty(OTLP), "otlp", id="otlp-named-csv"),
    pytest.param("looks_like.json", CSV, "native_csv", id="csv-named-json"),
    pytest.param("noext", jsonl(CT_RECORD), "cloudtrail", id="no-extension"),
]


@pytest.mark.parametrize(("name", "data", "expected"), CASES)
def test_detect_format_by_content(tmp_path: Path, name: str, data: bytes, expected: str):
    path = tmp_path / name
    path.write_bytes(data)
    assert detect_format(read_head(path)) == expected


def test_detect_parquet_by_magic(tmp_path: Path):
    path = tmp_path / "rows.json"  # a misleading name
    path.write_bytes(parquet_bytes(tmp_path))
    assert detect_format(read_head(path)) == "native_parquet"


def test_detect_a_document_larger_than_the_head(tmp_path: Path):
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x" * 2_000_000}]}]}]}
    path = tmp_path / "big.json"
    path.write_bytes(json.dumps(doc).encode() + b"\n")  # one line longer than the 1 MiB head
    assert detect_format(read_head(path)) == "otlp"


def test_detect_an_aks_export_larger_than_the_head(tmp_path: Path):
    path = tmp_path / "PT1H.json"
    records = [{**K8S_AKS, "properties": {"log": json.dumps({**K8S, "pad": "x" * 200_000})}}] * 8
    path.write_bytes(json.dumps({"records": records}).encode() + b"\n")  # beyond the 1 MiB head
    assert detect_format(read_head(path)) == "k8s"


def test_a_gke_entry_of_another_google_service_is_not_kubernetes(tmp_path: Path):
    other = {
        **K8S_GKE,
        "protoPayload": {
            **K8S_GKE["protoPayload"],
            "serviceName": "compute.googleapis.com",
            "methodName": "v1.compute.instances.insert",
        },
    }
    path = tmp_path / "gce.json"
    path.write_bytes(jsonl(other))
    with pytest.raises(UnknownFormatError):
        detect_format(read_head(path))


def test_a_json_line_with_invalid_utf8_is_not_taken_for_csv(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(b'{"record_type": "action", "event_id": "x", "tool": "t", "note": "\xff"}\n')
    assert detect_format(read_head(path)) == "native"
    report = ingest.files(path)
    assert [(f.source_format, f.records, f.rejected) for f in report.files] == [("native", 1, 1)]
    assert ingest.one("SELECT reason FROM rejected_events") == "invalid UTF-8 byte sequence"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            jsonl({"foo": 1, "bar": 2}),
            "unrecognised record shape (keys: ['bar', 'foo'])",
            id="json-shape",
        ),
        pytest.param(
            pretty({"hello": "world"}),
            "unrecognised record shape (keys: ['hello'])",
            id="pretty-shape",
        ),
        pytest.param(
            b"hello world\nthis is text\n", "content is not JSON, CSV or Parquet", id="text"
        ),
        pytest.param(
            b"ts,tool\n2024-05-01,read\n",
            "content is not JSON, CSV or Parquet",
            id="csv-without-record_type",
        ),
        pytest.param(
            gzip.compress(b"plain words\n"), "content is not JSON, CSV or Parquet", id="gzip-text"
        ),
        pytest.param(
            jsonl({"type": "request"}), "unrecognised record shape", id="vault-like-without-request"
        ),
    ],
)
def test_unknown_content_raises_naming_the_file(tmp_path: Path, data: bytes, message: str):
    path = tmp_path / "mystery.log"
    path.write_bytes(data)
    with pytest.raises(UnknownFormatError) as err:
        detect_format(read_head(path))
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


# --- through ingest_paths ----------------------------------------------------------------------------


def test_ingest_detects_each_file_of_a_folder(ingest: Ingester, tmp_path: Path):
    folder = tmp_path / "landing"
    folder.mkdir()
    (folder / "a_otlp.json").write_bytes(pretty(OTLP))
    (folder / "b_vault.log").write_bytes(jsonl(VAULT))
    (folder / "c_ct.json.gz").write_bytes(
        gzip.compress(pretty({"Records": [CT_RECORD, CT_RECORD2]}))
    )
    (folder / "d_k8s.log").write_bytes(jsonl(K8S))
    (folder / "e_native.jsonl").write_bytes(jsonl(NATIVE, NATIVE2))
    (folder / "f_native.csv").write_bytes(CSV)
    (folder / "g_native.parquet").write_bytes(parquet_bytes(tmp_path))
    report = ingest.files(folder)
    got = {Path(f.source_file).name: (f.source_format, f.records, f.error) for f in report.files}
    assert got == {
        "a_otlp.json": ("otlp", 1, None),
        "b_vault.log": ("vault", 1, None),
        "c_ct.json.gz": ("cloudtrail", 2, None),
        "d_k8s.log": ("k8s", 1, None),
        "e_native.jsonl": ("native", 2, None),
        "f_native.csv": ("native_csv", 1, None),
        "g_native.parquet": ("native_parquet", 1, None),
    }
    assert all(f.balanced for f in report.files)
    assert (
        report.total("loaded") + report.total("duplicates") == 9
    )  # the CSV and Parquet rows share no id
    assert ingest.one("SELECT count(*) FROM ingest_files") == 7


def test_ingest_reports_unknown_files_and_loads_the_rest(ingest: Ingester, tmp_path: Path):
    unknown = tmp_path / "unknown.log"
    unknown.write_bytes(jsonl({"foo": 1}))
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(NATIVE))
    report = ingest.files(unknown, good)
    by_name = {Path(f.source_file).name: f for f in report.files}
    assert by_name["unknown.log"].source_format is None
    assert by_name["unknown.log"].error.startswith(f"{unknown}: unrecognised record shape")
    assert (by_name["unknown.log"].records, by_name["unknown.log"].loaded) == (0, 0)
    assert (by_name["good.jsonl"].loaded, by_name["good.jsonl"].error) == (1, None)
    assert (
        ingest.one("SELECT count(*) FROM ingest_files WHERE source_file = ?", [str(unknown)]) == 0
    )


@pytest.mark.parametrize(
    "data", [b"", b"\n\n", gzip.compress(b"")], ids=["empty", "blank-lines", "empty-gzip"]
)
def test_an_empty_file_is_reported_not_skipped(ingest: Ingester, tmp_path: Path, data: bytes):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(data)
    report = ingest.files(path)
    assert [(f.source_format, f.records, f.loaded, f.rejected) for f in report.files] == [
        ("native", 1, 0, 1)
    ]
    assert ingest.one("SELECT reason FROM rejected_events") == "empty file: no records"


def test_a_native_json_array_is_one_rejected_record(ingest: Ingester, tmp_path: Path):
    """Native input is JSON lines, CSV or Parquet; an array is recognised as native but not unpacked."""
    path = tmp_path / "native_array.json"
    path.write_bytes(pretty([NATIVE, NATIVE2]))
    report = ingest.files(path)
    assert [(f.source_format, f.records, f.loaded, f.rejected) for f in report.files] == [
        ("native", 1, 0, 1)
    ]
    assert (
        ingest.one("SELECT reason FROM rejected_events")
        == "record is not a JSON object (got array)"
    )


def test_small_json_array_with_one_record_per_line_loads_every_record(
    ingest: Ingester, tmp_path: Path
):
    path = tmp_path / "ct_array.json"
    path.write_bytes(
        b"[\n"
        + json.dumps(CT_RECORD).encode()
        + b",\n"
        + json.dumps(CT_RECORD2).encode()
        + b"\n]\n"
    )
    report = ingest.files(path)
    assert [(f.source_format, f.records, f.loaded, f.rejected) for f in report.files] == [
        ("cloudtrail", 2, 2, 0)
    ]
    assert sorted(r["event_id"] for r in ingest.rows("SELECT event_id FROM agent_actions")) == [
        "ct:ct-1",
        "ct:ct-2",
    ]


def test_gzipped_csv_is_read_whatever_its_name(ingest: Ingester, tmp_path: Path):
    named = tmp_path / "rows.csv.gz"
    named.write_bytes(gzip.compress(CSV))
    unnamed = tmp_path / "rows2.csv"
    unnamed.write_bytes(gzip.compress(CSV.replace(b"c1", b"c2")))
    report = ingest.files(named, unnamed)
    assert {
        Path(f.source_file).name: (f.source_format, f.records, f.loaded) for f in report.files
    } == {"rows.csv.gz": ("native_csv", 1, 1), "rows2.csv": ("native_csv", 1, 1)}


# --- the --format override -----------------------------------------------------------------------------


def test_format_override_skips_detection(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "norecordtype.jsonl"
    path.write_bytes(jsonl({"ts": "2024-05-01T10:00:00Z", "tool": "read_file"}))
    with pytest.raises(UnknownFormatError):
        detect_format(read_head(path))
    report = ingest.files(path, fmt="native")
    assert [(f.source_format, f.records, f.rejected, f.error) for f in report.files] == [
        ("native", 1, 1, None)
    ]
    assert ingest.one("SELECT reason FROM rejected_events") == "missing required field record_type"


def test_format_override_wins_over_detection(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "ct.json"
    path.write_bytes(pretty({"Records": [CT_RECORD]}))
    report = ingest.files(path, fmt="otlp")
    assert [(f.source_format, f.records, f.loaded, f.rejected) for f in report.files] == [
        ("otlp", 1, 0, 1)
    ]
    assert (
        ingest.one("SELECT reason FROM rejected_events")
        == "not an OTLP trace export: missing resourceSpans"
    )
    assert ingest.one("SELECT count(*) FROM agent_actions") == 0


def test_format_override_matching_the_content_loads_it(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "ct.json"
    path.write_bytes(pretty({"Records": [CT_RECORD, CT_RECORD2]}))
    report = ingest.files(path, fmt="cloudtrail")
    assert [(f.source_format, f.records, f.loaded) for f in report.files] == [("cloudtrail", 2, 2)]


def test_format_override_native_csv_for_an_undetectable_csv(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "plain.csv"
    path.write_bytes(b"ts,tool\n2024-05-01T10:00:00Z,read_file\n")
    report = ingest.files(path, fmt="native_csv")
    assert [(f.source_format, f.records, f.rejected) for f in report.files] == [
        ("native_csv", 1, 1)
    ]
    assert ingest.one("SELECT reason FROM rejected_events") == "missing required field record_type"


def test_unknown_format_override_is_an_error(ingest: Ingester, tmp_path: Path):
    path = tmp_path / "n.jsonl"
    path.write_bytes(jsonl(NATIVE))
    with pytest.raises(IngestError, match="unknown format 'syslog'") as err:
        ingest.files(path, fmt="syslog")
    for name in FORMATS:
        assert name in str(err.value)
    assert ingest.one("SELECT count(*) FROM ingest_files") == 0
