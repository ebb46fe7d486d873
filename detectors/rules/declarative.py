"""Declarative rules compiled to SQL: a chain (ordered steps within a time span, optionally cut
by an ``until`` or a missing follow-up) or a threshold (at least N distinct values per group).

The SQL is assembled from whitelisted identifiers only (PREDICATE_FIELDS, GROUP_FIELDS, names
made here); every value from a rule is a bound parameter, never pasted into the SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")


class RuleError(ValueError):
    """A malformed rule; the message names the file and the field."""


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


class _Params:
    """Collects bound parameters for compiled SQL: values are never pasted into the text."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"c{len(self.values)}"
        self.values[name] = value
        return f"${name}"


# A predicate's operators: {field: {op: value}} -> the condition on the field's column.
_OPERATORS: dict[str, Callable[[str, Any, _Params], str]] = {
    "not": lambda column, value, params: f"{column} IS DISTINCT FROM {params.bind(value)}",
    "in": lambda column, value, params: f"list_contains({params.bind(list(value))}, {column})",
    "not_in": lambda column, value, params: (
        f"NOT coalesce(list_contains({params.bind(list(value))}, {column}), false)"
    ),
    "glob": lambda column, value, params: f"{column} GLOB {params.bind(str(value))}",
    "is_null": lambda column, value, params: f"{column} IS {'' if value else 'NOT '}NULL",
}


def _predicate(where: Any, params: _Params, ctx: str) -> str:
    if where is None:
        return "true"
    if not isinstance(where, dict) or not where:
        raise RuleError(f"{ctx}: a predicate is a mapping of field: condition")
    parts = []
    for name, cond in where.items():
        if name not in PREDICATE_FIELDS:
            raise RuleError(f"{ctx}: unknown field {name!r}; use one of {list(PREDICATE_FIELDS)}")
        parts += _conditions(name, cond, params, ctx)
    return "(" + " AND ".join(f"coalesce({p}, false)" for p in parts) + ")"


def _conditions(name: str, cond: Any, params: _Params, ctx: str) -> list[str]:
    """The conditions on field ``name``: a list (one of), a mapping of operators, or a value."""
    column = f'"{name}"'
    if isinstance(cond, list):
        return [f"list_contains({params.bind(cond)}, {column})"]
    if not isinstance(cond, dict):
        return [f"{column} = {params.bind(cond)}"]
    parts = []
    for op, value in cond.items():
        if op not in _OPERATORS:
            raise RuleError(
                f"{ctx}: unknown operator {op!r} for {name!r} (not, in, not_in, glob, is_null)"
            )
        parts.append(_OPERATORS[op](column, value, params))
    return parts


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
