"""DuckDB SQL to Spark SQL, mechanically: sqlglot's transpiler plus the few rewrites where the two
dialects mean different things by the same words. The SQL in ``sql/`` and the rules stay the one
source of truth; nothing here is a second implementation of a rule.

Bound parameters (``$name``) become typed literals in the syntax tree, never pasted text.
Anything sqlglot cannot express in Spark raises :class:`TranslationError` naming the source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from detectors.core.sqlfiles import load_sql


class TranslationError(ValueError):
    """SQL that does not translate to Spark; the message names where it came from."""


@dataclass(frozen=True)
class Statement:
    """One translated statement: a table built from a query, rows added to a table, a table
    replaced by a query over itself (a DELETE or UPDATE), a dropped table, or a query."""

    kind: str  # "create" | "insert" (rows for ``table``) | "replace" | "drop" | "query"
    table: str | None
    sql: str
    by_name: bool = False  # an insert whose columns match the table's by name, not position


# DuckDB column types -> Spark's, for schemas declared once in DuckDB terms (JSON is text on Spark).
SPARK_TYPES = {"VARCHAR": "STRING", "INTEGER": "INT", "JSON": "STRING"}


def spark_schema(columns: Iterable[tuple[str, str]]) -> str:
    """A Spark DDL schema (``"a STRING, b INT"``) from (name, DuckDB type) pairs."""
    columns = tuple(columns)
    unknown = sorted({t for _, t in columns if t not in SPARK_TYPES})
    if unknown:
        raise TranslationError(f"no Spark type for DuckDB type(s) {unknown}")
    return ", ".join(f"{name} {SPARK_TYPES[t]}" for name, t in columns)


def to_spark(sql: str, params: dict[str, Any] | None = None, *, source: str = "SQL") -> str:
    """Translate one DuckDB query to Spark SQL, binding ``params`` as literals."""
    return _generate(_rewrite(_parse(sql, source), params or {}, source), source)


def translate_statements(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    first: int | None = None,
    columns: Callable[[str], list[str]] | None = None,
) -> list[Statement]:
    """All of :func:`iter_statements` at once."""
    return list(iter_statements(name, params, first=first, columns=columns))


def iter_statements(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    first: int | None = None,
    columns: Callable[[str], list[str]] | None = None,
) -> Iterator[Statement]:
    """Translate the statements of ``sql/<name>.sql`` one at a time, as they are run (only the
    ``first`` ones when given):
    ``CREATE [OR REPLACE] [TEMP] TABLE x AS q`` becomes a table built from ``q``, ``INSERT INTO x
    q`` the rows ``q`` adds to ``x``, ``DELETE FROM x WHERE c`` and ``UPDATE x SET ... FROM s
    WHERE c`` a query that rebuilds ``x`` (``columns(x)`` names its columns), ``DROP TABLE x`` a
    drop; other statements are errors."""
    for i, text in enumerate(load_sql(name)[:first]):
        source = f"sql/{name}.sql statement {i + 1}"
        tree = _parse(text, source)
        if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query):
            table = tree.this.name if isinstance(tree.this, exp.Table) else tree.this.this.name
            query = _rewrite(tree.expression, params or {}, source)
            yield Statement("create", table, _generate(query, source))
        elif isinstance(tree, exp.Insert) and isinstance(tree.expression, exp.Query):
            if isinstance(tree.this, exp.Schema):
                raise TranslationError(f"{source}: name no column list in INSERT; use BY NAME")
            query = _rewrite(tree.expression, params or {}, source)
            by_name = bool(tree.args.get("by_name"))
            yield Statement("insert", tree.this.name, _generate(query, source), by_name)
        elif isinstance(tree, exp.Delete):
            yield _delete(tree, params or {}, source)
        elif isinstance(tree, exp.Update):
            if columns is None:
                raise TranslationError(f"{source}: an UPDATE needs the columns of its table")
            yield _update(tree, params or {}, source, columns)
        elif isinstance(tree, exp.Drop):
            yield from (Statement("drop", t.name, "") for t in tree.args.get("tables") or [])
        elif isinstance(tree, exp.Query):
            yield Statement("query", None, _generate(_rewrite(tree, params or {}, source), source))
        else:
            raise TranslationError(
                f"{source}: only CREATE TABLE ... AS SELECT, INSERT ... SELECT, DELETE, "
                "UPDATE ... FROM, DROP TABLE and queries run on Spark, "
                f"not {tree.key.upper()}"
            )


def _delete(tree: exp.Delete, params: dict[str, Any], source: str) -> Statement:
    """The rows a DELETE keeps: those its condition is not true for (NULL keeps a row)."""
    table = tree.this.name
    where = tree.args.get("where")
    if where is None:
        keep: exp.Expression = exp.false()
    else:
        condition = _rewrite(where.this, params, source)
        keep = exp.or_(exp.not_(exp.paren(condition)), exp.paren(condition.copy()).is_(exp.null()))
    query = exp.select("*").from_(exp.to_table(table)).where(keep)
    return Statement("replace", table, _generate(query, source))


_MATCHED = "__cw_matched"


def _update(
    tree: exp.Update, params: dict[str, Any], source: str, columns: Callable[[str], list[str]]
) -> Statement:
    """``UPDATE t SET c = e FROM s WHERE w`` as ``t LEFT JOIN s ON w``, each set column taking
    ``e`` where a row of ``s`` matched. Like DuckDB, it expects at most one match per row of ``t``."""
    target = tree.this
    if not isinstance(target, exp.Table) or target.alias:
        raise TranslationError(f"{source}: UPDATE needs an unaliased table")
    table = target.name
    from_ = tree.args.get("from_") or tree.args.get("from")
    where = tree.args.get("where")
    if from_ is None or where is None:
        raise TranslationError(f"{source}: only UPDATE ... FROM ... WHERE runs on Spark")
    src = from_.this
    alias = src.alias_or_name
    if isinstance(src, exp.Table):
        inner = exp.select("*").from_(exp.to_table(src.name))
    elif isinstance(src, exp.Subquery) and src.alias:
        inner = exp.select("*").from_(exp.paren(src.this.copy()).as_("__cw_source"))
    else:
        raise TranslationError(f"{source}: UPDATE ... FROM needs a table or an aliased subquery")
    inner = _rewrite(inner.select(exp.true().as_(_MATCHED)), params, source)
    sets = {}
    for assignment in tree.expressions:
        sets[assignment.this.name] = _rewrite(assignment.expression, params, source)
    known = columns(table)
    unknown = sorted(set(sets) - set(known))
    if unknown:
        raise TranslationError(f"{source}: {table} has no column {', '.join(unknown)}")
    matched = exp.column(_MATCHED, table=alias)
    select = [
        exp.Case(ifs=[exp.If(this=matched, true=sets[c])], default=exp.column(c, table=table)).as_(
            c
        )
        if c in sets
        else exp.column(c, table=table).as_(c)
        for c in known
    ]
    query = (
        exp.select(*select)
        .from_(exp.to_table(table))
        .join(
            exp.paren(inner).as_(alias), on=_rewrite(where.this, params, source), join_type="left"
        )
    )
    return Statement("replace", table, _generate(query, source))


def _parse(sql: str, source: str) -> exp.Expression:
    try:
        return sqlglot.parse_one(sql, read="duckdb")
    except SqlglotError as exc:
        raise TranslationError(f"{source}: cannot parse as DuckDB SQL: {exc}") from exc


def _generate(tree: exp.Expression, source: str) -> str:
    try:
        return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise TranslationError(f"{source}: does not translate to Spark SQL: {exc}") from exc


def _literal(value: Any, source: str, name: str) -> exp.Expression:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[_literal(v, source, name) for v in value])
    raise TranslationError(
        f"{source}: parameter ${name} has a type Spark SQL cannot take: {type(value).__name__}"
    )


def _glob_regex(pattern: str) -> str:
    """A GLOB pattern (``*``, ``?``, ``[...]``) as an anchored Java regex."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "^" + "".join(out) + "$"


