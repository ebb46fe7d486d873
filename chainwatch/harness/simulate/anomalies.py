"""The anomaly scenarios (ANOMALY_SCENARIOS): the plans of anomaly tasks, and the planner that
chooses which arrivals become anomaly tasks and schedules the later ones."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from chainwatch.harness.simulate.catalog import (
    _AWS_TOOLS,
    _DRIP_HOSTS,
    _EGRESS_TOOLS,
    _EXTERNAL_MAIL,
    _READ_POOL,
    _ROLE_TOOLS,
    _ROLES,
    _TOOLS,
    ANOMALY_RATE,
    ANOMALY_SCENARIOS,
    _own_reads,
    _plain,
    _quiet,
    _Role,
    _typical_reads,
)
from chainwatch.harness.simulate.clock import _DAY, _HOUR, _HOUR_WEIGHTS, _MIN
from chainwatch.harness.simulate.core import _SimCore
from chainwatch.harness.simulate.state import _Agent, _Anomaly, _Drift, _Task

if TYPE_CHECKING:
    from chainwatch.harness.simulate.simulator import _Simulator


class _AnomalyTasks(_SimCore):
    """Anomaly tasks' plans: bursts and sweeps of the role's own reads, odd tool combinations,
    quiet campaign tasks and another role's plan."""

    def _anomaly_plan(self, task: _Task, anomaly: _Anomaly) -> list[tuple[str, dict[str, Any]]]:
        """The plan of one anomaly task (see ANOMALY_SCENARIOS); fills in the label's note."""
        role = task.agent.role
        kind = anomaly.kind
        if kind == "read_burst":
            plan = [s for s in self._plan(role) if s[0] not in _EGRESS_TOOLS]
            typical = _typical_reads(role)
            extra = min(45, max(15, round(typical * (4.0 + 7.0 * self._rand()))))
            servers = {_TOOLS[k].server for k, _ in plan} - {None}
            for _ in range(extra):
                plan.insert(self._ri(0, len(plan)), self._read_step(role, servers))
            anomaly.note = (
                f"{extra} extra reads of the role's own tools (its tasks average "
                f"{typical:.1f}); no egress, no approval"
            )
            return plan
        if kind == "unusual_tool_combination":
            combo = self._odd_combination(role)
            anomaly.note = "read tools no role uses together: " + ", ".join(combo)
            return [(k, {}) for k in combo]
        if kind == "off_hours_bulk_access":
            servers: set[str | None] = set()
            plan = [self._read_step(role, servers, i) for i in range(self._ri(8, 20))]
            anomaly.note = (
                f"{len(plan)} reads over distinct resources, starting "
                f"{self.clock.iso(task.start, 0)[11:16]} UTC; no egress"
            )
            return plan
        if kind == "slow_exfiltration":
            assert anomaly.egress is not None
            plan = [q for step in self._plan(role) if (q := _quiet(role, step)) is not None]
            plan.insert(self._ri(0, len(plan)), (anomaly.egress[0], dict(anomaly.egress[1])))
            return plan
        other = anomaly.role  # role_drift
        assert other is not None
        plan = [s for s in self._plan(other) if s[0] not in _EGRESS_TOOLS]
        own = _ROLE_TOOLS[role.name]
        if all(k in own for k, _ in plan):  # it must show: one tool the agent's role never uses
            foreign = sorted(_ROLE_TOOLS[other.name] - own - _EGRESS_TOOLS)
            plan.insert(self._ri(0, len(plan)), (self._pick(foreign), {}))
        return plan

    def _read_step(
        self, role: _Role, servers: set[str | None], i: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        """One read with the role's own tools on its non-sensitive resources; i-th of a sweep.

        servers holds the task's MCP servers so far: a fifth is never added (connector_sprawl).
        """
        keys, weights = _own_reads(role)
        key = self.rng.choices(keys, weights)[0]
        server = _TOOLS[key].server
        if server is not None and server not in servers:
            if len(servers) >= 4:
                allowed = [
                    (k, w)
                    for k, w in zip(keys, weights, strict=True)
                    if _TOOLS[k].server in servers or _TOOLS[k].server is None
                ]
                key = self.rng.choices([k for k, _ in allowed], [w for _, w in allowed])[0]
            else:
                servers.add(server)
        if key in ("query_db", "postgres.query"):
            tables = _plain(role.tables)
            return key, {"tables": tables if i is None else (tables[i % len(tables)],)}
        if key.startswith("s3_"):
            return key, {"buckets": _plain(role.buckets)}
        return key, {}

    def _odd_combination(self, role: _Role) -> list[str]:
        """3-5 read tools of other roles that no role uses together, on at most 4 MCP servers."""
        own = _ROLE_TOOLS[role.name]
        # AWS tools only where the task's credential can call AWS (else no CloudTrail would back them).
        pool = [
            k for k in _READ_POOL if k not in own and (role.cred == "aws" or k not in _AWS_TOOLS)
        ]
        for _ in range(200):
            combo = self.rng.sample(pool, self._ri(3, 5))
            servers = {_TOOLS[k].server for k in combo} - {None}
            if len(servers) <= 4 and not any(set(combo) <= t for t in _ROLE_TOOLS.values()):
                break
        return combo


class _Anomalies:
    """Chooses the arrivals that become ANOMALY_SCENARIOS tasks, and schedules the later ones.

    Counts are planned, not drawn, so every run gets its share: about ANOMALY_RATE of the
    expected tasks, split evenly over the types, and at least one instance of each.
    read_burst and unusual_tool_combination turn arrivals at planned indices (one early, the
    rest anywhere) into the anomaly task. off_hours_bulk_access tasks are scheduled up front in
    the run's nights, 00:00-04:59 UTC (the first in the first night), for a random agent each.
    slow_exfiltration turns an arrival into a campaign's first task and schedules the others;
    role_drift makes the arrival's agent drift from then on; both start in the first half of
    the run. An agent runs at most one campaign or drift.
    """

    def __init__(self, sim: _Simulator, n_est: float) -> None:
        self.sim = sim
        self.n_est = n_est
        per_type = max(1, round(n_est * ANOMALY_RATE / len(ANOMALY_SCENARIOS)))
        early = [
            "read_burst",
            "unusual_tool_combination",
            *["slow_exfiltration"] * math.ceil(per_type / 8),  # 6-15 tasks each
            *["role_drift"] * math.ceil(per_type / 12),  # 8-16 drifted tasks each, expected
        ]
        sim.rng.shuffle(early)
        span = max(len(early), int(0.5 * n_est))
        planned = [(int((k + 0.5) * span / len(early)), a) for k, a in enumerate(early)]
        for kind in ("read_burst", "unusual_tool_combination"):
            planned += [(int(sim._rand() * 0.95 * n_est), kind) for _ in range(per_type - 1)]
        self.planned = sorted(planned, reverse=True)  # earliest last: pop() takes it
        self.drifting: dict[str, _Drift] = {}
        self.busy: set[str] = set()  # agents running a campaign or drifting
        self.campaigns = 0
        nights = (sim.run_end - sim.t0) // _DAY  # the run starts at 00:00 UTC
        for k in range(per_type):
            night = sim.t0 + (sim._ri(0, nights - 1) if k else 0) * _DAY
            anomaly = _Anomaly("off_hours_bulk_access", sim._pick_agent(), "")
            sim._schedule(night + sim._ri(5, 299) * _MIN, anomaly)

    def at_arrival(self, index: int, agent: _Agent, t: int) -> _Anomaly | None:
        """The anomaly task the index-th ordinary arrival becomes, if any."""
        sim = self.sim
        free = agent.agent_id not in self.busy or len(sim.agents) == 1
        if self.planned and self.planned[-1][0] <= index and free:
            kind = self.planned.pop()[1]
            if kind == "slow_exfiltration":
                return self._campaign(agent, t)
            if kind == "role_drift":
                return self._start_drift(agent, t, index)
            return _Anomaly(kind, agent, "")
        drift = self.drifting.get(agent.agent_id)
        if drift is not None:
            # The chance rises with the arrivals since the drift began. Systematic sampling (a
            # drifted task each time the summed chances pass a whole number) keeps the count
            # close to its expectation, where a coin per task would scatter it.
            progress = (index - drift.first) / max(1.0, self.n_est - drift.first)
            drift.credit += drift.p_max * min(1.0, progress)
            if drift.credit >= 1.0:
                drift.credit -= 1.0
                return self._drifted(agent, drift.role, drift.since)
        return None

    def _campaign(self, agent: _Agent, t: int) -> _Anomaly:
        """A slow exfiltration campaign: its first task now, the others scheduled over the run."""
        sim = self.sim
        self.busy.add(agent.agent_id)
        self.campaigns += 1
        lo, hi = t + 30 * _MIN, sim._last_followup
        n = sim._ri(6, 15)
        times = sorted(self._working_time(lo, hi) for _ in range(n - 1)) if hi > lo else []
        if sim._rand() < 0.5:
            dest = (
                f"https://{sim._pick(_DRIP_HOSTS)}/v1/{sim._pick(('events', 'sync'))}/{sim._hex(8)}"
            )
        else:
            name = sim._chars("abcdefghijklmnopqrstuvwxyz", sim._ri(5, 9))
            dest = f"{name}.{sim._ri(10, 99)}@{sim._pick(_EXTERNAL_MAIL)}"
        tasks = []
        for k in range(1, len(times) + 2):
            if dest.startswith("https://"):
                args = {
                    "url": dest,
                    "body_bytes": sim._ri(300, 6000),
                    "content_type": "application/json",
                }
                send = ("http_post", {"args": args})
            else:
                subject = sim._pick(("Notes", "Daily digest", "Sync"))
                send = ("send_email", {"args": {"to": [dest], "subject": subject}})
            seen = "new for the agent" if k == 1 else "used by the campaign before"
            note = (
                f"campaign exfil-{self.campaigns}, task {k} of {len(times) + 1}: one small send "
                f"to {dest} ({seen}); no sensitive read"
            )
            tasks.append(_Anomaly("slow_exfiltration", agent, note, egress=send))
        for when, task in zip(times, tasks[1:], strict=True):
            sim._schedule(when, task)
        return tasks[0]

    def _working_time(self, lo: int, hi: int) -> int:
        """A time in [lo, hi), busier in working hours like the arrivals."""
        sim = self.sim
        for _ in range(50):
            t = lo + int(sim._rand() * (hi - lo))
            if sim._rand() < _HOUR_WEIGHTS[t % _DAY // _HOUR]:
                break
        return t

    def _start_drift(self, agent: _Agent, t: int, index: int) -> _Anomaly:
        """The agent drifts to another role (same kind of credential) from now on."""
        sim = self.sim
        role = sim._pick([r for r in _ROLES if r is not agent.role and r.cred == agent.role.cred])
        # Its share of the tasks still to come; the rising chance then yields about `target`.
        remaining = max(1.0, (self.n_est - index) * agent.role.weight / sim._cum_weights[-1])
        target = sim._ri(8, 16)
        p_max = min(0.9, 2 * (target - 1) / remaining)
        self.drifting[agent.agent_id] = _Drift(role, t, index, p_max, sim._rand())
        self.busy.add(agent.agent_id)
        return self._drifted(agent, role, t)

    def _drifted(self, agent: _Agent, role: _Role, since: int) -> _Anomaly:
        note = (
            f"runs the {role.name} plan, not its own {agent.role.name}; drifting since "
            f"{self.sim.clock.iso(since, 0)}"
        )
        return _Anomaly("role_drift", agent, note, role=role)
