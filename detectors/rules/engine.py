"""Detection-as-code: load rule units (YAML metadata + SQL or a declarative chain), run them
set-based over the warehouse, and merge their hits into `findings` with stable ids.

A rule unit is `detectors/rules/<id>.yaml` (metadata; for chain and threshold rules also the
logic), optionally `<id>.sql` (the logic of a SQL rule) and `<id>.cases.yaml` (its positive and
negative test cases). Every rule's logic returns the columns in HIT_COLUMNS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from detectors.core.faults import crash_point
from detectors.core.sqlfiles import run_sql
from detectors.rules.declarative import RuleError, compile_chain, compile_threshold

RULES_DIR = Path(__file__).resolve().parent / "library"
SEVERITIES = ("informational", "low", "medium", "high", "critical")
STATUSES = ("experimental", "stable")
KINDS = ("sql", "chain", "threshold")
ENTITIES = ("task", "credential", "agent")
ANALYTIC_TYPES = ("rule", "behavioral", "statistical", "learning")
CONFIDENCES = ("low", "medium", "high")
MAESTRO_LAYERS = (
    "L1 Foundation Models",
    "L2 Data Operations",
    "L3 Agent Frameworks",
    "L4 Deployment and Infrastructure",
    "L5 Evaluation and Observability",
    "L6 Security and Compliance",
    "L7 Agent Ecosystem",
)
NIST_AI_RMF = ("GOVERN", "MAP", "MEASURE", "MANAGE")
REQUIRED = (
    "id",
    "title",
    "description",
    "kind",
    "severity",
    "status",
    "entity",
    "references",
    "frameworks",
    "false_positives",
    "runbook",
)
DEFAULT_RISK = {"informational": 10, "low": 25, "medium": 50, "high": 75, "critical": 90}
HIT_COLUMNS = (
    "entity_id",
    "agent_id",
    "task_id",
    "credential_id",
    "first_seen",
    "last_seen",
    "evidence_event_ids",
    "detail",
)
# Columns a rule may add to its hits to override its metadata per hit (field hit_overrides): a
# severity and risk that depend on what the hit found, and a JSON explanation of the evidence.
HIT_OVERRIDES = ("severity", "risk_score", "explanation")
_PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RULE_ID = re.compile(r"[a-z][a-z0-9_]*")  # an identifier: ids name files, findings and globs


@dataclass(frozen=True)
class Rule:
    """One loaded, validated rule unit."""

    id: str
    path: Path
    meta: dict[str, Any]
    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    cases_path: Path | None = None

    @property
    def severity(self) -> str:
        return self.meta["severity"]

    @property
    def entity(self) -> str:
        return self.meta["entity"]


def load_rules(directory: Path = RULES_DIR, overrides: dict[str, dict] | None = None) -> list[Rule]:
    """Every rule unit in ``directory``, validated; ``overrides`` set parameters per rule id."""
    rules = [
        load_rule(p, (overrides or {}).get(p.stem))
        for p in sorted(directory.glob("*.yaml"))
        if not p.name.endswith(".cases.yaml")
    ]
    seen: dict[str, Path] = {}
    for rule in rules:
        if rule.id in seen:
            raise RuleError(f"{rule.path}: duplicate rule id {rule.id!r} (also in {seen[rule.id]})")
        seen[rule.id] = rule.path
    return rules


def load_rule(path: Path, overrides: dict | None = None) -> Rule:
    """Load and validate one rule unit; errors name the file and the field."""
    meta = _read_meta(path)
    _check_identity(path, meta)
    _check_fields(path, meta)
    params = _rule_params(path, meta, overrides)
    sql, compiled = _rule_logic(path, meta)
    params.update(compiled)
    cases = path.with_name(f"{path.stem}.cases.yaml")
    return Rule(meta["id"], path, meta, sql, params, cases if cases.exists() else None)


def _read_meta(path: Path) -> dict:
    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read rule: {exc}") from exc
    if not isinstance(meta, dict):
        raise RuleError(f"{path}: a rule file holds a mapping")
    return meta


def _check_identity(path: Path, meta: dict) -> None:
    """Every required field present, and an id that is an identifier equal to the file name."""
    for name in REQUIRED:
        if name not in meta or meta[name] in (None, "", []):
            raise RuleError(f"{path}: missing required field '{name}'")
    if not isinstance(meta["id"], str) or not _RULE_ID.fullmatch(meta["id"]):
        raise RuleError(
            f"{path}: field 'id' must be an identifier ([a-z][a-z0-9_]*), got {meta['id']!r}"
        )
    if meta["id"] != path.stem:
        raise RuleError(
            f"{path}: field 'id' must equal the file name ({path.stem!r}), got {meta['id']!r}"
        )


def _check_fields(path: Path, meta: dict) -> None:
    """Closed-vocabulary fields, defaults (analytic type, confidence, risk score), references,
    false positives and framework mappings."""
    _one_of(path, meta, "kind", KINDS)
    _one_of(path, meta, "severity", SEVERITIES)
    _one_of(path, meta, "status", STATUSES)
    _one_of(path, meta, "entity", ENTITIES)
    meta.setdefault("analytic_type", "rule")
    _one_of(path, meta, "analytic_type", ANALYTIC_TYPES)
    meta.setdefault("confidence", "medium")
    _one_of(path, meta, "confidence", CONFIDENCES)
    risk = meta.setdefault("risk_score", DEFAULT_RISK[meta["severity"]])
    if not isinstance(risk, int) or isinstance(risk, bool) or not 0 <= risk <= 100:
        raise RuleError(f"{path}: field 'risk_score' must be an integer from 0 to 100")
    if not isinstance(meta["references"], list) or not all(
        isinstance(r, str) for r in meta["references"]
    ):
        raise RuleError(f"{path}: field 'references' must be a list of strings")
    if not isinstance(meta["false_positives"], list):
        raise RuleError(f"{path}: field 'false_positives' must be a list")
    check_frameworks(path, meta["frameworks"])
    overrides = meta.setdefault("hit_overrides", [])
    if not isinstance(overrides, list) or not set(overrides) <= set(HIT_OVERRIDES):
        raise RuleError(f"{path}: field 'hit_overrides' must be a list of {list(HIT_OVERRIDES)}")


def _rule_params(path: Path, meta: dict, overrides: dict | None) -> dict[str, Any]:
    """The rule's ``parameters`` with ``overrides`` applied (only to parameters it declares)."""
    params = dict(meta.get("parameters") or {})
    for name, value in (overrides or {}).items():
        if name not in params:
            raise RuleError(f"{path}: override for unknown parameter {name!r}")
        params[name] = value
    for name in params:
        if not _PARAM_NAME.match(name):
            raise RuleError(f"{path}: parameter name {name!r} must match [a-z][a-z0-9_]*")
    return params