# A GLOB pattern held in a column, turned into a Java regex by Spark itself (in Spark SQL
# literals '\\' is one backslash): regex metacharacters escaped, then * ? and [! translated.
_GLOB_TO_REGEX = (
    r"concat('^', regexp_replace(regexp_replace(regexp_replace(regexp_replace(__pattern__, "
    r"'([.^$+(){}|\\\\])', '\\\\$1'), '\\*', '.*'), '\\?', '.'), '\\[!', '[^'), '$')"
)


def _glob_regex_expression(pattern: exp.Expression) -> exp.Expression:
    template = sqlglot.parse_one(_GLOB_TO_REGEX, read="spark")
    return template.transform(
        lambda n: pattern.copy() if isinstance(n, exp.Column) and n.name == "__pattern__" else n
    )


def _rewrite(tree: exp.Expression, params: dict[str, Any], source: str) -> exp.Expression:
    tree = tree.copy()
    for node in list(tree.find_all(exp.Placeholder)):
        name = node.name
        if name not in params:
            raise TranslationError(f"{source}: parameter ${name} has no value")
        node.replace(_literal(params[name], source, name))
    # Children before parents, so that a rewritten parent keeps its rewritten children.
    for node in reversed(list(tree.walk(bfs=False))):
        new = _rewrite_node(node, source)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def _micros(value: exp.Expression) -> exp.Expression:
    return exp.func("unix_micros", exp.cast(value, "TIMESTAMP"))


