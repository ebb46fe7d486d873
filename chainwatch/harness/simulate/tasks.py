"""Tasks: a role's plan, the credential it runs with, approvals, failures and JIT hygiene."""

from __future__ import annotations

from typing import Any

from chainwatch.harness.simulate.catalog import _APPROVERS, _RARE_TOOLS, _TOOLS, _Role
from chainwatch.harness.simulate.clock import _HOUR, _MIN, _S
from chainwatch.harness.simulate.core import _SimCore
from chainwatch.harness.simulate.state import _Agent, _Anomaly, _Cred, _Followup, _Task

_Plan = list[tuple[str, dict[str, Any]]]

# Scenarios whose task keeps its credential alive after it ends: a long TTL, no revocation.
_KEEPS_CREDENTIAL = frozenset(
    (
        "credential_outlived_task",
        "credential_reused_by_other_task",
        "credential_shared_across_agents",
        "leaked_credential_new_ip",
        "approval_retained_access",
    )
)


class _Tasks(_SimCore):
    """Generate one task end to end and push all its lines."""

    def _plan(self, role: _Role) -> _Plan:
        """An ordinary task's tool calls: each step of the role by its chance, and its reps."""
        plan: _Plan = []
        for step in role.steps:
            if step.p < 1.0 and self._rand() >= step.p:
                continue
            for _ in range(self._ri(*step.reps)):
                plan.append((self._pick(step.options), {}))
        if self._rand() < 0.005:  # an unusual but benign tool
            plan.insert(self._ri(0, len(plan)), (self._pick(_RARE_TOOLS), {}))
        return plan

    def _new_task(self, agent: _Agent, start: int, long_ok: bool) -> _Task:
        self._task_seq += 1
        task_id = f"task-{self.clock.day_str(start).replace('-', '')}-{self._task_seq:06d}"
        return _Task(
            task_id=task_id,
            agent=agent,
            start=start,
            now=start,
            trace_id=self._hex(32),
            root_id=self._hex(16),
            spans=[],
            tag_spans=self._rand() < 0.1,
            slow=self._pick((8.0, 15.0, 30.0)) if long_ok and self._rand() < 0.005 else 1.0,
        )

    def run_task(
        self,
        agent: _Agent,
        start: int,
        scenario: str | None = None,
        followup: _Followup | None = None,
        anomaly: _Anomaly | None = None,
    ) -> None:
        """Generate one task end to end and push all its lines."""
        # Rare long tasks, but not late in the run (nothing may spill past its last day).
        long_ok = followup is None and anomaly is None and start < self.run_end - 8 * _HOUR
        task = self._new_task(agent, start, long_ok)
        self.tasks += 1
        self._native(start, "start", task)
        plan = self._task_plan(task, scenario, anomaly)
        keep = scenario in _KEEPS_CREDENTIAL
        self._take_credential(task, plan, keep, followup)
        status = self._run_plan(task, plan, scenario, followup, anomaly)
        if status != "completed":
            task.error_type = task.error_type or (
                "Cancelled" if status == "cancelled" else "ToolError"
            )
        reused = followup is not None and followup.mode == "reuse"
        end = self._end_task(task, status, hygiene=not keep and not reused, anomaly=anomaly)
        if scenario:
            self._after(task, scenario, end)
        if anomaly is not None:
            self._label(anomaly.kind, task, None, anomaly.note)

    def _task_plan(self, task: _Task, scenario: str | None, anomaly: _Anomaly | None) -> _Plan:
        """The role's plan, or the anomaly task's; with the scenario's action chain injected."""
        if anomaly is None:
            plan = self._plan(task.agent.role)
        else:
            task.role = anomaly.role  # an anomaly may run another role's plan
            plan = self._anomaly_plan(task, anomaly)
        if scenario:
            plan = self._inject(task, scenario, plan)
        return plan

    def _take_credential(
        self, task: _Task, plan: _Plan, keep: bool, followup: _Followup | None
    ) -> None:
        """The task's credential: its own JIT one, or the earlier task's (a reuse follow-up)."""
        ttl_s = self._ttl(task, keep)
        if followup is not None and followup.mode == "reuse":
            task.cred = followup.cred  # the agent kept the earlier task's credential
            task.now += self._ri(20, 900) * 1000
        else:
            task.cred = self._issue(task, ttl_s, long_lived=keep)
        if followup is not None:
            # Calls that surely go through the other task's credential (whatever the plan holds).
            task.borrowed = followup.cred
            for _ in range(self._ri(2, 3)):
                plan.insert(self._ri(0, len(plan)), self._borrowed_step(followup.cred))

    def _ttl(self, task: _Task, keep: bool) -> int:
        """The lifetime asked for the task's credential, in seconds."""
        role = task.agent.role  # the credential's role, whoever's plan the task runs
        ttl_s = self._pick((900, 1200, 1800, 2700, 3600))
        if keep:
            ttl_s = self._ri(8, 72) * 3600 if role.cred == "vault" else 43200
        if task.slow > 1.0 and role.cred == "vault" and not keep:
            ttl_s = 1800  # long tasks renew instead
        return ttl_s

    def _run_plan(
        self,
        task: _Task,
        plan: _Plan,
        scenario: str | None,
        followup: _Followup | None,
        anomaly: _Anomaly | None,
    ) -> str:
        """The plan's tool calls, up to a failure or cancellation; returns the task's status."""
        ordinary = scenario is None and followup is None and anomaly is None
        status, stop_at = self._stop_point(plan, ordinary)
        approval_at = self._approval_point(task, plan, scenario, anomaly)
        for i, (key, opts) in enumerate(plan):
            if i == stop_at:
                if status == "failed":
                    self._tool(task, key, {**opts, "fail": True})
                break
            if i == approval_at:
                self._approve(task, plan, i, retained=scenario == "approval_retained_access")
            ok = self._tool(task, key, opts)
            if not ok and ordinary and self._rand() < 0.03:
                status = "failed"
                break
        return status

    def _stop_point(self, plan: _Plan, ordinary: bool) -> tuple[str, int]:
        """Failure / cancellation point: (status, index of the step where the task stops)."""
        roll = self._rand()
        if ordinary and plan:
            if roll < 0.04:
                return "failed", self._ri(0, len(plan) - 1)
            if roll < 0.05:
                return "cancelled", self._ri(0, len(plan) - 1)
        return "completed", len(plan)

    def _approval_point(
        self, task: _Task, plan: _Plan, scenario: str | None, anomaly: _Anomaly | None
    ) -> int:
        """The step a human approves (before the first write), or -1."""
        if scenario == "approval_retained_access":
            return next(i for i, (_, o) in enumerate(plan) if o.get("approval"))
        if scenario is None and anomaly is None and self._rand() < task.agent.role.approval_p:
            writes = [i for i, (k, _) in enumerate(plan) if _TOOLS[k].effect in ("write", "egress")]
            if writes:
                return writes[0]
        return -1

    def _approve(self, task: _Task, plan: _Plan, i: int, retained: bool) -> None:
        """Approval before step i: its scope covers what follows and outlives the task, unless
        retained (approval_retained_access), where what follows comes after it expired."""
        task.now += self._ri(30, 600) * _S  # waiting for the human
        if retained:
            scope = [_TOOLS[plan[i][0]].name]
            expires = task.now + self._ri(3, 8) * _MIN
            if i + 1 < len(plan):  # what follows happens after the approval expired
                wait = expires - task.now + self._ri(1, 10) * _MIN
                plan[i + 1][1]["wait"] = wait
        else:
            scope = list(dict.fromkeys(_TOOLS[k].name for k, _ in plan[i:]))
            expires = task.now + self._ri(60, 180) * _MIN * int(task.slow)
        self._native(
            task.now,
            "approval",
            task,
            approved_by=self._pick(_APPROVERS),
            approved_scope=scope,
            approval_expires_at=self.clock.iso(expires, 0),
        )

    def _end_task(self, task: _Task, status: str, hygiene: bool, anomaly: _Anomaly | None) -> int:
        """Task end: JIT hygiene unless the credential is kept, then its trace; the end time."""
        task.now += self._ri(500, 4000) * 1000
        cred = task.cred
        if cred is not None and hygiene and cred.ns == "vault":
            self._revoke(task, cred, may_forget=anomaly is None)  # anomaly tasks never forget
        end = task.now + self._ri(50, 500) * 1000
        self._push_trace(task, end, status)
        self._native(end, "end", task, status=status)
        return end

    def _revoke(self, task: _Task, cred: _Cred, may_forget: bool) -> None:
        """Revoke some of the task's database leases and, usually, its Vault token."""
        ip = self._pick(task.agent.ips)
        for lease in task.leases:
            if self._rand() < 0.5:
                task.now = self._vault(task.now, cred, ip, "update", f"sys/leases/revoke/{lease}")
        if not may_forget or self._rand() < 0.92:
            task.now = self._vault(task.now, cred, ip, "update", "auth/token/revoke-self")
        else:
            # Forgetting to revoke leaves the token valid until its TTL runs out: that is the
            # outlived-task finding too, so it is labelled (its leases end with it).
            self._label(
                "credential_outlived_task",
                task,
                cred,
                "not revoked at task end (forgotten); expires on its own TTL",
            )

    def _borrowed_step(self, cred: _Cred) -> tuple[str, dict[str, Any]]:
        owner_role = cred.owner.role
        if cred.ns == "vault":
            path = self._pick(owner_role.secrets or ("secret/data/shared/config",))
            return ("get_secret", {"borrowed": True, "path": path})
        bucket = self._pick(owner_role.buckets or ("acme-analytics-lake",))
        return ("s3_get_object", {"borrowed": True, "bucket": bucket})
