"""Peer groups: which agents an agent is compared with.

:func:`assign_peer_groups` (at refit) rebuilds ``agent_peer_groups`` by tool-usage clusters, roles
read from the agent id, or one single group; :func:`place_new_agents` (at scoring) gives agents
seen since the refit a group without refitting.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
from sklearn.cluster import KMeans

from detectors.core.settings import PEER_METHODS, AnomalyParams
from detectors.core.warehouse import has_table

log = logging.getLogger(__name__)

SINGLE_GROUP = "all"
OTHER_ROLE = "other"

PeerMethod = Literal["agent_clusters", "roles", "single"]


def default_n_groups(n_agents: int) -> int:
    """min(8, agents // 3), at least 1."""
    return max(1, min(8, n_agents // 3))


def _known_agents(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(
        r[0]
        for r in con.execute(
            """SELECT agent_id FROM agent_actions WHERE agent_id IS NOT NULL
               UNION SELECT agent_id FROM tasks WHERE agent_id IS NOT NULL"""
        ).fetchall()
    )


def _roles(agents: list[str], role_pattern: str) -> list[str]:
    pattern = re.compile(role_pattern)
    out = []
    for agent in agents:  # once per agent, not per event
        m = pattern.search(agent)
        out.append(m.group("role") if m and m.group("role") else OTHER_ROLE)
    return out


def _write_groups(con: duckdb.DuckDBPyConnection, table: str, data: dict[str, list]) -> None:
    arrow = pa.table(
        {k: pa.array(v, pa.string() if k != "share" else pa.float64()) for k, v in data.items()}
    )
    con.register("_groups_in", arrow)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _groups_in")  # noqa: S608 - fixed names
    finally:
        con.unregister("_groups_in")


def assign_peer_groups(
    con: duckdb.DuckDBPyConnection,
    method: PeerMethod = "agent_clusters",
    n_groups: int | None = None,
    *,
    seed: int = 7,
    role_pattern: str = AnomalyParams.role_pattern,
) -> dict[str, str]:
    """Rebuild ``agent_peer_groups(agent_id, peer_group, method)``; agent -> peer group.

    ``agent_clusters``: KMeans on each agent's tool shares, ``n_groups`` clusters (default
    :func:`default_n_groups`, capped by the number of distinct profiles), named ``tools-0``,
    ``tools-1``, ... in order of their first agent by id (independent of KMeans' label order); each
    group's mean profile goes to ``peer_group_profiles``. ``roles``: the ``role`` group of
    ``role_pattern`` matched in the agent id (``other`` when it does not match). ``single``: every
    agent in ``all``. Agents come from ``agent_actions`` and ``tasks``.
    """
    if method not in PEER_METHODS:
        raise ValueError(f"unknown peer group method {method!r}")
    agents = _known_agents(con)
    con.execute(
        """CREATE OR REPLACE TABLE agent_peer_groups (agent_id VARCHAR NOT NULL,
               peer_group VARCHAR NOT NULL, method VARCHAR NOT NULL);
           CREATE OR REPLACE TABLE peer_group_profiles (peer_group VARCHAR NOT NULL,
               tool VARCHAR NOT NULL, share DOUBLE NOT NULL)"""
    )
    if method == "single" or not agents:
        labels = [SINGLE_GROUP] * len(agents)
    elif method == "roles":
        labels = _roles(agents, role_pattern)
    else:
        labels = _cluster_by_tools(con, agents, n_groups or default_n_groups(len(agents)), seed)
    _write_groups(
        con,
        "agent_peer_groups",
        {"agent_id": agents, "peer_group": labels, "method": [method] * len(agents)},
    )
    if method == "agent_clusters":
        con.execute(
            """INSERT INTO peer_group_profiles
               WITH shares AS (
                   SELECT agent_id, tool, count(*) / sum(count(*)) OVER (PARTITION BY agent_id) AS share
                   FROM agent_actions WHERE agent_id IS NOT NULL GROUP BY agent_id, tool
               ), sizes AS (SELECT peer_group, count(*) AS n FROM agent_peer_groups GROUP BY 1)
               SELECT g.peer_group, s.tool, sum(s.share) / any_value(z.n) AS share
               FROM shares s JOIN agent_peer_groups g USING (agent_id) JOIN sizes z USING (peer_group)
               GROUP BY g.peer_group, s.tool ORDER BY 1, 2"""
        )
    return dict(zip(agents, labels, strict=True))


def _cluster_by_tools(
    con: duckdb.DuckDBPyConnection, agent_ids: list[str], n_groups: int, seed: int
) -> list[str]:
    agents = np.array(agent_ids, dtype=str)
    shares = con.execute(
        """SELECT agent_id, tool, count(*)::DOUBLE / sum(count(*)) OVER (PARTITION BY agent_id)
                  AS share
           FROM agent_actions WHERE agent_id IS NOT NULL
           GROUP BY agent_id, tool ORDER BY agent_id, tool"""
    ).fetchnumpy()
    tools = np.unique(shares["tool"].astype(str)) if len(shares["tool"]) else np.array([])
    matrix = np.zeros((len(agents), max(1, len(tools))))
    if len(tools):
        rows = np.searchsorted(agents, shares["agent_id"].astype(str))
        cols = np.searchsorted(tools, shares["tool"].astype(str))
        matrix[rows, cols] = shares["share"]
    k = min(n_groups, len(np.unique(matrix, axis=0)))
    if k <= 1:
        return ["tools-0"] * len(agents)
    raw = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(matrix)
    # Canonical names: clusters numbered by their first agent in agent_id order.
    _, first = np.unique(raw, return_index=True)
    order = {int(raw[i]): n for n, i in enumerate(sorted(first))}
    return [f"tools-{order[int(label)]}" for label in raw]


def place_new_agents(
    con: duckdb.DuckDBPyConnection, role_pattern: str = AnomalyParams.role_pattern
) -> int:
    """Give agents seen since the last refit a peer group without refitting; how many were placed.

    With ``agent_clusters`` an agent joins the group whose mean tool profile is nearest (squared
    Euclidean distance, ties by group name); with ``roles`` its role; with ``single`` ``all``.
    """
    require_peer_groups(con)
    method_row = con.execute("SELECT any_value(method) FROM agent_peer_groups").fetchone()
    known = {r[0] for r in con.execute("SELECT agent_id FROM agent_peer_groups").fetchall()}
    new = [a for a in _known_agents(con) if a not in known]
    if not new or method_row[0] is None:
        return 0
    method = method_row[0]
    if method == "agent_clusters":
        rows = con.execute(
            """WITH shares AS (
                   SELECT agent_id, tool, count(*) / sum(count(*)) OVER (PARTITION BY agent_id) AS share
                   FROM agent_actions WHERE list_contains($new, agent_id) GROUP BY agent_id, tool
               ), a2 AS (SELECT agent_id, sum(share * share) AS n2 FROM shares GROUP BY 1),
               c2 AS (SELECT peer_group, sum(share * share) AS n2 FROM peer_group_profiles GROUP BY 1),
               dot AS (
                   SELECT s.agent_id, p.peer_group, sum(s.share * p.share) AS d
                   FROM shares s JOIN peer_group_profiles p USING (tool) GROUP BY 1, 2
               )
               SELECT n.agent_id, c2.peer_group
               FROM unnest($new) n(agent_id) CROSS JOIN c2
               LEFT JOIN a2 USING (agent_id)
               LEFT JOIN dot ON dot.agent_id = n.agent_id AND dot.peer_group = c2.peer_group
               QUALIFY row_number() OVER (PARTITION BY n.agent_id
                   ORDER BY coalesce(a2.n2, 0) + c2.n2 - 2 * coalesce(dot.d, 0), c2.peer_group) = 1""",
            {"new": new},
        ).fetchall()
        placed = dict(rows)
        labels = [placed.get(a, "tools-0") for a in new]
    elif method == "roles":
        labels = _roles(new, role_pattern)
    else:
        labels = [SINGLE_GROUP] * len(new)
    _write_groups(
        con,
        "agent_peer_groups",
        {"agent_id": new, "peer_group": labels, "method": [method] * len(new)},
    )
    log.info("placed %d new agents in peer groups without refitting", len(new))
    return len(new)


def require_peer_groups(con: duckdb.DuckDBPyConnection) -> None:
    """Assign peer groups with the defaults when there is no ``agent_peer_groups`` table yet."""
    if not has_table(con, "agent_peer_groups"):
        log.info("no agent_peer_groups table: assigning peer groups with the defaults")
        assign_peer_groups(con)