def _rewrite_node(node: exp.Expression, source: str) -> exp.Expression:
    """``node`` as Spark needs it: the first rewrite of :data:`_REWRITES` that applies (one that
    returns something other than None), else ``node`` itself."""
    for types, rewrite in _REWRITES:
        if isinstance(node, types) and (new := rewrite(node, source)) is not None:
            return new
    return node


def _glob(node: exp.Glob, source: str) -> exp.Expression:
    pattern = node.expression
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        regex = exp.Literal.string(_glob_regex(pattern.name))
    else:
        regex = _glob_regex_expression(pattern)
    return exp.RegexpLike(this=node.this, expression=regex)


def _regexp_full_match(node: exp.RegexpFullMatch, source: str) -> exp.Expression:
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        raise TranslationError(f"{source}: regexp_full_match needs a literal pattern on Spark")
    anchored = exp.Literal.string(f"^(?:{pattern.name})$")
    return exp.RegexpLike(this=node.this, expression=anchored)


def _iso_weekday(node: exp.DayOfWeekIso, source: str) -> exp.Expression:
    # ISO weekday, Monday = 1; Spark's weekday() counts from Monday = 0.
    return exp.paren(exp.Add(this=exp.func("weekday", node.this), expression=exp.Literal.number(1)))


def _epoch(node: exp.TimeToUnix, source: str) -> exp.Expression:
    # DuckDB's epoch() keeps the fraction of a second; Spark's unix_timestamp() drops it.
    return exp.paren(
        # DOUBLE like DuckDB's epoch(); a 1000000.0 literal would make Spark compute in DECIMAL.
        exp.Div(this=_micros(node.this), expression=exp.cast(exp.Literal.number(1000000), "DOUBLE"))
    )


def _seconds_diff(node: exp.DateDiff, source: str) -> exp.Expression | None:
    if not (node.unit and node.unit.name.lower() in ("second", "seconds")):
        return None
    # DuckDB counts second boundaries crossed: the difference of the whole-second epochs.
    return exp.paren(
        exp.Sub(
            this=exp.func("unix_seconds", exp.cast(node.this, "TIMESTAMP")),
            expression=exp.func("unix_seconds", exp.cast(node.expression, "TIMESTAMP")),
        )
    )


def _strlen(node: exp.Anonymous) -> exp.Expression:
    return exp.func("octet_length", *node.expressions)


def _to_seconds(node: exp.Anonymous) -> exp.Expression:
    zero = exp.Literal.number(0)
    return exp.func("make_dt_interval", zero, zero.copy(), zero.copy(), *node.expressions)


def _list_position(node: exp.Anonymous) -> exp.Expression:
    # DuckDB: NULL when absent; Spark's array_position: 0.
    return exp.func("nullif", exp.func("array_position", *node.expressions), exp.Literal.number(0))


def _list_bool(node: exp.Anonymous) -> exp.Expression:
    quantifier = "exists" if node.name.lower() == "list_bool_or" else "forall"
    lam = exp.Lambda(this=exp.column("b"), expressions=[exp.to_identifier("b")])
    return exp.func(quantifier, *node.expressions, lam)


def _to_json(node: exp.Anonymous) -> exp.Expression:
    # DuckDB writes a NULL field as null; Spark's to_json leaves it out unless told otherwise.
    if len(node.expressions) != 1:
        return node
    options = exp.Anonymous(
        this="map",
        expressions=[exp.Literal.string("ignoreNullFields"), exp.Literal.string("false")],
    )
    return exp.func("to_json", node.expressions[0], options)


