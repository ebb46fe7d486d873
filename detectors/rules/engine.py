"""Detection-as-code: load rule units (YAML metadata + SQL or a declarative chain), run them
set-based over the warehouse, and merge their hits into `findings` with stable ids.

A rule unit is `detectors/rules/<id>.yaml` (metadata; for chain and threshold rules also the
logic), optionally `<id>.sql` (the logic of a SQL rule) and `<id>.cases.yaml` (its positive and
negative test cases). Every rule's logic returns the columns in HIT_COLUMNS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from detectors.core.faults import crash_point
from detectors.core.sqlfiles import run_sql

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
# Fields chain and threshold predicates may test, and what a group_by may name.
PREDICATE_FIELDS = (
    "action_class",
    "sensitivity",
    "system",
    "tool",
    "external",
    "destination",
    "outcome",
    "source_format",
    "classified_by",
)
GROUP_FIELDS = {"task": "task_id", "agent": "agent_id", "credential": "credential_id"}
_PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RULE_ID = re.compile(r"[a-z][a-z0-9_]*")  # an identifier: ids name files, findings and globs
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")


class RuleError(ValueError):
    """A malformed rule; the message names the file and the field."""


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


def parse_duration(value: Any, where: str) -> int:
    """Seconds from an int or a string like '10m', '2h', '30d'."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _DURATION.match(str(value).strip())
    if not match:
        raise RuleError(
            f"{where}: expected a duration like 300, '10m', '2h' or '30d', got {value!r}"
        )
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


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
    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read rule: {exc}") from exc
    if not isinstance(meta, dict):
        raise RuleError(f"{path}: a rule file holds a mapping")
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
    params = dict(meta.get("parameters") or {})
    for name, value in (overrides or {}).items():
        if name not in params:
            raise RuleError(f"{path}: override for unknown parameter {name!r}")
        params[name] = value
    for name in params:
        if not _PARAM_NAME.match(name):
            raise RuleError(f"{path}: parameter name {name!r} must match [a-z][a-z0-9_]*")
    if meta["kind"] == "sql":
        sql_path = path.with_suffix(".sql")
        if not sql_path.exists():
            raise RuleError(f"{path}: kind 'sql' needs {sql_path.name} next to it")
        sql = sql_path.read_text()
    elif meta["kind"] == "chain":
        sql, compiled = compile_chain(meta.get("sequence"), f"{path}: field 'sequence'")
        params.update(compiled)
    else:
        sql, compiled = compile_threshold(meta.get("threshold"), f"{path}: field 'threshold'")
        params.update(compiled)
    cases = path.with_name(f"{path.stem}.cases.yaml")
    return Rule(meta["id"], path, meta, sql, params, cases if cases.exists() else None)


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


# --- declarative rules -----------------------------------------------------------------------


