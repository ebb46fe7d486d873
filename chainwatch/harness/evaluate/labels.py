"""The simulator's ground truth (``labels.jsonl``), read with each label's credential hashed the
way ingest hashes it: by ingest's own ``cw_hash`` macro (sql/ingest_macros.sql)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from detectors.core.sqlfiles import run_sql
from detectors.ingest.pipeline import hash_pads

# Scenarios whose entity is a credential: matched on credential_id when the label names one.
CREDENTIAL_SCENARIOS: frozenset[str] = frozenset(
    {
        "credential_outlived_task",
        "credential_reused_by_other_task",
        "credential_shared_across_agents",
        "leaked_credential_new_ip",
    }
)

_HASH_SQL = """SELECT p.ns, p.v, cw_hash(p.ns, p.v)
    FROM (SELECT unnest(?::STRUCT(ns VARCHAR, v VARCHAR)[]) AS p)"""


class EvaluationError(ValueError):
    """The labels file or the arguments cannot be evaluated; the message says where."""


def credential_ids(
    pairs: Iterable[tuple[str, str]], hash_key: str
) -> dict[tuple[str, str], str | None]:
    """The credential ids chainwatch stores for (namespace, raw identifier) pairs, computed by
    ingest's ``cw_hash`` macro over all of them in one query.

    The macros run on a private in-memory connection: they are session objects keyed with
    ``hash_key``, so the warehouse connection (often read-only) is neither needed nor changed.
    An empty identifier has no id (``None``), as in ingest.
    """
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    ipad, opad = hash_pads(hash_key)
    with duckdb.connect() as con:
        run_sql(con, "ingest_macros", {"ipad": ipad, "opad": opad})
        rows = con.execute(_HASH_SQL, [[{"ns": ns, "v": v} for ns, v in wanted]]).fetchall()
    return {(ns, v): cred_id for ns, v, cred_id in rows}


def credential_id(namespace: str, raw: str, hash_key: str) -> str | None:
    """The keyed hash chainwatch stores for one raw credential identifier (as ingest computes it)."""
    return credential_ids([(namespace, raw)], hash_key)[(namespace, raw)]


@dataclass(frozen=True)
class Label:
    """One labelled scenario instance, with its credential already hashed."""

    scenario: str
    task_id: str
    agent_id: str | None = None
    credential_id: str | None = None
    note: str | None = None
    line: int = 0

    @property
    def by_credential(self) -> bool:
        """Whether findings must match this label on credential_id (else on task_id)."""
        return self.scenario in CREDENTIAL_SCENARIOS and self.credential_id is not None


def load_labels(labels_path: str | Path, hash_key: str) -> list[Label]:
    """Read labels.jsonl (blank lines skipped), hashing the labels' credentials in one query."""
    path = Path(labels_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvaluationError(f"cannot read labels file {path}: {exc}") from exc
    records = [
        (number, _parse(f"{path}:{number}", line))
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    ids = credential_ids((c for _, rec in records if (c := _credential(rec))), hash_key)
    return [
        Label(
            scenario=rec["scenario"],
            task_id=rec["task_id"],
            agent_id=rec.get("agent_id"),
            credential_id=ids[c] if (c := _credential(rec)) else None,
            note=rec.get("note"),
            line=number,
        )
        for number, rec in records
    ]


def _parse(where: str, line: str) -> dict[str, Any]:
    """One label line as a JSON object, checked; ``where`` (path:line) prefixes any error."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(rec, dict):
        raise EvaluationError(f"{where}: expected a JSON object")
    scenario, task_id = rec.get("scenario"), rec.get("task_id")
    if not scenario or not isinstance(scenario, str):
        raise EvaluationError(f"{where}: missing 'scenario'")
    if not task_id or not isinstance(task_id, str):
        raise EvaluationError(f"{where}: missing 'task_id'")
    raw, namespace = rec.get("credential_source_id"), rec.get("credential_namespace")
    if bool(raw) != bool(namespace):
        raise EvaluationError(
            f"{where}: 'credential_source_id' and 'credential_namespace' go together"
        )
    return rec


def _credential(rec: dict[str, Any]) -> tuple[str, str] | None:
    """The label's (namespace, raw identifier), if it names a credential."""
    raw = rec.get("credential_source_id")
    return (str(rec.get("credential_namespace")), str(raw)) if raw else None
