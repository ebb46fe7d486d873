"""The tool catalog: how tools map to systems, action classes, sensitivity and destinations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

ACTION_CLASSES = ("read", "write", "delete", "egress", "delegate", "credential", "admin", "unknown")
SENSITIVITIES = ("low", "medium", "high")
OUTPUT_TRUSTS = ("trusted", "untrusted")
_ARG_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_GLOB_CHARS = set("*?[")


class CatalogError(ValueError):
    """A malformed catalog; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class CatalogEntry:
    """One mapping from a tool (exact name or glob, optionally only when seen on a system) to the
    system it belongs to, its action class, sensitivity, externality, destination arguments,
    whether its output is trusted and which arguments are critical (what the action acts on)."""

    entry_no: int
    tool: str
    when_system: str | None
    system: str | None
    action: str | None
    sensitivity: str | None
    external: bool | None
    destination_args: tuple[str, ...]
    output_trust: str | None = None
    critical_args: tuple[str, ...] = ()

    @property
    def is_glob(self) -> bool:
        return bool(_GLOB_CHARS & set(self.tool))


@dataclass(frozen=True)
class Catalog:
    """Catalog entries plus the organisation's own domains (destinations there are internal)."""

    entries: tuple[CatalogEntry, ...]
    internal_domains: tuple[str, ...]


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog YAML file (a mapping with ``tools`` and ``internal_domains``)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("tools"), list):
        raise CatalogError(f"{path}: a catalog is a mapping with a 'tools' list")
    domains = doc.get("internal_domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        raise CatalogError(f"{path}: field 'internal_domains' must be a list of domain names")
    unknown = set(doc) - {"tools", "internal_domains"}
    if unknown:
        raise CatalogError(f"{path}: unknown top-level field(s) {sorted(unknown)}")
    entries = tuple(_entry(path, i, raw) for i, raw in enumerate(doc["tools"]))
    return Catalog(entries, tuple(d.lower().lstrip(".") for d in domains))


_ENTRY_FIELDS = frozenset(
    {
        "tool",
        "when_system",
        "system",
        "action",
        "sensitivity",
        "external",
        "destination_args",
        "output_trust",
        "critical_args",
        "note",
    }
)


def _entry(path: Path, index: int, raw: object) -> CatalogEntry:
    where = f"{path}: tools[{index}]"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: an entry is a mapping")
    unknown = set(raw) - _ENTRY_FIELDS
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {sorted(unknown)}")
    tool = raw.get("tool")
    if not isinstance(tool, str) or not tool:
        raise CatalogError(f"{where}: field 'tool' must be a non-empty string")
    when_system = _optional_text(raw, "when_system", where, " (a glob)")
    system = _optional_text(raw, "system", where)
    action = _optional_choice(raw, "action", ACTION_CLASSES, where)
    sensitivity = _optional_choice(raw, "sensitivity", SENSITIVITIES, where)
    external = raw.get("external")
    if external is not None and not isinstance(external, bool):
        raise CatalogError(f"{where}: field 'external' must be true or false")
    args = _argument_names(raw.get("destination_args", []), where, "destination_args")
    trust = _optional_choice(raw, "output_trust", OUTPUT_TRUSTS, where)
    critical = _argument_names(raw.get("critical_args", []), where, "critical_args")
    return CatalogEntry(
        index,
        tool,
        when_system,
        system,
        action,
        sensitivity,
        external,
        tuple(args),
        trust,
        tuple(critical),
    )


def _optional_text(raw: dict, name: str, where: str, what: str = "") -> str | None:
    value = raw.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise CatalogError(f"{where}: field '{name}' must be a non-empty string{what}")
    return value


def _optional_choice(raw: dict, name: str, allowed: tuple[str, ...], where: str) -> str | None:
    value = raw.get(name)
    if value is not None and value not in allowed:
        raise CatalogError(f"{where}: field '{name}' must be one of {list(allowed)}, got {value!r}")
    return value


def _argument_names(args: object, where: str, name: str) -> list[str]:
    """``destination_args`` / ``critical_args``: one argument name or a list of them."""
    if isinstance(args, str):
        args = [args]
    if not isinstance(args, list) or not all(
        isinstance(a, str) and _ARG_NAME.match(a) for a in args
    ):
        raise CatalogError(
            f"{where}: field '{name}' must be a list of argument names ([A-Za-z0-9_.-])"
        )
    return args


def register_catalog(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """Load entries into the session's temp table ``catalog`` (bound parameters, never pasted)."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE catalog (entry_no INTEGER, tool_pattern VARCHAR,
           system_pattern VARCHAR, is_glob BOOLEAN, system VARCHAR, action_class VARCHAR,
           sensitivity VARCHAR, external BOOLEAN, destination_args VARCHAR[],
           output_trust VARCHAR, critical_args VARCHAR[])"""
    )
    entries = catalog.entries
    if entries:
        con.executemany(
            "INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.entry_no,
                    e.tool,
                    e.when_system,
                    e.is_glob,
                    e.system,
                    e.action,
                    e.sensitivity,
                    e.external,
                    list(e.destination_args),
                    e.output_trust,
                    list(e.critical_args),
                )
                for e in entries
            ],
        )


def catalog_report(con: duckdb.DuckDBPyConnection, limit: int = 50) -> list[tuple]:
    """Tools whose class or output trust no catalog entry decided, busiest first:
    (tool, system, classified_by, class, trust_by, output_trust, actions)."""
    return con.execute(
        """SELECT tool, system, classified_by, action_class, trust_by, output_trust, count(*) AS actions
           FROM agent_actions
           WHERE classified_by <> 'catalog' OR coalesce(trust_by, 'default') <> 'catalog'
           GROUP BY ALL ORDER BY actions DESC, tool LIMIT ?""",
        [limit],
    ).fetchall()