def _rule_logic(path: Path, meta: dict) -> tuple[str, dict[str, Any]]:
    """The rule's SQL (its .sql file, or compiled from a chain or threshold) and the parameters
    the compilation bound."""
    if meta["kind"] == "sql":
        sql_path = path.with_suffix(".sql")
        if not sql_path.exists():
            raise RuleError(f"{path}: kind 'sql' needs {sql_path.name} next to it")
        return sql_path.read_text(), {}
    if meta["kind"] == "chain":
        return compile_chain(meta.get("sequence"), f"{path}: field 'sequence'")
    return compile_threshold(meta.get("threshold"), f"{path}: field 'threshold'")


def _one_of(path: Path, meta: dict, name: str, allowed: tuple[str, ...]) -> None:
    if meta.get(name) not in allowed:
        raise RuleError(
            f"{path}: field '{name}' must be one of {list(allowed)}, got {meta.get(name)!r}"
        )


def check_frameworks(path: Path, frameworks: Any) -> None:
    if not isinstance(frameworks, dict):
        raise RuleError(f"{path}: field 'frameworks' must be a mapping")
    for key in ("owasp_agentic", "owasp_nhi", "nist_ai_rmf"):
        value = frameworks.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise RuleError(f"{path}: field 'frameworks.{key}' must be a non-empty list of strings")
    bad = [v for v in frameworks["nist_ai_rmf"] if v not in NIST_AI_RMF]
    if bad:
        raise RuleError(
            f"{path}: field 'frameworks.nist_ai_rmf' has {bad}; use {list(NIST_AI_RMF)}"
        )
    maestro = frameworks.get("maestro")
    if (
        not isinstance(maestro, dict)
        or maestro.get("layer") not in MAESTRO_LAYERS
        or not maestro.get("threat")
    ):
        raise RuleError(
            f"{path}: field 'frameworks.maestro' needs 'layer' (one of {list(MAESTRO_LAYERS)}) and 'threat'"
        )


