"""Recognise a log file's format from its content (never from its name alone)."""

from __future__ import annotations

import json

from detectors.ingest.reader import FileHead

FORMATS = ("otlp", "vault", "cloudtrail", "k8s", "native", "native_csv", "native_parquet")


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
    return None


def _classify(rec: dict) -> str | None:
    if "resourceSpans" in rec:
        return "otlp"
    if "Records" in rec or ("eventSource" in rec and "eventName" in rec):
        return "cloudtrail"
    if rec.get("type") in ("request", "response") and ("request" in rec or "auth" in rec):
        return "vault"
    if str(rec.get("apiVersion", "")).startswith("audit.k8s.io") or (
        "auditID" in rec and "verb" in rec
    ):
        return "k8s"
    if "record_type" in rec:
        return "native"
    return None


def _looks_like_csv(head: FileHead) -> bool:
    lines = head.first_lines(2)
    return (
        bool(lines)
        and lines[0][:1] not in (b"{", b"[")
        and b"record_type" in lines[0]
        and b"," in lines[0]
    )
