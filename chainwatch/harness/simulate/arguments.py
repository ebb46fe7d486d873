"""Tool-call arguments: one small builder per tool (or per MCP server), chosen from a table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chainwatch.harness.simulate.catalog import (
    _EXFIL_URLS,
    _EXTERNAL_MAIL,
    _INTERNAL_DOMAIN,
    _SENSITIVE,
    _TOOLS,
    _Role,
)
from chainwatch.harness.simulate.core import _SimCore
from chainwatch.harness.simulate.state import _Task

_Args = dict[str, Any]


class _Arguments(_SimCore):
    """Arguments for one tool call; opts may force sensitive or external targets."""

    def _args(self, task: _Task, key: str, opts: dict[str, Any]) -> dict[str, Any]:
        """Arguments for one tool call: opts["args"] as given, else its builder's draw."""
        role = task.role or task.agent.role
        tool = _TOOLS[key]
        if "args" in opts:
            return opts["args"]
        build = _BY_KEY.get(key) or _BY_SERVER.get(tool.server or "") or _Arguments._default
        return build(self, role, key, opts)

    # ---- built-in function tools -----------------------------------------------------------

    def _web_search(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"query": self._pick(role.queries), "max_results": 10}

    def _retrieve_docs(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        return {"query": pick(role.queries), "index": f"kb-{role.name}", "top_k": ri(3, 8)}

    def _read_file(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        return {
            "path": f"/workspace/{role.name}/{pick(('notes', 'src', 'runbooks'))}/{ri(1, 400)}.md"
        }

    def _write_file(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        ri = self._ri
        return {
            "path": f"/workspace/{role.name}/out/report-{ri(1, 9999)}.md",
            "bytes": ri(200, 90000),
        }

    def _list_directory(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"path": f"/workspace/{role.name}"}

    def _query(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        table = (
            _SENSITIVE["table"]
            if opts.get("sensitive")
            else pick(opts.get("tables") or role.tables)
        )
        where = f" WHERE id = {ri(1000, 99999)}" if self._rand() < 0.6 else " LIMIT 500"
        # Text for the span's arguments; never executed.
        return {"database": role.db, "sql": f"SELECT * FROM {table}{where}"}  # noqa: S608

    def _update_record(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        system = opts.get("system", role.record_system)
        return {
            "system": system,
            "object": pick(("Account", "Invoice", "Case")),
            "record_id": f"{ri(10**7, 10**8)}",
            "fields": {"status": pick(("open", "reconciled", "closed"))},
        }

    def _create_ticket(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick = self._pick
        return {
            "queue": pick(("support", "billing", "platform")),
            "title": "Follow-up from agent",
            "priority": pick(("low", "normal", "high")),
        }

    def _send_email(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        if opts.get("external"):
            to = f"{self._chars('abcdefghijklmnopqrstuvwxyz', ri(5, 10))}@{pick(_EXTERNAL_MAIL)}"
        elif role.name == "sales-outreach":
            to = f"{pick(('jane', 'omar', 'li', 'maria'))}@{pick(('northwind', 'contoso', 'fabrikam'))}.example.com"
        else:
            to = f"{role.name.split('-')[0]}-team@{_INTERNAL_DOMAIN}"
        args: dict[str, Any] = {"to": [to], "subject": pick(("Summary", "Follow-up", "Report"))}
        if opts.get("external"):
            args["attachments"] = [f"{_SENSITIVE['table']}-export.csv"]
        return args

    def _slack_post(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"channel": self._pick(role.channels), "text_length": self._ri(40, 900)}

    def _http_get(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {
            "url": self._pick(
                (
                    f"https://status.internal.{_INTERNAL_DOMAIN}/api/health",
                    "https://api.github.com/repos/acme/platform/releases",
                    f"https://payments.internal.{_INTERNAL_DOMAIN}/v2/balance",
                )
            )
        }

    def _http_post(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        if opts.get("external"):
            url = pick(_EXFIL_URLS).format(id=self._hex(12))
            return {"url": url, "body_bytes": ri(20000, 900000), "content_type": "text/csv"}
        return {
            "url": f"https://deploy.internal.{_INTERNAL_DOMAIN}/api/v1/releases",
            "body_bytes": ri(100, 4000),
            "content_type": "application/json",
        }

    def _share_document(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {
            "doc_id": self._hex(12),
            "share_with": f"analytics@{_INTERNAL_DOMAIN}",
            "role": "reader",
        }

    def _spawn_subagent(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {
            "agent": self._pick(("test-runner", "summarizer", "researcher")),
            "goal": opts.get("goal", "subtask"),
        }

    def _delegate_task(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {
            "to_agent": f"agent-{self._ri(1, max(1, len(self.agents))):03d}",
            "task": opts.get("goal", "follow-up"),
        }

    def _get_secret(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        path = (
            _SENSITIVE["vault_secret"]
            if opts.get("sensitive")
            else opts.get("path") or self._pick(role.secrets or ("secret/data/shared/config",))
        )
        return {"path": path}

    def _put_secret(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"path": f"secret/data/{role.name}/state", "keys": ["checkpoint"]}

    def _calculator(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        ri = self._ri
        return {"expression": f"{ri(1, 9999)} * 1.{ri(1, 25):02d}"}

    def _translate_text(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"target_language": self._pick(("de", "fr", "ja")), "chars": self._ri(100, 3000)}

    def _default(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"query": _TOOLS[key].name.replace("_", " ")}

    # ---- AWS tools -------------------------------------------------------------------------

    def _s3(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        if key == "s3_put_object":
            bucket = role.write_bucket
        elif opts.get("sensitive"):
            bucket = _SENSITIVE["bucket"]
        else:
            bucket = opts.get("bucket") or pick(
                opts.get("buckets") or role.buckets or ("acme-analytics-lake",)
            )
        if key == "s3_list_objects":
            return {"bucket": bucket, "prefix": f"{pick(('events', 'exports', 'builds'))}/"}
        if bucket == _SENSITIVE["bucket"]:
            obj = f"exports/customers-2026-{ri(1, 10):02d}.csv"
        else:
            obj = f"{pick(('events', 'daily', 'builds'))}/part-{ri(0, 9999):05d}.parquet"
        return {"bucket": bucket, "key": obj}

    def _dynamodb_query(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {
            "table": self._pick(("feature-flags", "experiments")),
            "key": f"exp-{self._ri(1, 300)}",
        }

    def _dynamodb_put_item(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"table": "agent-state", "key": f"task-{self._ri(1, 10**6)}"}

    def _sqs_send_message(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {
            "queue_url": f"https://sqs.us-east-1.amazonaws.com/{self.account}/deploy-events",
            "message_bytes": self._ri(100, 3000),
        }

    def _get_aws_secret(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {
            "secret_id": _SENSITIVE["aws_secret"]
            if opts.get("sensitive")
            else self._pick(role.secrets or ("prod/shared/config",))
        }

    # ---- MCP servers -----------------------------------------------------------------------

    def _github(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        name = _TOOLS[key].name
        args: dict[str, Any] = {"owner": "acme", "repo": pick(("platform", "web", "billing"))}
        if name == "get_file_contents":
            args["path"] = pick(("src/api/handlers.py", "deploy/values.yaml", "README.md"))
        elif name == "search_code":
            args["q"] = pick(("retry_policy", "AWS_SECRET", "def handle_refund"))
        elif name == "create_pull_request":
            args |= {
                "title": "Automated fix",
                "head": f"agent/fix-{ri(1, 9999)}",
                "base": "main",
            }
        else:
            args["pull_number"] = ri(100, 4000)
            if name == "create_review_comment":
                args["body_chars"] = ri(40, 1200)
        return args

    def _issues(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick, ri = self._pick, self._ri
        name = _TOOLS[key].name
        args: dict[str, Any] = {"issue_key": f"{pick(('SUP', 'OPS', 'FIN'))}-{ri(100, 9999)}"}
        if name == "search_issues":
            args = {
                "jql": "project = SUP AND status = Open ORDER BY created DESC",
                "max_results": 20,
            }
        elif name in ("add_comment", "create_issue"):
            args["body_chars"] = ri(40, 2000)
        return args

    def _hubspot(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        if _TOOLS[key].name == "update_contact":
            return {
                "contact_id": str(self._ri(10**6, 10**7)),
                "properties": {"lifecyclestage": "lead"},
            }
        query = self._pick(("lifecycle:lead", "company:northwind", "owner:me"))
        return {"query": query, "limit": 25}

    def _pagerduty(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"incident_id": "P" + self._upper(6)}

    def _sentry(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"issue_id": str(self._ri(10**9, 10**10)), "organization": "acme"}

    def _confluence(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        pick = self._pick
        return {"cql": f'text ~ "{pick(role.queries)}"', "space": pick(("SUP", "ENG", "FIN"))}

    def _slack(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"channel": self._pick(role.channels), "limit": 50}

    def _gdrive(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"query": self._pick(role.queries), "page_size": 10}

    def _notion(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"parent_id": self._hex(32), "title": "Agent notes"}

    def _salesforce(self, role: _Role, key: str, opts: dict[str, Any]) -> _Args:
        return {"soql": "SELECT Id, Name FROM Account WHERE LastModifiedDate = TODAY"}


_Builder = Callable[[_Arguments, _Role, str, dict[str, Any]], _Args]

# Tool key -> its builder; checked before the MCP server table (filesystem, postgres are here).
_BY_KEY: dict[str, _Builder] = {
    "web_search": _Arguments._web_search,
    "retrieve_docs": _Arguments._retrieve_docs,
    "read_file": _Arguments._read_file,
    "filesystem.read_text_file": _Arguments._read_file,
    "write_file": _Arguments._write_file,
    "filesystem.write_file": _Arguments._write_file,
    "filesystem.list_directory": _Arguments._list_directory,
    "query_db": _Arguments._query,
    "postgres.query": _Arguments._query,
    "update_record": _Arguments._update_record,
    "create_ticket": _Arguments._create_ticket,
    "send_email": _Arguments._send_email,
    "slack_post": _Arguments._slack_post,
    "http_get": _Arguments._http_get,
    "http_post": _Arguments._http_post,
    "share_document": _Arguments._share_document,
    "spawn_subagent": _Arguments._spawn_subagent,
    "delegate_task": _Arguments._delegate_task,
    "get_secret": _Arguments._get_secret,
    "put_secret": _Arguments._put_secret,
    "s3_get_object": _Arguments._s3,
    "s3_list_objects": _Arguments._s3,
    "s3_put_object": _Arguments._s3,
    "dynamodb_query": _Arguments._dynamodb_query,
    "dynamodb_put_item": _Arguments._dynamodb_put_item,
    "sqs_send_message": _Arguments._sqs_send_message,
    "get_aws_secret": _Arguments._get_aws_secret,
    "calculator": _Arguments._calculator,
    "translate_text": _Arguments._translate_text,
}
# MCP server -> the builder of its tools.
_BY_SERVER: dict[str, _Builder] = {
    "github": _Arguments._github,
    "jira": _Arguments._issues,
    "linear": _Arguments._issues,
    "hubspot": _Arguments._hubspot,
    "pagerduty": _Arguments._pagerduty,
    "sentry": _Arguments._sentry,
    "confluence": _Arguments._confluence,
    "slack": _Arguments._slack,
    "gdrive": _Arguments._gdrive,
    "notion": _Arguments._notion,
    "salesforce": _Arguments._salesforce,
}
