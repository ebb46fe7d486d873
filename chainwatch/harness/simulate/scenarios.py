"""The rule scenarios (SCENARIOS): the action chains injected into a task's plan, and what
happens after the task (credential misuse, follow-up tasks), each instance labelled."""

from __future__ import annotations

from typing import Any

from chainwatch.harness.simulate.catalog import (
    _LEAK_NETS,
    _LEAK_UAS,
    _MCP_READ_TOOL,
    _MCP_SERVERS,
    _SENSITIVE,
    _TOOLS,
    _Role,
)
from chainwatch.harness.simulate.clock import _MIN, _S
from chainwatch.harness.simulate.core import _SimCore
from chainwatch.harness.simulate.encoding import _arn_of, _dumps
from chainwatch.harness.simulate.state import _Cred, _Followup, _Task


class _Scenarios(_SimCore):
    """Inject a scenario's chain into a plan, and label the instance once its task has ended."""

    def _sensitive_read(self, role: _Role) -> tuple[str, dict[str, Any]]:
        if role.cred == "vault":
            return self._pick(
                (("get_secret", {"sensitive": True}), ("query_db", {"sensitive": True}))
            )
        return self._pick(
            (
                ("s3_get_object", {"sensitive": True}),
                ("get_aws_secret", {"sensitive": True}),
                ("query_db", {"sensitive": True}),
            )
        )

    def _inject(
        self, task: _Task, scenario: str, plan: list[tuple[str, dict[str, Any]]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Change a task's plan so that it contains the scenario's action chain."""
        role = task.agent.role
        plan = [(k, dict(o)) for k, o in plan]
        if scenario in (
            "read_write_delegate",
            "approval_retained_access",
            "sensitive_read_then_egress",
        ):
            # Keep the chain of interest from also writing to many systems by accident.
            plan = [s for s in plan if s[0] not in ("slack_post", "share_document")]
        if scenario == "sensitive_read_then_egress":
            egress = (
                ("send_email", {"external": True})
                if self._rand() < 0.5
                else ("http_post", {"external": True})
            )
            pos = self._ri(0, len(plan))
            plan[pos:pos] = [self._sensitive_read(role), egress]
        elif scenario == "read_write_delegate":
            read = self._sensitive_read(role) if self._rand() < 0.5 else ("read_file", {})
            write = self._pick(
                (("write_file", {}), ("update_record", {}), ("filesystem.write_file", {}))
            )
            delegate = (
                self._pick(("spawn_subagent", "delegate_task")),
                {"goal": "act on the written result"},
            )
            plan = [s for s in plan if _TOOLS[s[0]].effect != "delegate"]
            plan += [read, write, delegate]
        elif scenario == "cross_system_writes":
            writes = [
                ("write_file", {}),
                ("update_record", {"system": "salesforce"}),
                ("jira.create_issue", {}),
                ("github.create_pull_request", {}),
                ("http_post", {}),
                ("notion.create_page", {}),
                ("create_ticket", {}),
            ]
            writes.append(("put_secret", {}) if role.cred == "vault" else ("s3_put_object", {}))
            self.rng.shuffle(writes)
            plan += writes[: self._ri(3, 5)]
        elif scenario == "connector_sprawl":
            servers = list(_MCP_SERVERS)
            self.rng.shuffle(servers)
            for server in servers[: self._ri(5, 8)]:
                plan.insert(self._ri(0, len(plan)), (_MCP_READ_TOOL[server], {}))
        elif scenario == "approval_retained_access":
            first = ("query_db", {"approval": True})
            after = [("update_record", {}), self._sensitive_read(role), ("query_db", {})]
            plan += [first, *after[: self._ri(2, 3)]]
        return plan

    def _after(self, task: _Task, scenario: str, end: int) -> None:
        """Label the instance and emit what happens after the task: misuse, follow-up tasks."""
        cred = task.cred
        agent = task.agent
        if scenario == "credential_outlived_task":
            note = "not revoked at task end; TTL of hours"
            if cred is not None and self._rand() < 0.7:
                delay = self._ri(20, 240) * _MIN
                self._misuse(cred, end, delay, self._ri(1, 4), agent.ips, agent.user_agent)
                note += "; used again after the task ended"
            self._label(scenario, task, cred, note)
        elif scenario == "credential_reused_by_other_task":
            assert cred is not None
            start = min(end + self._ri(10, 180) * _MIN, self._last_followup)
            self._schedule(max(start, end + _MIN), _Followup(agent, cred, "reuse"))
            self._label(
                scenario, task, cred, "a later task of the same agent reuses this credential"
            )
        elif scenario == "credential_shared_across_agents":
            assert cred is not None
            others = [a for a in self.agents if a is not agent and a.role.cred == cred.ns]
            other = self._pick(others or [a for a in self.agents if a is not agent])
            # May overlap the task itself: both agents hold the credential at once.
            start = min(task.start + self._ri(2, 120) * _MIN, self._last_followup)
            self._schedule(max(start, task.start + _MIN), _Followup(other, cred, "share"))
            self._label(scenario, task, cred, f"also used by {other.agent_id}")
        elif scenario == "leaked_credential_new_ip":
            assert cred is not None
            ip = self._pick(_LEAK_NETS) + str(self._ri(2, 254))
            delay, ua = self._ri(10, 360) * _MIN, _dumps(self._pick(_LEAK_UAS))
            self._misuse(cred, end, delay, self._ri(2, 6), (ip,), ua, leaked=True)
            self._label(scenario, task, cred, f"used from {ip} after the task ended")
        elif scenario == "approval_retained_access":
            self._label(
                scenario,
                task,
                cred,
                "actions after approval expiry and outside scope; credential kept",
            )
        else:
            notes = {
                "sensitive_read_then_egress": "sensitive read followed by external send",
                "read_write_delegate": "read, then write, then delegation",
                "cross_system_writes": "writes to 3 or more systems",
                "connector_sprawl": "5 or more MCP servers in one task",
            }
            self._label(scenario, task, None, notes[scenario])

    def _misuse(
        self,
        cred: _Cred,
        after: int,
        delay: int,
        n: int,
        ips: tuple[str, ...],
        user_agent: str,
        leaked: bool = False,
    ) -> None:
        """n uses of a kept credential, outside any task (no spans), starting delay after `after`.

        By its owner or by an attacker. They fall before the credential expires and the run ends,
        squeezed closer to `after` when needed; the first one always happens.
        """
        limit = min(cred.expires, self.run_end) - _MIN
        t = after + delay
        if t >= limit:
            t = after + max(_S, (limit - after) // 2)
        for i in range(n):
            if t >= limit and i:
                break
            ip = self._pick(ips)
            if cred.ns == "vault":
                self._vault_misuse(cred, t, ip, i if leaked else -1)
            else:
                self._aws_misuse(cred, t, ip, user_agent, i if leaked else -1)
            t += min(self._ri(5, 900) * _S, max(_S, (limit - t) // n))

    def _vault_misuse(self, cred: _Cred, t: int, ip: str, step: int) -> None:
        """One out-of-task Vault request; step >= 0 is an attacker's step-th move."""
        if step == 0:  # what is this token allowed to do?
            self._vault(
                t,
                cred,
                ip,
                "read",
                "auth/token/lookup-self",
                response={"data": {"id": cred.source_id, "policies": ["default"]}},
            )
            return
        if step == 1:
            self._vault(t, cred, ip, "list", "secret/metadata/", denied=True)
            return
        roles = cred.owner.role.secrets or ("secret/data/shared/config",)
        path = _SENSITIVE["vault_secret"] if step > 0 else self._pick(roles)
        self._vault(
            t, cred, ip, "read", path, response={"data": {"data": {"api_key": self._hmac(path)}}}
        )

    def _aws_misuse(self, cred: _Cred, t: int, ip: str, ua: str, step: int) -> None:
        """One out-of-task AWS call; step >= 0 is an attacker's step-th move."""
        ident = cred.identity_json
        if step == 0:
            self._ct(
                t,
                ident,
                "sts.amazonaws.com",
                "GetCallerIdentity",
                None,
                None,
                ip,
                ua,
                management=True,
            )
            return
        if step == 1:
            message = (
                f"User: {_arn_of(ident)} is not authorized to perform: iam:ListUsers on resource: "
                f"arn:aws:iam::{self.account}:user/ because no identity-based policy allows the action"
            )
            self._ct(
                t,
                ident,
                "iam.amazonaws.com",
                "ListUsers",
                None,
                None,
                ip,
                ua,
                management=True,
                error=("AccessDenied", message),
            )
            return
        if step > 0:
            bucket, key = _SENSITIVE["bucket"], f"exports/customers-2026-{self._ri(1, 10):02d}.csv"
        else:
            bucket = self._pick(cred.owner.role.buckets or ("acme-analytics-lake",))
            key = f"daily/part-{self._ri(0, 9999):05d}.parquet"
        params = {"bucketName": bucket, "Host": f"{bucket}.s3.us-east-1.amazonaws.com", "key": key}
        resources = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"}]
        self._ct(
            t, ident, "s3.amazonaws.com", "GetObject", params, None, ip, ua, resources=resources
        )
