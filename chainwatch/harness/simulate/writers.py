"""Writers, one per output format: Vault audit entries, CloudTrail records, native task events,
OTLP tool spans and task traces, and the labels of scenario instances."""

from __future__ import annotations

from typing import Any

from chainwatch.harness.simulate.catalog import _DENIED_VAULT, _Tool
from chainwatch.harness.simulate.core import _SimCore
from chainwatch.harness.simulate.encoding import _dumps, _intval_json, _kvlist, _nanos, _sattr
from chainwatch.harness.simulate.sinks import _CLOUDTRAIL, _NATIVE, _OTLP, _VAULT
from chainwatch.harness.simulate.state import _Cred, _Task


class _Writers(_SimCore):
    """Render one record of a format and push it to the sinks, counting it."""

    def _vault(
        self,
        t: int,
        cred: _Cred | None,
        ip: str,
        operation: str,
        path: str,
        data: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        denied: bool = False,
    ) -> int:
        """One Vault request and its response; returns the response time."""
        mount_type, mount_point = _vault_mount(path)
        data_json = f',"data":{_dumps(data)}' if data else ""
        req_json = (
            f'{{"id":"{self._uuid()}","operation":"{operation}","mount_type":"{mount_type}",'
            f'"mount_point":"{mount_point}","client_token":"{cred.source_id if cred else ""}",'
            f'"client_token_accessor":"{cred.accessor if cred else ""}",'
            f'"namespace":{{"id":"root"}},"path":"{path}"{data_json},'
            f'"remote_address":"{ip}","remote_port":{self._ri(32768, 60999)}}}'
        )
        auth = cred.auth_json if cred else '{"token_type":"default"}'
        clock = self.clock
        err = ',"error":"permission denied"' if denied else ""
        self.sinks.push(
            _VAULT,
            t,
            f'{{"time":"{clock.iso(t)}","type":"request","auth":{auth},"request":{req_json}{err}}}',
        )
        t2 = t + self._ri(300, 25000)
        if denied:
            tail = f',"error":{_dumps(_DENIED_VAULT)}'
        else:
            body = f'{{"mount_type":"{mount_type}","mount_point":"{mount_point}"'
            body += "," + _dumps(response)[1:] if response else "}"
            tail = f',"response":{body}'
        self.sinks.push(
            _VAULT,
            t2,
            f'{{"time":"{clock.iso(t2)}","type":"response","auth":{auth},"request":{req_json}{tail}}}',
        )
        self.vault_requests += 1
        self.vault_entries += 2
        return t2

    def _ct(
        self,
        t: int,
        identity: str,
        source: str,
        name: str,
        params: dict[str, Any] | None,
        response: dict[str, Any] | None,
        ip: str,
        user_agent: str,
        *,
        region: str = "us-east-1",
        read_only: bool = True,
        management: bool = False,
        resources: list[dict[str, str]] | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """One CloudTrail record, assembled from pre-serialised parts."""
        err = f',"errorCode":"{error[0]}","errorMessage":{_dumps(error[1])}' if error else ""
        if source == "s3.amazonaws.com":
            request_id = self._upper(16)
        else:
            request_id = self._uuid()
        res = f',"resources":{_dumps(resources)}' if resources else ""
        line = (
            f'{{"eventVersion":"{"1.09" if management else "1.10"}","userIdentity":{identity},'
            f'"eventTime":"{self.clock.iso(t, 0)}","eventSource":"{source}","eventName":"{name}",'
            f'"awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":{user_agent}{err},'
            f'"requestParameters":{_dumps(params)},"responseElements":{_dumps(response)},'
            f'"requestID":"{request_id}","eventID":"{self._uuid()}",'
            f'"readOnly":{"true" if read_only else "false"}{res},"eventType":"AwsApiCall",'
            f'"managementEvent":{"true" if management else "false"},'
            f'"recipientAccountId":"{self.account}",'
            f'"eventCategory":"{"Management" if management else "Data"}"}}'
        )
        self.sinks.push(_CLOUDTRAIL, t, line)
        self.cloudtrail_records += 1

    def _native(self, t: int, event: str, task: _Task, **extra: Any) -> None:
        rec = {
            "record_type": "task",
            "event_id": self._uuid(),
            "ts": self.clock.iso(t, 3),
            "event": event,
            "task_id": task.task_id,
            "agent_id": task.agent.agent_id,
        }
        rec.update(extra)
        self.sinks.push(_NATIVE, t, _dumps(rec))
        self.task_events += 1

    def _label(self, scenario: str, task: _Task, cred: _Cred | None, note: str) -> None:
        self.scenarios[scenario] = self.scenarios.get(scenario, 0) + 1
        if self.labels is None:
            return
        rec = {
            "scenario": scenario,
            "task_id": task.task_id,
            "agent_id": task.agent.agent_id,
            "credential_source_id": cred.source_id if cred else None,
            "credential_namespace": cred.ns if cred else None,
            "note": note,
        }
        self.labels.write(_dumps(rec) + "\n")

    def _span(
        self,
        task: _Task,
        tool: _Tool,
        start: int,
        end: int,
        args: dict[str, Any],
        error: str | None,
        status_msg: str,
        retry: int = 0,
    ) -> None:
        attrs = [tool.attrs_json, _sattr("gen_ai.tool.call.id", "call_" + self._b62(24))]
        if self._rand() < 0.15:
            value = '{"kvlistValue":' + _dumps(_kvlist(args)) + "}"
        else:
            value = '{"stringValue":' + _dumps(_dumps(args)) + "}"
        attrs.append('{"key":"gen_ai.tool.call.arguments","value":' + value + "}")
        if tool.server:
            session = task.mcp_sessions.get(tool.server)
            if session is None:
                session = task.mcp_sessions[tool.server] = self._hex(32)
            attrs.append(_sattr("mcp.session.id", session))
            rpc_id = _intval_json(self._ri(2, 400), self._rand() < 0.3)
            attrs.append('{"key":"jsonrpc.request.id","value":' + rpc_id + "}")
        if task.tag_spans:
            attrs.append(_sattr("gen_ai.agent.id", task.agent.agent_id))
            attrs.append(_sattr("chainwatch.task.id", task.task_id))
        if retry:
            attempt = _intval_json(retry, self._rand() < 0.3)
            attrs.append('{"key":"chainwatch.retry","value":{"boolValue":true}}')
            attrs.append('{"key":"chainwatch.retry.attempt","value":' + attempt + "}")
        if error:
            attrs.append(_sattr("error.type", error))
            status = f',"status":{{"code":2,"message":{_dumps(status_msg)}}}'
        else:
            status = ',"status":{"code":1}' if self._rand() < 0.3 else ""
        kind = 3 if tool.server or tool.effect == "egress" else 1
        task.spans.append(
            f'{{"traceId":"{task.trace_id}","spanId":"{self._hex(16)}",'
            f'"parentSpanId":"{task.root_id}","name":"execute_tool {tool.name}","kind":{kind},'
            f'"startTimeUnixNano":{_nanos(start, self._rand() < 0.04)},'
            f'"endTimeUnixNano":{_nanos(end, self._rand() < 0.04)},'
            f'"attributes":[{",".join(attrs)}]{status}}}'
        )
        self.tool_actions += 1

    def _push_trace(self, task: _Task, end: int, status: str) -> None:
        """The task's OTLP export: one document holding the root span and its tool spans."""
        agent = task.agent
        numeric = self._rand() < 0.15  # this exporter writes intValue as JSON numbers
        tokens_in = _intval_json(self._ri(800, 60000), numeric)
        tokens_out = _intval_json(self._ri(100, 6000), numeric)
        attrs = [
            agent.root_attrs_json,
            _sattr("gen_ai.conversation.id", "conv_" + self._hex(20)),
            _sattr("chainwatch.task.id", task.task_id),
            f'{{"key":"gen_ai.request.temperature","value":{{"doubleValue":{self._pick((0.0, 0.2, 0.7))}}}}}',
            f'{{"key":"gen_ai.usage.input_tokens","value":{tokens_in}}}',
            f'{{"key":"gen_ai.usage.output_tokens","value":{tokens_out}}}',
            f'{{"key":"chainwatch.task.interactive","value":{{"boolValue":{_dumps(self._rand() < 0.2)}}}}}',
        ]
        if status != "completed":
            attrs.append(_sattr("error.type", task.error_type or status))
            status_json = f'{{"code":2,"message":"task {status}"}}'
        else:
            status_json = '{"code":1}'
        root = (
            f'{{"traceId":"{task.trace_id}","spanId":"{task.root_id}",'
            f'"name":"invoke_agent {agent.name}","kind":1,'
            f'"startTimeUnixNano":{_nanos(task.start, self._rand() < 0.04)},'
            f'"endTimeUnixNano":{_nanos(end, self._rand() < 0.04)},'
            f'"attributes":[{",".join(attrs)}],"status":{status_json}}}'
        )
        spans = ",".join([root, *task.spans])
        doc = (
            f'{{"resourceSpans":[{{"resource":{agent.resource_json},"scopeSpans":[{{"scope":'
            f'{{"name":"chainwatch-sim","version":"1"}},"spans":[{spans}]}}]}}]}}'
        )
        self.sinks.push(_OTLP, task.start, doc)


def _vault_mount(path: str) -> tuple[str, str]:
    if path.startswith("secret/"):
        return "kv", "secret/"
    if path.startswith("database/"):
        return "database", "database/"
    if path.startswith("auth/token/"):
        return "token", "auth/token/"
    if path.startswith("auth/approle/"):
        return "approle", "auth/approle/"
    if path.startswith("sys/"):
        return "system", "sys/"
    return "kv", path.split("/", 1)[0] + "/"
