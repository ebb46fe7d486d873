"""Time every chain rule (the task- and agent-level rules: sequences, thresholds and the SQL ones)
over N synthetic actions (default 1M) on this machine.

    .venv/bin/python benchmarks/chain_rules.py [N]

Actions are generated inside DuckDB (no Python loop per row): 500 agents, tasks of 12 actions,
a mix of tools, systems, classes and sensitivities, so every rule has work to do.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb

from detectors.core.warehouse import prepare
from detectors.derive.tables import build_derived_tables
from detectors.rules.engine import load_rules, run_rule

SYNTHETIC_ACTIONS = """
INSERT INTO agent_actions
SELECT 'e' || i, TIMESTAMP '2026-11-01' + to_seconds(i * 3), CAST(TIMESTAMP '2026-11-01' + to_seconds(i * 3) AS DATE),
    'agent-' || (i % 500), 'task-' || (i // 12), 'native', NULL, NULL, NULL,
    ['get_secret', 'send_email', 'create_issue', 'spawn_subagent', 'read_file'][1 + (hash(i) % 5)::INT],
    ['jira', 'github', 'crm', 'mail', 's3', 'slack'][1 + (hash(i + 7) % 6)::INT],
    ['read', 'egress', 'write', 'delegate', 'read'][1 + (hash(i) % 5)::INT], 'catalog', 'x@evil.example.net',
    CASE WHEN hash(i * 3) % 7 = 0 THEN 'high' ELSE 'low' END, hash(i * 5) % 3 = 0, 'ok', NULL, NULL, NULL,
    '10.0.0.1', NULL, NULL, 'native', 'benchmark', 0, i, 0, TIMESTAMP '2026-11-28', NULL
FROM range(?) t(i)
"""


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        con = prepare(duckdb.connect(str(Path(tmp) / "bench.duckdb")))
        con.execute(SYNTHETIC_ACTIONS, [n])
        build_derived_tables(con)
        rules = [r for r in load_rules() if r.entity != "credential"]
        started = time.perf_counter()
        for rule in rules:
            t = time.perf_counter()
            hits = run_rule(con, rule)
            print(f"{rule.id:32s} {len(hits):8d} hits {time.perf_counter() - t:7.2f} s")
        print(
            f"all {len(rules)} chain rules over {n:,} actions: {time.perf_counter() - started:.2f} s"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