class _Params:
    """Collects bound parameters for compiled SQL: values are never pasted into the text."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"c{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def _predicate(where: Any, params: _Params, ctx: str) -> str:
    if where is None:
        return "true"
    if not isinstance(where, dict) or not where:
        raise RuleError(f"{ctx}: a predicate is a mapping of field: condition")
    parts = []
    for name, cond in where.items():
        if name not in PREDICATE_FIELDS:
            raise RuleError(f"{ctx}: unknown field {name!r}; use one of {list(PREDICATE_FIELDS)}")
        column = f'"{name}"'
        if isinstance(cond, list):
            parts.append(f"list_contains({params.bind(cond)}, {column})")
        elif isinstance(cond, dict):
            for op, value in cond.items():
                if op == "not":
                    parts.append(f"{column} IS DISTINCT FROM {params.bind(value)}")
                elif op == "in":
                    parts.append(f"list_contains({params.bind(list(value))}, {column})")
                elif op == "not_in":
                    parts.append(
                        f"NOT coalesce(list_contains({params.bind(list(value))}, {column}), false)"
                    )
                elif op == "glob":
                    parts.append(f"{column} GLOB {params.bind(str(value))}")
                elif op == "is_null":
                    parts.append(f"{column} IS {'' if value else 'NOT '}NULL")
                else:
                    raise RuleError(
                        f"{ctx}: unknown operator {op!r} for {name!r} (not, in, not_in, glob, is_null)"
                    )
        else:
            parts.append(f"{column} = {params.bind(cond)}")
    return "(" + " AND ".join(f"coalesce({p}, false)" for p in parts) + ")"


def compile_chain(spec: Any, ctx: str) -> tuple[str, dict[str, Any]]:
    """Compile an ordered-steps sequence into one set-based DuckDB query.

    Each step carries the most recent partial match forward with a window function (the latest
    start is always the best candidate for `within`), so the cost is a few sorted passes over the
    actions, whatever the number of groups.
    """
    if not isinstance(spec, dict):
        raise RuleError(f"{ctx}: a chain rule needs a 'sequence' mapping")
    unknown = set(spec) - {"group_by", "within", "steps", "until", "absent"}
    if unknown:
        raise RuleError(f"{ctx}: unknown key(s) {sorted(unknown)}")
    group = GROUP_FIELDS.get(spec.get("group_by", "task"))
    if group is None:
        raise RuleError(f"{ctx}.group_by: use one of {list(GROUP_FIELDS)}")
    steps = spec.get("steps")
    if not isinstance(steps, list) or len(steps) < 2:
        raise RuleError(f"{ctx}.steps: a sequence needs at least two steps")
    params = _Params()
    within = params.bind(parse_duration(spec.get("within", "1d"), f"{ctx}.within"))
    step_preds = [
        _predicate((s or {}).get("where"), params, f"{ctx}.steps[{i}]") for i, s in enumerate(steps)
    ]
    until = _predicate(spec["until"], params, f"{ctx}.until") if spec.get("until") else "false"
    absent = spec.get("absent")
    absent_pred = _predicate(absent.get("where"), params, f"{ctx}.absent") if absent else "false"
    absent_within = (
        params.bind(parse_duration(absent.get("within", "1h"), f"{ctx}.absent.within"))
        if absent
        else None
    )
    flags = ", ".join(f"{p} AS s{i}" for i, p in enumerate(step_preds))
    any_flag = " OR ".join([*step_preds, until, absent_pred])
    window = (
        "PARTITION BY grp ORDER BY ts, event_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    )
    ctes = [
        f"""base AS (
    SELECT event_id, ts, {group} AS grp, agent_id, task_id, credential_id, {flags},
        {until} AS u, {absent_pred} AS a
    FROM agent_actions WHERE {group} IS NOT NULL AND ({any_flag}))""",
        """m0 AS (SELECT *, CASE WHEN s0 THEN struct_pack(start := ts, last := ts, ids := [event_id]) END AS m0 FROM base)""",
    ]
    for k in range(1, len(steps)):
        ctes.append(f"""m{k} AS (
    SELECT * EXCLUDE (p, last_until),
        CASE WHEN s{k} AND p IS NOT NULL AND date_diff('second', p.start, ts) <= {within}
                  AND (last_until IS NULL OR last_until <= p.last)
             THEN struct_pack(start := p.start, last := ts, ids := list_append(p.ids, event_id)) END AS m{k}
    FROM (SELECT *, last_value(m{k - 1} IGNORE NULLS) OVER w AS p,
                 max(CASE WHEN u THEN ts END) OVER w AS last_until
          FROM m{k - 1} WINDOW w AS ({window})))""")
    last = len(steps) - 1
    absent_filter = ""
    if absent:
        ctes.append(f"""checked AS (
    SELECT *, min(CASE WHEN a THEN ts END) OVER (PARTITION BY grp ORDER BY ts, event_id
        ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_absent
    FROM m{last})""")
        source = "checked"
        absent_filter = (
            f" AND (next_absent IS NULL OR date_diff('second', ts, next_absent) > {absent_within})"
        )
    else:
        source = f"m{last}"
    sql = (
        "WITH "
        + ",\n".join(ctes)
        + f"""
SELECT grp AS entity_id,
    mode(agent_id) AS agent_id, mode(task_id) AS task_id, mode(credential_id) AS credential_id,
    min(m{last}.start) AS first_seen, max(ts) AS last_seen,
    arg_min(m{last}.ids, m{last}.start) AS evidence_event_ids,
    count(*) || ' matching sequence(s); first: ' || array_to_string(arg_min(m{last}.ids, m{last}.start), ' > ') AS detail
FROM {source}
WHERE m{last} IS NOT NULL{absent_filter}
GROUP BY grp, CAST(m{last}.start AS DATE)"""
    )
    return sql, params.values


def compile_threshold(spec: Any, ctx: str) -> tuple[str, dict[str, Any]]:
    """Compile 'at least N distinct <field> among matching actions per group' into SQL."""
    if not isinstance(spec, dict):
        raise RuleError(f"{ctx}: a threshold rule needs a 'threshold' mapping")
    unknown = set(spec) - {"group_by", "where", "distinct", "at_least"}
    if unknown:
        raise RuleError(f"{ctx}: unknown key(s) {sorted(unknown)}")
    group = GROUP_FIELDS.get(spec.get("group_by", "task"))
    if group is None:
        raise RuleError(f"{ctx}.group_by: use one of {list(GROUP_FIELDS)}")
    distinct = spec.get("distinct")
    if distinct not in PREDICATE_FIELDS:
        raise RuleError(f"{ctx}.distinct: use one of {list(PREDICATE_FIELDS)}")
    at_least = spec.get("at_least")
    if not isinstance(at_least, int) or at_least < 1:
        raise RuleError(f"{ctx}.at_least: a positive integer")
    params = _Params()
    where = _predicate(spec.get("where"), params, f"{ctx}.where")
    bound = params.bind(at_least)
    sql = f"""WITH hits AS (
    SELECT {group} AS grp, "{distinct}" AS value, event_id, ts, agent_id, task_id, credential_id
    FROM agent_actions WHERE {group} IS NOT NULL AND "{distinct}" IS NOT NULL AND {where}
), firsts AS (
    SELECT grp, value, arg_min(event_id, (ts, event_id)) AS event_id, min(ts) AS ts FROM hits GROUP BY grp, value
), evidence AS (
    SELECT grp, list(event_id ORDER BY ts, event_id) AS ids FROM firsts GROUP BY grp
)
SELECT h.grp AS entity_id, mode(h.agent_id) AS agent_id, mode(h.task_id) AS task_id,
    mode(h.credential_id) AS credential_id, min(h.ts) AS first_seen, max(h.ts) AS last_seen,
    any_value(e.ids) AS evidence_event_ids,
    count(DISTINCT h.value) || ' distinct {distinct} values: '
        || array_to_string(list_sort(list(DISTINCT h.value)), ', ') AS detail
FROM hits h JOIN evidence e USING (grp) GROUP BY h.grp HAVING count(DISTINCT h.value) >= {bound}"""
    return sql, params.values


# --- running -----------------------------------------------------------------------------------


def run_rule(con: duckdb.DuckDBPyConnection, rule: Rule) -> list[tuple]:
    """The rule's hits as rows of HIT_COLUMNS (for tests and previews)."""
    cursor = con.execute(hits_query(rule), bound_params(rule))
    return cursor.fetchall()


def hits_query(rule: Rule) -> str:
    """The rule's logic wrapped to return exactly HIT_COLUMNS, in order."""
    columns = ", ".join(HIT_COLUMNS)
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
    suppressions: list[Suppression] = (),
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
    suppressions: list[Suppression] = (),
    now: datetime | None = None,
    today: date | None = None,
) -> None:
    """Merge the temp table `rule_hits` into `findings` (sql/merge_findings.sql)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    today = today or now.date()
    active = [s for s in suppressions if s.expires is None or s.expires >= today]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rule_meta (rule_id VARCHAR, title VARCHAR, severity VARCHAR, risk_score INTEGER, confidence VARCHAR, analytic_type VARCHAR, entity_type VARCHAR, frameworks JSON)"
    )
    if meta:
        con.executemany(
            "INSERT INTO rule_meta VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