# DuckDB functions sqlglot passes through by name (lower case) -> their Spark form.
_ANONYMOUS: dict[str, Callable[[exp.Anonymous], exp.Expression]] = {
    "strlen": _strlen,
    "to_seconds": _to_seconds,
    "list_position": _list_position,
    "list_bool_or": _list_bool,
    "list_bool_and": _list_bool,
    "to_json": _to_json,
}


def _anonymous(node: exp.Anonymous, source: str) -> exp.Expression | None:
    rewrite = _ANONYMOUS.get(node.name.lower())
    return rewrite(node) if rewrite else None


def _list_slice(node: exp.Bracket, source: str) -> exp.Expression | None:
    if not (len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Slice)):
        return None
    # list[a:b] (1-based, both ends included) as slice(list, a, b - a + 1).
    start, end = node.expressions[0].this, node.expressions[0].expression
    if start is None or end is None:
        raise TranslationError(f"{source}: open-ended list slices are not translated")
    length = exp.Add(
        this=exp.paren(exp.Sub(this=exp.paren(end.copy()), expression=exp.paren(start.copy()))),
        expression=exp.Literal.number(1),
    )
    return exp.func("slice", node.this, start.copy(), length)


def _comprehension(node: exp.Array, source: str) -> exp.Expression | None:
    if not (len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Comprehension)):
        return None
    # [f(x) FOR x IN list IF p(x)] as transform(filter(list, x -> p(x)), x -> f(x)).
    comp = node.expressions[0]
    var = comp.expression
    items = comp.args["iterator"]
    if comp.args.get("condition") is not None:
        keep = exp.Lambda(this=comp.args["condition"], expressions=[var.copy()])
        items = exp.func("filter", items, keep)
    return exp.func("transform", items, exp.Lambda(this=comp.this, expressions=[var.copy()]))


def _indexed_lambda(node: exp.ArrayFilter | exp.Transform, source: str) -> exp.Expression | None:
    if not isinstance(node.expression, exp.Lambda):
        return None
    _one_based_lambda_index(node.expression)
    return node


def _filtered_list(node: exp.Filter, source: str) -> exp.Expression | None:
    if not isinstance(node.this, exp.ArrayAgg | exp.GroupConcat):
        return None
    condition = node.expression.this
    if _is_ordered_aggregate(node.this):
        # agg(x ORDER BY k) FILTER (WHERE c): the filter moves inside, onto collect_list.
        listed = _ordered_aggregate(node.this, source, condition)
    else:
        listed = node.copy()  # a copy: the node itself is about to be replaced
    # No row passing the filter: DuckDB gives NULL, Spark an empty list.
    passed = exp.GT(this=exp.func("count_if", condition.copy()), expression=exp.Literal.number(0))
    return exp.If(this=passed, true=listed, false=exp.Null())


def _unfiltered_ordered_agg(
    node: exp.ArrayAgg | exp.GroupConcat, source: str
) -> exp.Expression | None:
    if not _is_ordered_aggregate(node) or isinstance(node.parent, exp.Filter):
        return None
    return _ordered_aggregate(node, source, None)


# Node types -> rewrite, tried in order; a rewrite returns None when the node is not its case.
_REWRITES: tuple[
    tuple[type | tuple[type, ...], Callable[[Any, str], exp.Expression | None]], ...
] = (
    (exp.Glob, _glob),
    (exp.RegexpFullMatch, _regexp_full_match),
    (exp.DayOfWeekIso, _iso_weekday),
    (exp.TimeToUnix, _epoch),
    (exp.DateDiff, _seconds_diff),
    (exp.Anonymous, _anonymous),
    (exp.Bracket, _list_slice),
    (exp.Array, _comprehension),
    ((exp.ArrayFilter, exp.Transform), _indexed_lambda),
    (exp.Filter, _filtered_list),
    ((exp.ArrayAgg, exp.GroupConcat), _unfiltered_ordered_agg),
)


def _one_based_lambda_index(lam: exp.Lambda) -> None:
    """DuckDB numbers a lambda's second parameter from 1, Spark from 0: shift its uses."""
    if len(lam.expressions) != 2 or lam.args.get("cw_shifted"):
        return
    index = lam.expressions[1].name
    for ref in list(lam.this.find_all(exp.Identifier, exp.Column)):
        if ref.name == index and not isinstance(ref.parent, exp.Column):
            ref.replace(exp.Paren(this=exp.Add(this=ref.copy(), expression=exp.Literal.number(1))))
    lam.set("cw_shifted", True)