# --- running -----------------------------------------------------------------------------------


def run_rule(con: duckdb.DuckDBPyConnection, rule: Rule) -> list[tuple]:
    """The rule's hits as rows of HIT_COLUMNS (for tests and previews)."""
    cursor = con.execute(hits_query(rule), bound_params(rule))
    return cursor.fetchall()


def hits_query(rule: Rule) -> str:
    """The rule's logic wrapped to return exactly HIT_COLUMNS, in order, then the per-hit
    overrides its metadata declares (``hit_overrides``)."""
    columns = ", ".join((*HIT_COLUMNS, *rule.meta.get("hit_overrides", ())))
    return f"SELECT {columns} FROM ({rule.sql.strip().rstrip(';')}) AS rule_hits"


def bound_params(rule: Rule) -> dict[str, Any]:
    """The parameter values the rule's SQL uses (an undefined one is a RuleError)."""
    used = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", rule.sql))
    missing = used - set(rule.params)
    if missing:
        raise RuleError(f"{rule.path}: SQL uses undefined parameter(s) {sorted(missing)}")
    return {k: v for k, v in rule.params.items() if k in used}


@dataclass(frozen=True)
class Suppression:
    """An allowlist entry: findings of matching rules and entities are kept but marked."""

    rule: str
    entity: str
    reason: str
    expires: date | None


def load_suppressions(path: Path | None) -> list[Suppression]:
    """Read the allowlist YAML (a list of {rule, entity, reason, expires}); errors name the entry."""
    if path is None or not Path(path).exists():
        return []
    try:
        doc = yaml.safe_load(Path(path).read_text()) or []
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: cannot read suppressions: {exc}") from exc
    entries = doc.get("suppressions", []) if isinstance(doc, dict) else doc
    out = []
    for i, raw in enumerate(entries or []):
        where = f"{path}: suppressions[{i}]"
        if (
            not isinstance(raw, dict)
            or not raw.get("rule")
            or not raw.get("entity")
            or not raw.get("reason")
        ):
            raise RuleError(f"{where}: needs 'rule', 'entity' and 'reason'")
        expires = raw.get("expires")
        if expires is not None and not isinstance(expires, date):
            try:
                expires = date.fromisoformat(str(expires))
            except ValueError as exc:
                raise RuleError(f"{where}: field 'expires' must be a date (YYYY-MM-DD)") from exc
        out.append(Suppression(str(raw["rule"]), str(raw["entity"]), str(raw["reason"]), expires))
    return out


def detect(
    con: duckdb.DuckDBPyConnection,
    rules: list[Rule],
    *,
    suppressions: Sequence[Suppression] = (),
    now: datetime | None = None,
    today: date | None = None,
) -> dict[str, int]:
    """Run every rule and merge hits into `findings`; return hits per rule id.

    finding_id = hash(rule, entity, day of first_seen): a rerun updates rather than duplicates,
    and never touches triage_status / triage_note.
    """
    start_hits(con)
    counts: dict[str, int] = {}
    for rule in rules:
        con.execute(
            f"INSERT INTO rule_hits BY NAME SELECT $cw_rule_id AS rule_id, * FROM ({hits_query(rule)})",
            {**bound_params(rule), "cw_rule_id": rule.id},
        )
        counts[rule.id] = con.execute(
            "SELECT count(*) FROM rule_hits WHERE rule_id = ?", [rule.id]
        ).fetchone()[0]
    merge_hits(
        con,
        [rule_meta_of(r) for r in rules],
        suppressions=suppressions,
        now=now,
        today=today,
    )
    return counts


