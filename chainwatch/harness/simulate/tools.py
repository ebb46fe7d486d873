"""Tool calls: the span of each call and the Vault requests or AWS API calls it causes."""

from __future__ import annotations

from typing import Any

from chainwatch.harness.simulate.catalog import _AWS_TOOLS, _TOOLS
from chainwatch.harness.simulate.clock import _S
from chainwatch.harness.simulate.core import _SimCore
from chainwatch.harness.simulate.encoding import _arn_of
from chainwatch.harness.simulate.state import _Cred, _Task

_REGION = "us-east-1"  # of every AWS call the agents make
_S3_EVENTS = {
    "s3_get_object": "GetObject",
    "s3_list_objects": "ListObjects",
    "s3_put_object": "PutObject",
}


class _Tools(_SimCore):
    """One tool call end to end, with its retries."""

    def _tool(self, task: _Task, key: str, opts: dict[str, Any] | None = None) -> bool:
        """One tool call: its span, and the Vault / CloudTrail records it causes. True if it worked."""
        opts = opts or {}
        tool = _TOOLS[key]
        agent = task.agent
        self._refresh(task)
        gap = self._ri(2_000_000, 40_000_000)  # the model thinking between calls
        task.now += int(gap * task.slow) + opts.get("wait", 0)
        start = task.now
        lo, hi = tool.latency_ms
        end = start + self._ri(lo * 1000, hi * 1000)
        args = self._args(task, key, opts)
        error: str | None = None
        status_msg = ""
        cred = task.borrowed if opts.get("borrowed") else task.cred
        ip = self._pick(agent.ips)

        if (
            cred is not None
            and cred.ns == "vault"
            and key in ("get_secret", "put_secret", "query_db")
        ):
            request = self._vault_request_for(task, key, args, borrowed=bool(opts.get("borrowed")))
            if request is not None:
                op, path, data, response = request
                denied = self._rand() < 0.02
                self._vault(
                    start + self._ri(1, 5) * 1000,
                    cred,
                    ip,
                    op,
                    path,
                    data=data,
                    response=response,
                    denied=denied,
                )
                if denied:
                    error, status_msg = "PermissionDenied", "vault: permission denied"
                elif key == "query_db":
                    task.leases.append(response["secret"]["lease_id"])
        elif key in _AWS_TOOLS and cred is not None and cred.ns == "aws":
            error, status_msg = self._aws_call(
                cred, start + self._ri(5, 40) * 1000, key, args, ip, agent.user_agent
            )

        if opts.get("fail"):
            error, status_msg = "ToolExecutionError", "tool raised an exception"
        elif error is None and self._rand() < 0.02:
            error = self._pick(
                ("TimeoutError", "RateLimitError", "HTTPError", "ToolExecutionError")
            )
            status_msg = {
                "TimeoutError": "tool call timed out after 30s",
                "RateLimitError": "429 Too Many Requests",
                "HTTPError": "502 Bad Gateway",
                "ToolExecutionError": "tool raised an exception",
            }[error]
        self._span(task, tool, start, end, args, error, status_msg, retry=opts.get("retry", 0))
        task.now = end
        retryable = error and error != "PermissionDenied" and not opts.get("fail")
        if retryable and opts.get("retry", 0) < 2 and self._rand() < 0.7:
            retry_opts = dict(
                opts, args=args, retry=opts.get("retry", 0) + 1, wait=self._ri(1, 8) * _S
            )
            return self._tool(task, key, retry_opts)
        return error is None

    def _vault_request_for(
        self, task: _Task, key: str, args: dict[str, Any], borrowed: bool
    ) -> tuple[str, str, dict[str, Any] | None, dict[str, Any]] | None:
        """The Vault request a tool call makes: (operation, path, data, response), if any."""
        if key == "get_secret":
            path = args["path"]
            data = {
                "data": {"api_key": self._hmac(path)},
                "metadata": {"created_time": self._hmac(path + "/t"), "version": 3},
            }
            return "read", path, None, {"data": data}
        if key == "put_secret":
            body = {"data": {"checkpoint": self._hmac(self._hex(16))}}
            response = {
                "data": {"created_time": self._hmac(self._hex(8)), "version": self._ri(2, 90)}
            }
            return "update", args["path"], body, response
        db_role = (task.role or task.agent.role).db_creds
        if db_role is None or (task.leases and not borrowed):
            return None  # no dynamic creds, or the tool cached its lease for the rest of the task
        response = {
            "secret": {"lease_id": f"{db_role}/{self._b62(24)}"},
            "data": {"username": self._hmac(self._hex(8)), "password": self._hmac(self._hex(20))},
        }
        return "read", db_role, None, response

    def _aws_call(
        self, cred: _Cred, t: int, key: str, args: dict[str, Any], ip: str, ua: str
    ) -> tuple[str | None, str]:
        """The CloudTrail records one AWS tool call makes; (error type, message) if denied."""
        denied = self._rand() < 0.02
        if key.startswith("s3_"):
            return self._s3_call(cred, t, key, args, ip, ua, denied)
        return self._api_call(cred, t, key, args, ip, ua, denied)

    def _s3_call(
        self,
        cred: _Cred,
        t: int,
        key: str,
        args: dict[str, Any],
        ip: str,
        ua: str,
        denied: bool,
    ) -> tuple[str | None, str]:
        """An S3 data event (a HeadObject first, sometimes, before a GetObject)."""
        bucket = args["bucket"]
        host = f"{bucket}.s3.{_REGION}.amazonaws.com"
        name = _S3_EVENTS[key]
        if name == "ListObjects":
            params = {
                "bucketName": bucket,
                "Host": host,
                "list-type": "2",
                "prefix": args["prefix"],
            }
            resources = [{"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
        else:
            params = {"bucketName": bucket, "Host": host, "key": args["key"]}
            resources = [
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{args['key']}"},
                {
                    "accountId": self.account,
                    "type": "AWS::S3::Bucket",
                    "ARN": f"arn:aws:s3:::{bucket}",
                },
            ]
            if name == "GetObject" and self._rand() < 0.2:
                ident = cred.identity_json
                s3 = "s3.amazonaws.com"
                self._ct(t, ident, s3, "HeadObject", params, None, ip, ua, resources=resources)
                t += self._ri(5, 30) * 1000
        err = ("AccessDenied", "Access Denied") if denied else None
        self._ct(
            t,
            cred.identity_json,
            "s3.amazonaws.com",
            name,
            params,
            None,
            ip,
            ua,
            read_only=name != "PutObject",
            resources=resources,
            error=err,
        )
        return ("AccessDenied", "S3: Access Denied") if denied else (None, "")

    def _api_call(
        self,
        cred: _Cred,
        t: int,
        key: str,
        args: dict[str, Any],
        ip: str,
        ua: str,
        denied: bool,
    ) -> tuple[str | None, str]:
        """A DynamoDB, SQS or Secrets Manager call."""
        if key.startswith("dynamodb_"):
            name = "Query" if key == "dynamodb_query" else "PutItem"
            params = {"tableName": args["table"], "key": {"pk": args["key"]}}
            source, action = "dynamodb.amazonaws.com", f"dynamodb:{name}"
            resource = f"arn:aws:dynamodb:{_REGION}:{self.account}:table/{args['table']}"
        elif key == "sqs_send_message":
            name, params = "SendMessage", {"queueUrl": args["queue_url"]}
            source, action = "sqs.amazonaws.com", "sqs:SendMessage"
            resource = f"arn:aws:sqs:{_REGION}:{self.account}:deploy-events"
        else:
            name, params = "GetSecretValue", {"secretId": args["secret_id"]}
            source, action = "secretsmanager.amazonaws.com", "secretsmanager:GetSecretValue"
            resource = f"arn:aws:secretsmanager:{_REGION}:{self.account}:secret:{args['secret_id']}-{self._b62(6)}"
        err = None
        if denied:
            err = (
                "AccessDenied" if name == "SendMessage" else "AccessDeniedException",
                f"User: {_arn_of(cred.identity_json)} is not authorized to perform: {action} on resource: {resource} "
                "because no identity-based policy allows the action",
            )
        self._ct(
            t,
            cred.identity_json,
            source,
            name,
            params,
            None,
            ip,
            ua,
            read_only=name in ("Query", "GetSecretValue"),
            management=name == "GetSecretValue",
            error=err,
        )
        return (err[0], f"{name}: access denied") if err else (None, "")