def _is_ordered_aggregate(node: exp.Expression) -> bool:
    return isinstance(node, exp.ArrayAgg | exp.GroupConcat) and isinstance(node.this, exp.Order)


def _ordered_aggregate(
    node: exp.Expression, source: str, condition: exp.Expression | None
) -> exp.Expression:
    listed = _ordered_list(node.this, source, condition)
    if not isinstance(node, exp.GroupConcat):
        return listed
    separator = node.args.get("separator") or exp.Literal.string(",")
    joined = exp.func("array_join", listed, separator)
    # No value (or only NULLs) to join: DuckDB gives NULL, Spark's array_join an empty string.
    value = _distinct_value(node.this, source)[0].copy()
    if condition is not None:
        value = exp.If(this=condition.copy(), true=value, false=exp.Null())
    joined_any = exp.GT(this=exp.func("count", value), expression=exp.Literal.number(0))
    return exp.If(this=joined_any, true=joined, false=exp.Null())


def _distinct_value(order: exp.Order, source: str) -> tuple[exp.Expression, bool]:
    """The aggregated value of ``agg([DISTINCT] x ORDER BY ...)`` and whether it is DISTINCT."""
    value = order.this
    if not isinstance(value, exp.Distinct):
        return value, False
    if len(value.expressions) != 1:
        raise TranslationError(f"{source}: an ordered DISTINCT aggregate takes one value")
    return value.expressions[0], True


def _ordered_list(
    order: exp.Order, source: str, condition: exp.Expression | None = None
) -> exp.Expression:
    """``list(x ORDER BY k1, k2)`` as ``transform(array_sort(collect_list(struct(k1, k2, x))), s -> s.v)``:
    Spark's collect_list has no ORDER BY (sqlglot would drop it silently), and its listagg failed
    on two sort keys. Ascending keys sort as structs do (nulls first: the ascending keys used here
    are never null); with a DESC key, a comparator sorts each key its way, NULLs last as in DuckDB
    (ties keep no particular order, as in DuckDB). ``DISTINCT x`` collects a set (DuckDB requires
    the keys of a DISTINCT aggregate to be among its arguments, so the set's members differ in
    ``x``). A FILTER condition keeps only the rows it holds for (collect_list skips the NULLs of
    the others)."""
    value, distinct = _distinct_value(order, source)
    keys = [exp.alias_(o.this.copy(), f"k{i}") for i, o in enumerate(order.expressions)]
    packed: exp.Expression = exp.Struct(expressions=[*keys, exp.alias_(value.copy(), "v")])
    if condition is not None:
        packed = exp.If(this=condition.copy(), true=packed, false=exp.Null())
    collected = exp.func("collect_set" if distinct else "collect_list", packed)
    if any(o.args.get("desc") for o in order.expressions):
        ordered = exp.func("array_sort", collected, _comparator(order.expressions))
    else:
        ordered = exp.func("array_sort", collected)
    lam = exp.Lambda(this=exp.column("v", table="s"), expressions=[exp.to_identifier("s")])
    return exp.func("transform", ordered, lam)


def _comparator(keys: list[exp.Expression]) -> exp.Lambda:
    """``(l, r) -> ...`` ordering two packed structs by their keys ``k0, k1, ...``, each ASC or
    DESC, NULLs last unless the key says NULLS FIRST (DuckDB's default is NULLS LAST)."""
    ifs = []
    for i, ordered in enumerate(keys):
        left, right = exp.column(f"k{i}", table="l"), exp.column(f"k{i}", table="r")
        null_left = -1 if ordered.args.get("nulls_first") else 1
        less = 1 if ordered.args.get("desc") else -1
        compare = exp.Case(
            ifs=[
                exp.If(this=left.copy().is_(exp.null()), true=exp.Literal.number(null_left)),
                exp.If(this=right.copy().is_(exp.null()), true=exp.Literal.number(-null_left)),
                exp.If(
                    this=exp.LT(this=left.copy(), expression=right.copy()),
                    true=exp.Literal.number(less),
                ),
            ],
            default=exp.Literal.number(-less),
        )
        differ = exp.not_(exp.paren(exp.NullSafeEQ(this=left, expression=right)))
        ifs.append(exp.If(this=differ, true=compare))
    body = exp.Case(ifs=ifs, default=exp.Literal.number(0))
    return exp.Lambda(this=body, expressions=[exp.to_identifier("l"), exp.to_identifier("r")])