# The temp table ``rule_meta`` that sql/merge_findings.sql joins, one row per RuleMeta (in its
# field order; frameworks as JSON text). Declared once: the Spark engine builds its schema from it.
RULE_META_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rule_id", "VARCHAR"),
    ("title", "VARCHAR"),
    ("severity", "VARCHAR"),
    ("risk_score", "INTEGER"),
    ("confidence", "VARCHAR"),
    ("analytic_type", "VARCHAR"),
    ("entity_type", "VARCHAR"),
    ("frameworks", "JSON"),
)


@dataclass(frozen=True)
class RuleMeta:
    """What `findings` takes from a detector's metadata; a hit may override severity, risk score
    and analytic type (anomaly findings do)."""

    rule_id: str
    title: str
    severity: str
    risk_score: int
    confidence: str
    analytic_type: str
    entity_type: str
    frameworks: dict


def rule_meta_of(rule: Rule) -> RuleMeta:
    """What `findings` takes from a rule unit's metadata."""
    return RuleMeta(
        rule.id,
        rule.meta["title"],
        rule.severity,
        rule.meta["risk_score"],
        rule.meta["confidence"],
        rule.meta["analytic_type"],
        rule.entity,
        rule.meta["frameworks"],
    )


def start_hits(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the temp table `rule_hits` that :func:`merge_hits` merges into `findings`."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rule_hits (rule_id VARCHAR, "
        + ", ".join(f"{c} {t}" for c, t in (*_HIT_TYPES, *_HIT_OVERRIDES))
        + ")"
    )


def merge_hits(
    con: duckdb.DuckDBPyConnection,
    meta: list[RuleMeta],
    *,
    suppressions: Sequence[Suppression] = (),
    now: datetime | None = None,
    today: date | None = None,
) -> None:
    """Merge the temp table `rule_hits` into `findings` (sql/merge_findings.sql)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    today = today or now.date()
    active = [s for s in suppressions if s.expires is None or s.expires >= today]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rule_meta ("
        + ", ".join(f"{c} {t}" for c, t in RULE_META_COLUMNS)
        + ")"
    )
    if meta:
        con.executemany(
            f"INSERT INTO rule_meta VALUES ({', '.join('?' * len(RULE_META_COLUMNS))})",
            [
                (
                    m.rule_id,
                    m.title,
                    m.severity,
                    m.risk_score,
                    m.confidence,
                    m.analytic_type,
                    m.entity_type,
                    json.dumps(m.frameworks, sort_keys=True),
                )
                for m in meta
            ],
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE suppressions (rule_glob VARCHAR, entity_glob VARCHAR, reason VARCHAR)"
    )
    if active:
        con.executemany(
            "INSERT INTO suppressions VALUES (?, ?, ?)",
            [(s.rule, s.entity, s.reason) for s in active],
        )
    con.begin()  # findings change all at once or not at all
    try:
        run_sql(con, "merge_findings", {"now": now})
        crash_point("detect.in_merge")
        con.commit()
    except BaseException:
        con.rollback()
        raise


_HIT_TYPES = (
    ("entity_id", "VARCHAR"),
    ("agent_id", "VARCHAR"),
    ("task_id", "VARCHAR"),
    ("credential_id", "VARCHAR"),
    ("first_seen", "TIMESTAMP"),
    ("last_seen", "TIMESTAMP"),
    ("evidence_event_ids", "VARCHAR[]"),
    ("detail", "VARCHAR"),
)
# Optional per-hit overrides of the detector's metadata, and an explanation (anomaly findings).
_HIT_OVERRIDES = (
    ("severity", "VARCHAR"),
    ("risk_score", "INTEGER"),
    ("analytic_type", "VARCHAR"),
    ("explanation", "JSON"),
)
