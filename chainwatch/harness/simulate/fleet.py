"""The fleet: agents by role, legacy IAM keys, and the AWS identities acting around them."""

from __future__ import annotations

from typing import Any

from chainwatch.harness.simulate.catalog import _AGENT_NAMES, _MODELS, _ROLES, _TOOLS
from chainwatch.harness.simulate.clock import _DAY, _HOUR, _MIN, _S
from chainwatch.harness.simulate.core import _SimCore
from chainwatch.harness.simulate.encoding import _dumps
from chainwatch.harness.simulate.state import _Agent, _Cred


class _Fleet(_SimCore):
    """Making and picking agents; the platform's IAM calls and the agent runtime's sessions."""

    def _make_agent(self, i: int) -> _Agent:
        # Roles are dealt round-robin first so small fleets still cover every role.
        role = (
            _ROLES[i - 1]
            if i <= len(_ROLES)
            else self.rng.choices(_ROLES, weights=[r.weight for r in _ROLES])[0]
        )
        subnet = 20 + _ROLES.index(role)
        ips = tuple(
            f"10.{subnet}.{self._ri(0, 255)}.{self._ri(2, 254)}" for _ in range(self._ri(1, 3))
        )
        py = self._pick(("3.11.9", "3.12.4"))
        boto = self._pick(("1.34.131", "1.35.24"))
        ua = (
            f"Boto3/{boto} md/Botocore#{boto} ua/2.0 os/linux#6.1.0 md/arch#x86_64 "
            f"lang/python#{py} md/pyimpl#CPython cfg/retry-mode#standard Botocore/{boto}"
        )
        servers = {t.server for s in role.steps for k in s.options if (t := _TOOLS[k]).server}
        return _Agent(
            agent_id=f"agent-{i:03d}",
            name=f"{role.name}-{_AGENT_NAMES[(i - 1) % len(_AGENT_NAMES)]}"
            + (f"-{i}" if i > len(_AGENT_NAMES) else ""),
            role=role,
            service=f"{role.name}-agent",
            version=f"1.{self._ri(0, 9)}.{self._ri(0, 20)}",
            ips=ips,
            user_agent=_dumps(ua),
            entity_id=self._uuid(),
            instance_id="i-0" + self._hex(16),
            mcp=tuple(sorted(servers)),
            model=self._pick(_MODELS),
        )

    def _pick_agent(self) -> _Agent:
        x = self._rand() * self._cum_weights[-1]
        lo, hi = 0, len(self._cum_weights) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._cum_weights[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        return self.agents[lo]

    def setup_legacy_keys(self, run_end: int) -> None:
        """A few agent IAM users with long-lived AKIA keys: created, used, some deleted."""
        aws_agents = [a for a in self.agents if a.role.cred == "aws"][:2]
        for n, agent in enumerate(aws_agents):
            agent.iam_user = f"svc-{agent.agent_id}"
            created = self.t0 + self._ri(1, 5) * _HOUR + self._ri(0, 3599) * _S
            key = "AKIA" + self._upper(16)
            identity = _dumps(
                {
                    "type": "IAMUser",
                    "principalId": "AIDA" + self._upper(17),
                    "arn": f"arn:aws:iam::{self.account}:user/{agent.iam_user}",
                    "accountId": self.account,
                    "accessKeyId": key,
                    "userName": agent.iam_user,
                }
            )
            agent.legacy_key = _Cred(
                "aws", key, agent, None, created, 2**62, identity_json=identity
            )
            agent.legacy_until = 2**62
            response = {
                "accessKey": {
                    "accessKeyId": key,
                    "createDate": self.clock.aws_human(created, comma=self._rand() < 0.5),
                    "status": "Active",
                    "userName": agent.iam_user,
                }
            }
            self._admin_call(created, "CreateAccessKey", {"userName": agent.iam_user}, response)
            if n == 0:  # the first key is rotated out near the end of the run; the second stays
                off = max(created + _HOUR, run_end - self._ri(3, 8) * _HOUR)
                agent.legacy_until = off
                params = {"userName": agent.iam_user, "accessKeyId": key}
                self._admin_call(off, "UpdateAccessKey", {**params, "status": "Inactive"}, None)
                self._admin_call(off + 20 * _MIN, "DeleteAccessKey", params, None)

    def _admin_call(
        self, t: int, name: str, params: dict[str, Any], response: dict[str, Any] | None
    ) -> None:
        """An IAM call by the platform administrator, from the console."""
        self._ct(
            t,
            self._admin_identity(),
            "iam.amazonaws.com",
            name,
            params,
            response,
            "198.51.100.77",
            '"console.amazonaws.com"',
            read_only=False,
            management=True,
        )

    def _admin_identity(self) -> str:
        return _dumps(
            {
                "type": "IAMUser",
                "principalId": "AIDAPLATFORMADMIN0001",
                "arn": f"arn:aws:iam::{self.account}:user/platform-admin",
                "accountId": self.account,
                "accessKeyId": "ASIAPLATFORMADMIN001",
                "userName": "platform-admin",
                "sessionContext": {
                    "attributes": {
                        "creationDate": "2026-01-05T08:00:00Z",
                        "mfaAuthenticated": "true",
                    }
                },
            }
        )

    def _runtime_identity(self, agent: _Agent, t: int) -> str:
        """The agent runtime's own instance-role session, rotated daily, which calls AssumeRole."""
        day = t // _DAY
        if agent.runtime_day != day:
            agent.runtime_day = day
            role = "agent-runtime"
            agent.runtime_identity = _dumps(
                {
                    "type": "AssumedRole",
                    "principalId": f"AROARUNTIME{agent.agent_id[-3:]}EXAMPLE:{agent.instance_id}",
                    "arn": f"arn:aws:sts::{self.account}:assumed-role/{role}/{agent.instance_id}",
                    "accountId": self.account,
                    "accessKeyId": "ASIA" + self._upper(16),
                    "sessionContext": {
                        "sessionIssuer": {
                            "type": "Role",
                            "principalId": f"AROARUNTIME{agent.agent_id[-3:]}EXAMPLE",
                            "arn": f"arn:aws:iam::{self.account}:role/{role}",
                            "accountId": self.account,
                            "userName": role,
                        },
                        "attributes": {
                            "creationDate": self.clock.iso(day * _DAY, 0),
                            "mfaAuthenticated": "false",
                        },
                    },
                }
            )
        return agent.runtime_identity
