"""Peer benchmark: chainwatch's chain rule `sensitive_read_then_egress` against Elastic's Python
EQL engine (PyPI `eql`) on the same synthetic agent actions.

    .venv/bin/python -m benchmarks.eql_peer --events 1000000 [--seed 7] [--within 10m] [--keep DIR]

Both engines answer one question: which tasks hold a high-sensitivity read followed, within the
rule's window, by an external egress? The actions are generated inside DuckDB (tasks of 10
actions, half of which are background noise) with a planted scenario per task, so the answer is
neither empty nor everything:

    within        read(high) then egress(external) 0..W seconds later (an eighth exactly W, an
                  eighth in the same second): a match
    beyond        the same, W+1..3W seconds apart: no match
    wrong_order   egress(external) first, read(high) 1..W+1 seconds later: no match
    internal      read(high) then egress(internal): no match
    low_read      read(low) then egress(external): no match
    across        a pair of tasks of one agent: one reads, the other sends W or less later: no match
    random        10 random actions (30% high, 40% external) over 3W: either, both engines decide
    benign        no high read, no external egress: no match

chainwatch runs the loaded rule through `detectors.rules.engine.run_rule` (the SQL detect()
runs); eql runs `sequence by task_id with maxspan=W [read where ...] [egress where ...]` through
`eql.PythonEngine` over the same actions exported as JSON lines. The match step of each engine
is timed on its own, apart from generating, exporting and loading. The two sets of matching
tasks must be equal, and must agree with the planted scenarios.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from detectors.core.warehouse import prepare
from detectors.rules.declarative import compile_chain, parse_duration
from detectors.rules.engine import Rule, load_rules, run_rule

RULE_ID = "sensitive_read_then_egress"
TASK_SIZE = 10
AGENTS = 500
# Seconds between the start of one pair of tasks and the next: tasks (up to 3W long) overlap, so
# the EQL engine holds many open sequences at once, as it would on a real stream.
PAIR_SPACING_S = 120
PLANTED_MATCH = ("within",)
PLANTED_NO_MATCH = (
    "beyond",
    "wrong_order",
    "internal",
    "low_read",
    "across_read",
    "across_egress",
    "benign",
)

# rnd(x, salt, seed): a pseudo-random UBIGINT per (x, salt, seed). DuckDB's variadic hash()
# combines its arguments' hashes so that their low bits stay correlated; hashing one string does not.
RANDOM_MACRO = (
    "CREATE OR REPLACE TEMP MACRO rnd(x, salt, seed) AS hash(concat_ws('/', x, salt, seed))"
)

# $n events, $seed, $w = the rule's window in seconds. One row per task, then one per action.
SYNTHETIC_TASKS = """
CREATE OR REPLACE TABLE synthetic_tasks AS
SELECT k, 'task-' || k AS task_id,
    CASE WHEN rnd(k // 2, 'pair', $seed) % 10 = 0
         THEN CASE WHEN k % 2 = 0 THEN 'across_read' ELSE 'across_egress' END
         ELSE ['within', 'within', 'within', 'within', 'within', 'beyond', 'beyond',
               'wrong_order', 'wrong_order', 'internal', 'low_read', 'random', 'random', 'random',
               'benign', 'benign'][1 + (rnd(k, 'kind', $seed) % 16)::INT]
    END AS scenario,
    (k // 2) * $spacing AS start_s,
    -- shared by the two tasks of a pair, so an 'across' egress lands right after the other's read
    (rnd(k // 2, 'read', $seed) % $w)::BIGINT AS read_at,
    CASE rnd(k, 'edge', $seed) % 8 WHEN 0 THEN $w WHEN 1 THEN 0
         ELSE rnd(k, 'gap', $seed) % ($w + 1) END::BIGINT AS gap_within,
    CASE WHEN rnd(k, 'edge', $seed) % 8 = 0 THEN $w + 1
         ELSE $w + 1 + rnd(k, 'gap', $seed) % (2 * $w) END::BIGINT AS gap_beyond
FROM range(($n + $size - 1) // $size) t(k)
"""

SYNTHETIC_ACTIONS = """
CREATE OR REPLACE TEMP TABLE synthetic_actions AS
WITH ev AS (
    SELECT i, t.*, i % $size AS p,
        rnd(i, 'x', $seed) % 1000 AS r1, rnd(i, 'y', $seed) % 1000 AS r2,
        (rnd(i, 'off', $seed) % (3 * $w))::BIGINT AS noise_at
    FROM range($n) r(i) JOIN synthetic_tasks t ON t.k = i // $size
), shaped AS (
    SELECT *,
        CASE WHEN scenario = 'random' THEN 'random'
             WHEN p = 2 AND scenario IN ('within', 'beyond', 'wrong_order', 'internal', 'low_read',
                                         'across_read') THEN 'first'
             WHEN p = 6 AND scenario IN ('within', 'beyond', 'wrong_order', 'internal', 'low_read',
                                         'across_egress') THEN 'second'
             ELSE 'noise' END AS role
    FROM ev
)
SELECT i, k, task_id,
    CASE role WHEN 'first' THEN 'read' WHEN 'second' THEN 'egress'
        WHEN 'random' THEN ['read', 'egress', 'write', 'delegate'][1 + (r1 % 4)::INT]
        ELSE ['write', 'delegate', 'read', 'egress'][1 + (r1 % 4)::INT] END AS action_class,
    CASE role WHEN 'first' THEN CASE WHEN scenario = 'low_read' THEN 'low' ELSE 'high' END
        WHEN 'second' THEN 'low'
        WHEN 'random' THEN CASE WHEN r2 % 10 < 3 THEN 'high' ELSE 'low' END
        -- noise never reads high data
        ELSE CASE WHEN r1 % 4 <> 2 AND r2 % 10 < 3 THEN 'high' ELSE 'low' END END AS sensitivity,
    CASE role WHEN 'first' THEN false WHEN 'second' THEN scenario <> 'internal'
        WHEN 'random' THEN r2 % 10 >= 6
        -- noise never sends outside
        ELSE r1 % 4 <> 3 AND r2 % 2 = 0 END AS external,
    start_s + CASE role
        WHEN 'first' THEN read_at + CASE WHEN scenario = 'wrong_order' THEN gap_within + 1 ELSE 0 END
        WHEN 'second' THEN read_at + CASE scenario WHEN 'beyond' THEN gap_beyond
                                                   WHEN 'wrong_order' THEN 0 ELSE gap_within END
        ELSE noise_at END AS at_s
FROM shaped
"""

LOAD_ACTIONS = """
INSERT INTO agent_actions BY NAME
SELECT 'e' || i AS event_id, TIMESTAMP '2026-11-01' + to_seconds(at_s) AS ts,
    CAST(TIMESTAMP '2026-11-01' + to_seconds(at_s) AS DATE) AS day,
    'agent-' || ((k // 2) % $agents) AS agent_id, task_id, 'native' AS task_source,
    CASE action_class WHEN 'read' THEN CASE sensitivity WHEN 'high' THEN 'get_secret' ELSE 'read_file' END
        WHEN 'egress' THEN 'send_email' WHEN 'write' THEN 'create_issue' ELSE 'spawn_subagent' END AS tool,
    'benchmark' AS system, action_class, 'catalog' AS classified_by,
    CASE WHEN action_class = 'egress' THEN
        CASE WHEN external THEN 'x@evil.example.net' ELSE 'team@example.com' END END AS destination,
    sensitivity, external, 'ok' AS outcome, '10.0.0.1' AS source_ip, 'native' AS source_format,
    'benchmark' AS source_file, 0 AS source_offset, i AS source_line, 0 AS source_record,
    TIMESTAMP '2026-11-28' AS ingested_at
FROM synthetic_actions
"""

# The fields eql's Python engine reads: `event_type` (what `read where ...` tests) and
# `timestamp` (a number; the engine is told it counts seconds). Elasticsearch's EQL would read
# `event.category` and `@timestamp` instead; the Python engine does not. Ordered as chainwatch
# orders a task's actions (ts, event_id), so same-second ties fall the same way in both.
EXPORT_EVENTS = """
COPY (
    SELECT action_class AS event_type, CAST(epoch(ts) AS BIGINT) AS timestamp, task_id, event_id,
        sensitivity, external
    FROM agent_actions ORDER BY ts, event_id
) TO '{path}' (FORMAT json)
"""


def eql_query(window_s: int) -> str:
    """The rule in EQL: the same two steps, joined on the task, within the same window."""
    return (
        f"sequence by task_id with maxspan={window_s}s"
        ' [read where sensitivity == "high"]'
        " [egress where external == true]"
    )


def load_rule(within: str | None = None) -> Rule:
    """The shipped rule; `within` (e.g. '10m') recompiles it with another window."""
    rule = next(r for r in load_rules() if r.id == RULE_ID)
    if within is None:
        return rule
    spec = {**rule.meta["sequence"], "within": within}
    sql, params = compile_chain(spec, f"{rule.path}: field 'sequence' (within={within})")
    return dataclasses.replace(rule, sql=sql, params=params, meta={**rule.meta, "sequence": spec})


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(con: duckdb.DuckDBPyConnection, n_events: int, seed: int, window_s: int) -> int:
    """Fill `agent_actions` (and `synthetic_tasks`, the planted scenario per task); tasks made."""
    params = {"n": n_events, "seed": seed, "w": window_s, "size": TASK_SIZE}
    con.execute(RANDOM_MACRO)
    con.execute(SYNTHETIC_TASKS, {**params, "spacing": PAIR_SPACING_S})
    con.execute(SYNTHETIC_ACTIONS, params)
    con.execute(LOAD_ACTIONS, {"agents": AGENTS})
    con.execute("DROP TABLE synthetic_actions")
    return con.execute("SELECT count(*) FROM synthetic_tasks").fetchone()[0]


def run_eql(path: Path, window_s: int) -> tuple[set[str], int, float, float]:
    """Load the JSON lines with eql's own reader, then stream them through its Python engine.

    Returns (matching task ids, sequences found, load seconds, match seconds)."""
    import eql

    started = time.perf_counter()
    events = [eql.Event.from_data(d) for d in eql.utils.stream_file_events(str(path))]
    load_s = time.perf_counter() - started

    query = eql.parse_query(eql_query(window_s))
    sequences: list = []
    engine = eql.PythonEngine({"time_unit": 1})  # timestamps in seconds (default: FILETIME)
    engine.add_query(query)
    engine.add_output_hook(sequences.append)
    started = time.perf_counter()
    engine.stream_events(events)
    match_s = time.perf_counter() - started
    # EQL emits a sequence and forgets it: a task matches once per (read ... egress) pair it
    # completes, never twice for one read.
    tasks = {out.events[0].data["task_id"] for out in sequences}
    return tasks, len(sequences), load_s, match_s


def run_chainwatch(con: duckdb.DuckDBPyConnection, rule: Rule) -> tuple[set[str], int, float]:
    """The rule's compiled SQL as detect() runs it. Returns (task ids, hit rows, seconds)."""
    started = time.perf_counter()
    hits = run_rule(con, rule)
    seconds = time.perf_counter() - started
    # A hit is one (task, day the sequence started) with every matching egress counted in its
    # detail; entity_id is the task id for this task-grouped rule.
    return {h[0] for h in hits}, len(hits), seconds


def compare(
    n_events: int, seed: int, workdir: Path, *, within: str | None = None
) -> dict[str, Any]:
    """Generate `n_events` actions in `workdir`, run both engines, assert they agree, time them.

    Semantics and the granularity they share: chainwatch carries the latest sensitive read of a
    task forward and reports every external egress no more than W seconds after it (one row per
    task and start day); EQL's `sequence by task_id with maxspan=W` keeps one open sequence per
    task (a new read replaces the older one, which is the better candidate anyway), drops it once
    its first event is more than W old, and emits it at the first egress, then starts over. Both
    include the bound (a gap of exactly W matches: chainwatch tests `<= W`, eql drops a sequence
    only when its start is `< now - W`), and both order by time with ties in the stream's order,
    which the export makes (ts, event_id), chainwatch's order. So the set of task ids with at
    least one match is the same in both, and that is what is compared (the number of rows or
    sequences per task is not: a task with two egresses after one read is one EQL sequence and
    one chainwatch row counting two).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    rule = load_rule(within)
    window_s = parse_duration(rule.meta["sequence"]["within"], "within")
    db = workdir / "eql_peer.duckdb"
    db.unlink(missing_ok=True)
    con = prepare(duckdb.connect(str(db)))
    try:
        started = time.perf_counter()
        tasks = generate(con, n_events, seed, window_s)
        generate_s = time.perf_counter() - started
        events = con.execute("SELECT count(*) FROM agent_actions").fetchone()[0]

        cw_tasks, cw_hits, cw_s = run_chainwatch(con, rule)
        rss_after_chainwatch = _peak_rss_mb()

        jsonl = workdir / "agent_actions.jsonl"
        started = time.perf_counter()
        con.execute(EXPORT_EVENTS.format(path=str(jsonl).replace("'", "''")))
        export_s = time.perf_counter() - started
        scenarios = dict(con.execute("SELECT task_id, scenario FROM synthetic_tasks").fetchall())
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    finally:
        con.close()

    eql_tasks, eql_sequences, eql_load_s, eql_s = run_eql(jsonl, window_s)

    if eql_tasks != cw_tasks:
        raise AssertionError(
            f"engines disagree: {len(eql_tasks - cw_tasks)} task(s) only eql matched "
            f"(e.g. {sorted(eql_tasks - cw_tasks)[:5]}), {len(cw_tasks - eql_tasks)} only "
            f"chainwatch matched (e.g. {sorted(cw_tasks - eql_tasks)[:5]})"
        )
    planted = {t for t, s in scenarios.items() if s in PLANTED_MATCH}
    refused = {t for t, s in scenarios.items() if s in PLANTED_NO_MATCH}
    if planted - cw_tasks or refused & cw_tasks:
        raise AssertionError(
            f"planted scenarios: {len(planted - cw_tasks)} 'within' task(s) unmatched "
            f"(e.g. {sorted(planted - cw_tasks)[:5]}), {len(refused & cw_tasks)} no-match task(s) "
            f"matched (e.g. {sorted(refused & cw_tasks)[:5]})"
        )
    return {
        "events": events,
        "tasks": tasks,
        "window_seconds": window_s,
        "matches": len(cw_tasks),
        "matches_planted": len(planted),
        "matches_random": len(cw_tasks - planted),
        "chainwatch_hit_rows": cw_hits,
        "eql_sequences": eql_sequences,
        "generate_seconds": round(generate_s, 3),
        "export_seconds": round(export_s, 3),
        "eql_load_seconds": round(eql_load_s, 3),
        "eql_seconds": round(eql_s, 3),
        "chainwatch_seconds": round(cw_s, 4),
        "ratio": round(eql_s / cw_s, 1),
        "duckdb_threads": threads,
        "peak_rss_mb_after_chainwatch": round(rss_after_chainwatch),
        "peak_rss_mb": round(_peak_rss_mb()),
        "eql_query": eql_query(window_s),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--within", help="override the rule's window, e.g. 10m (default: the rule's)"
    )
    parser.add_argument("--keep", type=Path, help="work in this folder and keep its files")
    args = parser.parse_args(argv)
    if args.keep:
        result = compare(args.events, args.seed, args.keep, within=args.within)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = compare(args.events, args.seed, Path(tmp), within=args.within)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
