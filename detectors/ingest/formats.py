"""Recognise a log file's format from its content (never from its name alone)."""

from __future__ import annotations

import json

from detectors.ingest.reader import FileHead

FORMATS = ("otlp", "vault", "cloudtrail", "k8s", "native", "native_csv", "native_parquet")


# Vault audit record types: requests and responses, and those of the KMIP secrets engine.
_VAULT_TYPES = ("request", "response", "kmip-request", "kmip-response")


class UnknownFormatError(ValueError):
    """The content matches no supported format."""


def detect_format(head: FileHead) -> str:
    """Name the format of a file from its first record; raise UnknownFormatError if none fits."""
    if head.is_parquet:
        return "native_parquet"
    sample = _first_record(head)
    if sample is None:
        if _looks_like_csv(head):
            return "native_csv"
        if not head.head.strip():
            return "native"  # empty: reported as an empty file by the native parser
        raise UnknownFormatError(f"{head.path}: content is not JSON, CSV or Parquet")
    fmt = _classify(sample)
    if fmt is None:
        keys = sorted(sample)[:8] if isinstance(sample, dict) else type(sample).__name__
        raise UnknownFormatError(f"{head.path}: unrecognised record shape (keys: {keys})")
    return fmt


def _first_record(head: FileHead) -> dict | None:
    candidates = [head.head] if head.is_document() else head.first_lines(20)
    for raw in candidates:
        try:
            # Replace undecodable bytes: a record with one bad byte still shows its format.
            value = json.loads(raw.decode("utf-8", "replace"), parse_int=str)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply for Python
            continue
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, dict)), None)
        if isinstance(value, dict):
            return value
    # A document too large for the head still starts with its outer keys.
    text = head.head[:4096].decode("utf-8", "replace")
    fmt_record: dict[str, list]
    for marker, fmt_record in (
        ('"resourceSpans"', {"resourceSpans": []}),
        ('"Records"', {"Records": []}),
    ):
        if marker in text:
            return fmt_record
    # An AKS export ({"records": [...]}) too large for the head.
    if '"kube-audit' in text and '"properties"' in text:
        return {"category": "kube-audit", "properties": {}}
    # Grafana Tempo's export: {"batches": [<resourceSpans entry>, ...]}.
    if '"batches"' in text and any(k in text for k in _OTLP_SCOPE_KEYS):
        return {"batches": []}
    return None


# The keys of a resourceSpans entry: scopeSpans, or instrumentationLibrarySpans in older exporters.
_OTLP_SCOPE_KEYS = ('"scopeSpans"', '"instrumentationLibrarySpans"')


def _is_tempo_batches(rec: dict) -> bool:
    batches = rec.get("batches")
    return isinstance(batches, list) and (
        not batches
        or any(
            isinstance(b, dict) and ("scopeSpans" in b or "instrumentationLibrarySpans" in b)
            for b in batches
        )
    )


def _classify(rec: dict) -> str | None:
    if "resourceSpans" in rec or _is_tempo_batches(rec):
        return "otlp"
    if "Records" in rec or ("eventSource" in rec and "eventName" in rec):
        return "cloudtrail"
    if rec.get("type") in _VAULT_TYPES and ("request" in rec or "auth" in rec):
        return "vault"
    if _is_k8s_audit(rec):
        return "k8s"
    if "record_type" in rec:
        return "native"
    return None


# AKS diagnostic-log categories that carry audit.k8s.io Events in properties.log.
_AKS_AUDIT_CATEGORIES = ("kube-audit", "kube-audit-admin")


def _is_k8s_audit(rec: dict) -> bool:
    """A Kubernetes audit Event or EventList, an AKS diagnostic record wrapping one (alone or in
    an Event Hub / storage export's ``records``), or a GKE Cloud Logging entry of a k8s.io call."""
    if str(rec.get("apiVersion", "")).startswith("audit.k8s.io") or (
        "auditID" in rec and "verb" in rec
    ):
        return True
    records = rec.get("records")
    if isinstance(records, list):
        rec = next((r for r in records if isinstance(r, dict)), {})
    if rec.get("category") in _AKS_AUDIT_CATEGORIES and isinstance(rec.get("properties"), dict):
        return True
    payload = rec.get("protoPayload")
    return isinstance(payload, dict) and (
        payload.get("serviceName") == "k8s.io"
        or str(payload.get("methodName", "")).startswith("io.k8s.")
    )


def _looks_like_csv(head: FileHead) -> bool:
    lines = head.first_lines(2)
    return (
        bool(lines)
        and lines[0][:1] not in (b"{", b"[")
        and b"record_type" in lines[0]
        and b"," in lines[0]
    )
