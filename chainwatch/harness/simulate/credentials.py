"""Credential issuance per source: Vault AppRole logins and token renewal, STS AssumeRole
sessions, and the legacy IAM keys some AWS agents still use."""

from __future__ import annotations

import base64
from typing import Any

from chainwatch.harness.simulate.clock import _MIN, _S
from chainwatch.harness.simulate.core import _SimCore
from chainwatch.harness.simulate.encoding import _arn_of, _dumps
from chainwatch.harness.simulate.state import _Cred, _Task


class _Credentials(_SimCore):
    """A task's JIT credential: issued at its start, refreshed when a long task outlives it."""

    def _vault_login(self, task: _Task, t: int, ttl_s: int) -> _Cred:
        agent = task.agent
        raw_token = "hvs." + self._b62(24)  # never written: only its HMAC is
        token = self._hmac(raw_token)
        accessor = self._hmac(self._b62(24))
        policies = list(agent.role.policies)
        metadata = {
            "agent_id": agent.agent_id,
            "role_name": agent.role.name,
            "task_id": task.task_id,
        }
        issue_time = self.clock.iso(t, 0)
        new_auth = {
            "client_token": token,
            "accessor": accessor,
            "display_name": "approle",
            "policies": policies,
            "token_policies": policies,
            "metadata": metadata,
            "entity_id": agent.entity_id,
            "token_type": "service",
            "token_ttl": ttl_s,
            "token_issue_time": issue_time,
        }
        t2 = self._vault(
            t,
            None,
            agent.ips[0],
            "update",
            "auth/approle/login",
            data={
                "role_id": self._approle_ids[agent.role.name],
                "secret_id": self._hmac(self._hex(36)),
            },
            response={"auth": new_auth},
        )
        auth_json = _dumps(new_auth)  # later requests carry the same block
        cred = _Cred("vault", token, agent, task.task_id, t, t + ttl_s * _S, accessor, auth_json)
        task.now = t2
        return cred

    def _assume_role(self, task: _Task, t: int, duration_s: int) -> _Cred:
        """An STS session for the task, assumed by the agent runtime (rarely denied at first)."""
        agent = task.agent
        role = f"agent-{agent.role.name}"
        session = f"{agent.agent_id}@{task.task_id}"
        role_arn = f"arn:aws:iam::{self.account}:role/{role}"
        params: dict[str, Any] = {
            "roleArn": role_arn,
            "roleSessionName": session,
            "durationSeconds": duration_s,
        }
        if self._rand() < 0.2:
            params["tags"] = [{"key": "chainwatch:task-id", "value": task.task_id}]
        caller = self._runtime_identity(agent, t)
        ip, ua = self._pick(agent.ips), agent.user_agent
        self._assumed += 1
        # A transient denial (the runtime retries a moment later): rare, but in every run.
        if self._rand() < 0.008 or (self._assumed == 12 and not self._assume_denied):
            self._assume_denied += 1
            denial = (
                "AccessDenied",
                f"User: {_arn_of(caller)} is not authorized to perform: "
                f"sts:AssumeRole on resource: {role_arn}",
            )
            self._assume_role_call(t, caller, params, ip, ua, role_arn, None, error=denial)
            t += self._ri(1, 4) * _S
        key = "ASIA" + self._upper(16)
        expires = t + duration_s * _S
        assumed_arn = f"arn:aws:sts::{self.account}:assumed-role/{role}/{session}"
        role_id = self._role_ids[agent.role.name]
        response = {
            "credentials": {
                "accessKeyId": key,
                "sessionToken": self._session_token(),
                "expiration": self.clock.aws_human(expires, comma=self._rand() < 0.5),
            },
            "assumedRoleUser": {"assumedRoleId": f"{role_id}:{session}", "arn": assumed_arn},
        }
        self._assume_role_call(t, caller, params, ip, ua, role_arn, response)
        identity = self._session_identity(role, role_id, session, key, t)
        cred = _Cred("aws", key, agent, task.task_id, t, expires, identity_json=identity)
        task.now = t + self._ri(50, 400) * 1000
        return cred

    def _assume_role_call(
        self,
        t: int,
        caller: str,
        params: dict[str, Any],
        ip: str,
        user_agent: str,
        role_arn: str,
        response: dict[str, Any] | None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """The CloudTrail record of one AssumeRole call."""
        self._ct(
            t,
            caller,
            "sts.amazonaws.com",
            "AssumeRole",
            params,
            response,
            ip,
            user_agent,
            management=True,
            resources=[{"accountId": self.account, "type": "AWS::IAM::Role", "ARN": role_arn}],
            error=error,
        )

    def _session_identity(self, role: str, role_id: str, session: str, key: str, t: int) -> str:
        """The userIdentity block of calls made with an assumed-role session, serialised."""
        return _dumps(
            {
                "type": "AssumedRole",
                "principalId": f"{role_id}:{session}",
                "arn": f"arn:aws:sts::{self.account}:assumed-role/{role}/{session}",
                "accountId": self.account,
                "accessKeyId": key,
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": role_id,
                        "arn": f"arn:aws:iam::{self.account}:role/{role}",
                        "accountId": self.account,
                        "userName": role,
                    },
                    "attributes": {
                        "creationDate": self.clock.iso(t, 0),
                        "mfaAuthenticated": "false",
                    },
                },
            }
        )

    def _session_token(self) -> str:
        # Shaped like a real STS session token: base64 of a protobuf-ish blob. Fake, not a secret.
        blob = self.rng.randbytes(self._ri(270, 330))
        return "IQoJb3JpZ2luX2Vj" + base64.b64encode(blob).decode()

    def _issue(self, task: _Task, ttl_s: int, long_lived: bool = False) -> _Cred:
        """The task's JIT credential, by role; long_lived for scenarios that keep it."""
        agent = task.agent
        t = task.now + self._ri(20, 900) * 1000
        if agent.role.cred == "vault":
            return self._vault_login(task, t, ttl_s)
        if (
            not long_lived
            and agent.legacy_key is not None
            and agent.legacy_key.issued < t < agent.legacy_until
            and self._rand() < 0.2
        ):
            return agent.legacy_key
        return self._assume_role(task, t, 43200 if long_lived else ttl_s)

    def _refresh(self, task: _Task) -> None:
        """Long tasks renew their Vault token or assume the role again before it expires."""
        cred = task.cred
        if cred is None or cred.task_id != task.task_id or task.now < cred.expires - 2 * _MIN:
            return
        ttl_s = (cred.expires - cred.issued) // _S
        if cred.ns == "vault":
            t2 = self._vault(
                task.now,
                cred,
                self._pick(task.agent.ips),
                "update",
                "auth/token/renew-self",
                response={
                    "auth": {
                        "client_token": cred.source_id,
                        "accessor": cred.accessor,
                        "token_ttl": ttl_s,
                        "renewable": True,
                    }
                },
            )
            cred.issued, cred.expires = task.now, task.now + ttl_s * _S
            task.now = t2
        else:
            task.cred = self._assume_role(task, task.now, ttl_s)
