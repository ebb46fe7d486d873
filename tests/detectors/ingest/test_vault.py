"""Vault audit ingest: request/response pairing, token issue / use / renew / revoke, leases,
HMAC'd identifiers, outcomes, rejects and classification.

Entries are written by hand in the file audit device's shape (FORMATS.md): a `request` and a
`response` entry per request sharing `request.id`; tokens and accessors HMAC'd as
`hmac-sha256:<hex>`; on a login response the top-level `auth` describes the new token.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from detectors.derive.tables import build_derived_tables
from detectors.rules.engine import HIT_COLUMNS, RULES_DIR, load_rule, run_rule
from tests.conftest import Ingester, counts

T0 = datetime(2024, 5, 1, 10, 0, 0)
RESPONSE_DELAY = timedelta(milliseconds=20)
REMOTE = "10.20.0.7"


def hm(label: str) -> str:
    """A Vault-style HMAC'd value (what the audit device writes instead of the secret)."""
    return "hmac-sha256:" + hashlib.sha256(label.encode()).hexdigest()


def vtime(at: datetime) -> str:
    """RFC 3339 with nanoseconds, as Vault writes it."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "417Z"


def token_auth(
    token: str,
    accessor: str,
    *,
    display_name: str = "approle",
    policies: tuple[str, ...] = ("default", "agent-read"),
    metadata: dict | None = None,
    ttl: int = 3600,
    issue_time: str = "2024-05-01T10:00:00Z",
) -> dict:
    return {
        "client_token": token,
        "accessor": accessor,
        "display_name": display_name,
        "policies": list(policies),
        "token_policies": list(policies),
        "metadata": metadata,
        "entity_id": "6f1e5a7c-93b2-4d0e-8f21-5c4b3a291807",
        "token_type": "service",
        "token_ttl": ttl,
        "token_issue_time": issue_time,
    }


def pair(
    rid: str,
    path: str,
    at: datetime,
    *,
    operation: str = "update",
    auth: dict | None = None,
    request_auth: dict | None = None,
    data: dict | None = None,
    mount_type: str | None = None,
    mount_point: str | None = None,
    response: dict | None = None,
    error: str | None = None,
) -> list[dict]:
    """The request and the response entry Vault writes for one request."""
    request = {
        "id": rid,
        "operation": operation,
        "mount_type": mount_type,
        "mount_point": mount_point,
        "client_token": (request_auth or auth or {}).get("client_token", ""),
        "namespace": {"id": "root"},
        "path": path,
        "remote_address": REMOTE,
        "remote_port": 51544,
    }
    if data is not None:
        request["data"] = data
    req_entry = {
        "time": vtime(at),
        "type": "request",
        "auth": request_auth or auth or {"token_type": "default"},
        "request": request,
    }
    resp_entry = {
        "time": vtime(at + RESPONSE_DELAY),
        "type": "response",
        "auth": auth or {"token_type": "default"},
        "request": request,
        "response": response or {"mount_type": mount_type},
    }
    if error is not None:
        req_entry["error"] = error
        resp_entry["error"] = error
    return [req_entry, resp_entry]


def login(rid: str, at: datetime, new_auth: dict, *, mount: str = "approle") -> list[dict]:
    """An AppRole (or other method) login: unauthenticated request, response naming the new token."""
    return pair(
        rid,
        f"auth/{mount}/login",
        at,
        auth=new_auth,
        request_auth={"token_type": "default"},
        data={"role_id": hm("role-id"), "secret_id": hm("secret-id")},
        mount_type=mount,
        mount_point=f"auth/{mount}/",
        response={"mount_type": mount, "auth": new_auth},
    )


def kv_read(
    rid: str, at: datetime, auth: dict, path: str = "secret/data/agents/db", **kw
) -> list[dict]:
    return pair(
        rid, path, at, operation="read", auth=auth, mount_type="kv", mount_point="secret/", **kw
    )


def at_response(at: datetime) -> datetime:
    return at + RESPONSE_DELAY


def actions(ingest: Ingester) -> dict[str, dict]:
    return {a["event_id"]: a for a in ingest.rows("SELECT * FROM agent_actions")}


def cred_events(ingest: Ingester, event_type: str, cred: str | None = None) -> list[dict]:
    sql = "SELECT * FROM credential_events WHERE event_type = ?"
    params = [event_type]
    if cred is not None:
        sql += " AND credential_id = ?"
        params.append(cred)
    return ingest.rows(sql + " ORDER BY ts, event_id", params)


AGENT_META = {"role_name": "agent-runner", "task_id": "task-77", "agent_id": "researcher"}
TOKEN = hm("token-researcher")
ACCESSOR = hm("accessor-researcher")
AGENT_AUTH = token_auth(
    TOKEN, ACCESSOR, metadata=AGENT_META, issue_time="2024-05-01T12:00:00+02:00"
)


# ---------------------------------------------------------------- request / response pairing


def test_request_and_response_make_one_action(ingest: Ingester):
    report = ingest.lines("audit.log", kv_read("r-1", T0, AGENT_AUTH))
    assert counts(report) == [(2, 1, 0, 1)]
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert act["event_id"] == "vault:r-1"
    assert act["outcome"] == "ok"  # the response was kept; the request alone would be 'unknown'
    assert act["ts"] == at_response(T0)  # nanoseconds cut to microseconds
    assert act["source_line"] == 2
    assert act["source_ip"] == REMOTE


def test_response_first_in_the_file(ingest: Ingester):
    request, response = kv_read("r-2", T0, AGENT_AUTH)
    report = ingest.lines("audit.log", [response, request])
    assert counts(report) == [(2, 1, 0, 1)]
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert (act["outcome"], act["source_line"]) == ("ok", 1)


def test_request_and_response_in_different_files_of_one_run(ingest: Ingester):
    request, response = kv_read("r-3", T0, AGENT_AUTH)
    first = ingest.tmp_path / "in" / "audit-1.log"
    second = ingest.tmp_path / "in" / "audit-2.log"
    first.parent.mkdir(parents=True, exist_ok=True)
    first.write_text(json.dumps(request) + "\n")
    second.write_text(json.dumps(response) + "\n")
    report = ingest.files(first, second)
    assert counts(report) == [(1, 0, 0, 1), (1, 1, 0, 0)]
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert (act["outcome"], act["source_file"]) == ("ok", str(second))


def test_response_in_a_later_run_replaces_the_request(ingest: Ingester):
    """Rotated logs: the request is the last line of one file, its response the first of the next."""
    request, response = login("r-4", T0, AGENT_AUTH)
    ingest.lines("audit-1.log", [request])
    ingest.lines("audit-2.log", [response])
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert act["outcome"] == "ok"
    assert len(cred_events(ingest, "issue", ingest.cred_id("vault", TOKEN))) == 1


# ---------------------------------------------------------------- tokens: issue, use


def test_login_issues_a_token(ingest: Ingester):
    report = ingest.lines("audit.log", login("r-login", T0, AGENT_AUTH))
    assert counts(report) == [(2, 1, 0, 1)]
    cred = ingest.cred_id("vault", TOKEN)
    [issue] = cred_events(ingest, "issue", cred)
    assert issue["credential_kind"] == "vault_token"
    assert issue["event_id"] == "vault:r-login"
    assert issue["ttl_s"] == 3600
    assert issue["issued_at"] == datetime(2024, 5, 1, 10, 0, 0)  # 12:00+02:00 in UTC
    assert issue["expires_at"] == datetime(2024, 5, 1, 11, 0, 0)
    assert issue["scopes"] == ["default", "agent-read"]
    assert issue["principal"] == "approle"
    assert (issue["task_id"], issue["agent_id"], issue["task_source"]) == (
        "task-77",
        "researcher",
        "vault_metadata",
    )
    assert issue["source_ip"] == REMOTE
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert (act["tool"], act["system"], act["action_class"], act["classified_by"]) == (
        "vault.login",
        "vault:auth/approle",
        "credential",
        "source",
    )
    assert ingest.one("SELECT count(*) FROM credential_aliases") == 1
    assert ingest.one("SELECT credential_id FROM credential_aliases") == cred
    # A login is not minted from another token, and is not a use of the token it mints (the
    # response's top-level auth describes the new token).
    assert issue["parent_credential_id"] is None
    assert cred_events(ingest, "use") == []


@pytest.mark.parametrize(
    ("overrides", "task"),
    [
        ({}, "task-default"),
        ({"vault_task_keys": ("job",)}, "task-88"),
        ({"vault_task_keys": ("nope",)}, None),
    ],
)
def test_vault_task_keys_setting(ingest: Ingester, overrides, task):
    meta = {"role_name": "etl", "job": "task-88", "task_id": "task-default", "agent_id": "etl-bot"}
    new_auth = token_auth(hm("token-etl"), hm("accessor-etl"), metadata=meta)
    ingest.lines("audit.log", login("r-etl", T0, new_auth), **overrides)
    [issue] = cred_events(ingest, "issue", ingest.cred_id("vault", hm("token-etl")))
    assert issue["task_id"] == task
    assert issue["task_source"] == ("vault_metadata" if task else None)
    assert issue["agent_id"] == "etl-bot"


def test_token_create_names_its_parent(ingest: Ingester):
    parent_token, child_token = hm("token-orchestrator"), hm("token-child")
    parent = token_auth(
        parent_token,
        hm("accessor-orchestrator"),
        display_name="approle-orchestrator",
        policies=("default", "orchestrator"),
        metadata={"role_name": "orchestrator"},
    )
    child = token_auth(
        child_token,
        hm("accessor-child"),
        display_name="token-summarizer",
        policies=("default", "summarize"),
        metadata={"task_id": "task-9", "agent_id": "summarizer"},
        ttl=900,
        issue_time="2024-05-01T10:05:00Z",
    )
    at = T0 + timedelta(minutes=5)
    entries = pair(
        "r-create",
        "auth/token/create",
        at,
        auth=parent,
        data={"policies": ["summarize"], "ttl": "15m", "meta": {"task_id": "task-9"}},
        mount_type="token",
        mount_point="auth/token/",
        response={"mount_type": "token", "auth": child},
    )
    ingest.lines("audit.log", entries)
    child_id, parent_id = (
        ingest.cred_id("vault", child_token),
        ingest.cred_id("vault", parent_token),
    )
    [issue] = cred_events(ingest, "issue", child_id)
    assert issue["parent_credential_id"] == parent_id
    assert (issue["ttl_s"], issue["issued_at"], issue["expires_at"]) == (
        900,
        datetime(2024, 5, 1, 10, 5, 0),
        datetime(2024, 5, 1, 10, 20, 0),
    )
    assert issue["scopes"] == ["default", "summarize"]
    assert (issue["principal"], issue["task_id"], issue["agent_id"]) == (
        "token-summarizer",
        "task-9",
        "summarizer",
    )
    # the creation is a use of the parent, made with the parent
    [use] = cred_events(ingest, "use")
    assert use["credential_id"] == parent_id
    [act] = ingest.rows("SELECT * FROM agent_actions")
    assert (act["tool"], act["credential_id"], act["action_class"]) == (
        "vault.token.create",
        parent_id,
        "credential",
    )
    assert len(cred_events(ingest, "issue")) == 1  # the parent is not issued again


def test_every_request_with_a_token_is_a_use(ingest: Ingester):
    entries = [
        *kv_read("r-a", T0 + timedelta(minutes=1), AGENT_AUTH),
        *kv_read("r-b", T0 + timedelta(minutes=2), AGENT_AUTH, path="secret/data/agents/crm"),
        *pair(
            "r-c",
            "secret/data/agents/notes",
            T0 + timedelta(minutes=3),
            operation="create",
            auth=AGENT_AUTH,
            data={"note": hm("note-body")},
            mount_type="kv",
            mount_point="secret/",
        ),
        # a request without a token (health check style): an action, but no use
        *pair(
            "r-d",
            "sys/health",
            T0 + timedelta(minutes=4),
            operation="read",
            mount_type="system",
            mount_point="sys/",
        ),
    ]
    report = ingest.lines("audit.log", entries)
    assert counts(report) == [(8, 4, 0, 4)]
    cred = ingest.cred_id("vault", TOKEN)
    uses = cred_events(ingest, "use")
    assert [(u["event_id"], u["credential_id"]) for u in uses] == [
        ("vault:r-a", cred),
        ("vault:r-b", cred),
        ("vault:r-c", cred),
    ]
    assert {u["credential_kind"] for u in uses} == {"vault_token"}
    assert {u["outcome"] for u in uses} == {"ok"}
    assert {(u["task_id"], u["agent_id"]) for u in uses} == {("task-77", "researcher")}
    assert uses[0]["scopes"] == ["default", "agent-read"]
    acts = actions(ingest)
    assert {k: a["credential_id"] for k, a in acts.items()} == {
        "vault:r-a": cred,
        "vault:r-b": cred,
        "vault:r-c": cred,
        "vault:r-d": None,
    }
    assert acts["vault:r-c"]["action_class"] == "write"


def test_uses_link_to_the_login_task_through_the_token(ingest: Ingester):
    """A request whose auth carries no task metadata inherits the task of the token's issue."""
    bare = dict(AGENT_AUTH, metadata={"role_name": "agent-runner"})
    ingest.lines("audit-1.log", kv_read("r-late-use", T0 + timedelta(minutes=3), bare))
    assert actions(ingest)["vault:r-late-use"]["task_id"] is None
    ingest.lines("audit-2.log", login("r-early-login", T0, AGENT_AUTH))
    act = actions(ingest)["vault:r-late-use"]
    assert (act["task_id"], act["task_source"]) == ("task-77", "credential")


# ---------------------------------------------------------------- HMAC'd identifiers


def _token_scenario() -> tuple[list[dict], list[str], list[str]]:
    parent_token, child_token = hm("token-p"), hm("token-c")
    parent = token_auth(parent_token, hm("accessor-p"), metadata={"task_id": "task-1"})
    child = token_auth(child_token, hm("accessor-c"), metadata={"task_id": "task-1"})
    entries = [
        *login("h-1", T0, parent),
        *pair(
            "h-2",
            "auth/token/create",
            T0 + timedelta(minutes=1),
            auth=parent,
            mount_type="token",
            mount_point="auth/token/",
            response={"mount_type": "token", "auth": child},
        ),
        *kv_read("h-3", T0 + timedelta(minutes=2), child),
        *pair(
            "h-4",
            "auth/token/renew-self",
            T0 + timedelta(minutes=3),
            auth=child,
            mount_type="token",
            mount_point="auth/token/",
            response={"mount_type": "token", "auth": child},
        ),
        *pair(
            "h-5",
            "auth/token/revoke",
            T0 + timedelta(minutes=4),
            auth=parent,
            data={"token": child_token},
            mount_type="token",
            mount_point="auth/token/",
        ),
        *pair(
            "h-6",
            "auth/token/revoke-accessor",
            T0 + timedelta(minutes=5),
            auth=parent,
            data={"accessor": hm("accessor-p")},
            mount_type="token",
            mount_point="auth/token/",
        ),
    ]
    return entries, [parent_token, child_token], [hm("accessor-p"), hm("accessor-c")]


def test_hmac_tokens_are_key_hashed_and_never_stored(ingest: Ingester):
    entries, tokens, _ = _token_scenario()
    report = ingest.lines("audit.log", entries)
    assert counts(report) == [(12, 6, 0, 6)]
    text = ingest.stored_text()
    for token in tokens:
        assert token not in text
        assert ingest.cred_id("vault", token) in text


def test_hmac_accessors_are_never_stored(ingest: Ingester):
    entries, _, accessors = _token_scenario()
    ingest.lines("audit.log", entries)
    text = ingest.stored_text()
    for accessor in accessors:
        assert accessor not in text


# ---------------------------------------------------------------- renew and revoke


def test_renew_self_renews_and_does_not_issue(ingest: Ingester):
    renew_at = T0 + timedelta(minutes=50)
    renewed = dict(AGENT_AUTH, token_ttl=7200)
    entries = [
        *login("n-1", T0, AGENT_AUTH),
        *pair(
            "n-2",
            "auth/token/renew-self",
            renew_at,
            auth=AGENT_AUTH,
            data={"increment": "2h"},
            mount_type="token",
            mount_point="auth/token/",
            response={"mount_type": "token", "auth": renewed},
        ),
    ]
    ingest.lines("audit.log", entries)
    cred = ingest.cred_id("vault", TOKEN)
    assert len(cred_events(ingest, "issue", cred)) == 1
    [renew] = cred_events(ingest, "renew", cred)
    assert renew["event_id"] == "vault:n-2"
    assert renew["ttl_s"] == 7200
    assert renew["expires_at"] == at_response(renew_at) + timedelta(seconds=7200)
    assert renew["credential_kind"] == "vault_token"
    assert renew["task_id"] == "task-77"
    act = actions(ingest)["vault:n-2"]
    assert (act["tool"], act["action_class"]) == ("vault.renew", "credential")
    assert cred_events(ingest, "revoke") == []


def test_token_revocations(ingest: Ingester):
    tokens = {n: hm(f"token-{n}") for n in range(1, 6)}
    auths = {
        n: token_auth(tokens[n], hm(f"accessor-{n}"), metadata={"task_id": f"task-{n}"})
        for n in tokens
    }
    admin = token_auth(hm("token-admin"), hm("accessor-admin"), display_name="approle-admin")
    later = T0 + timedelta(hours=1)
    entries = [
        *[e for n in tokens for e in login(f"l-{n}", T0 + timedelta(seconds=n), auths[n])],
        *pair(
            "v-1",
            "auth/token/revoke-self",
            later,
            auth=auths[1],
            mount_type="token",
            mount_point="auth/token/",
        ),
        *pair(
            "v-2",
            "auth/token/revoke",
            later,
            auth=admin,
            data={"token": tokens[2]},
            mount_type="token",
            mount_point="auth/token/",
        ),
        *pair(
            "v-3",
            "auth/token/revoke-accessor",
            later,
            auth=admin,
            data={"accessor": hm("accessor-3")},
            mount_type="token",
            mount_point="auth/token/",
        ),
        # a refused revocation revokes nothing
        *pair(
            "v-4",
            "auth/token/revoke",
            later,
            auth=auths[5],
            data={"token": tokens[4]},
            mount_type="token",
            mount_point="auth/token/",
            error="1 error occurred:\n\t* permission denied\n\n",
        ),
        # an accessor nobody issued: no credential to name
        *pair(
            "v-5",
            "auth/token/revoke-accessor",
            later,
            auth=admin,
            data={"accessor": hm("accessor-unknown")},
            mount_type="token",
            mount_point="auth/token/",
        ),
    ]
    report = ingest.lines("audit.log", entries)
    assert counts(report) == [(20, 10, 0, 10)]
    revokes = cred_events(ingest, "revoke")
    assert sorted((r["event_id"], r["credential_id"]) for r in revokes) == sorted(
        [
            ("vault:v-1", ingest.cred_id("vault", tokens[1])),
            ("vault:v-2", ingest.cred_id("vault", tokens[2])),
            ("vault:v-3", ingest.cred_id("vault", tokens[3])),
        ]
    )
    assert {r["credential_kind"] for r in revokes} == {"vault_token"}
    # revocations inherit the task of the token they end
    assert sorted(r["task_id"] for r in revokes) == ["task-1", "task-2", "task-3"]
    acts = actions(ingest)
    assert {acts[f"vault:v-{n}"]["tool"] for n in range(1, 6)} == {"vault.revoke"}
    assert acts["vault:v-4"]["outcome"] == "denied"


def test_revoke_accessor_resolves_a_login_from_an_earlier_run(ingest: Ingester):
    ingest.lines("audit-1.log", login("e-1", T0, AGENT_AUTH))
    admin = token_auth(hm("token-admin"), hm("accessor-admin"), display_name="approle-admin")
    ingest.lines(
        "audit-2.log",
        pair(
            "e-2",
            "auth/token/revoke-accessor",
            T0 + timedelta(hours=2),
            auth=admin,
            data={"accessor": ACCESSOR},
            mount_type="token",
            mount_point="auth/token/",
        ),
    )
    [revoke] = cred_events(ingest, "revoke")
    assert revoke["credential_id"] == ingest.cred_id("vault", TOKEN)
    assert revoke["event_id"] == "vault:e-2"
    assert revoke["task_id"] == "task-77"


LEASES = {
    "ro1": "database/creds/readonly/2f6aQx1Zb3",
    "ro2": "database/creds/readonly/8KpLw0Tn4d",
    "ad1": "database/creds/admin/Zq81mN2vYc",
    "ad2": "database/creds/admin/Hs5tB7uR0e",
    "aws": "aws/creds/deploy/Lm3nO9pQ2r",
}


def _lease_entries() -> list[dict]:
    out = []
    for n, (name, lease) in enumerate(LEASES.items()):
        role = lease.rsplit("/", 1)[0]
        mount = role.split("/", 1)[0]
        out += pair(
            f"lease-{name}",
            role,
            T0 + timedelta(minutes=n),
            operation="read",
            auth=AGENT_AUTH,
            mount_type=mount,
            mount_point=f"{mount}/",
            response={
                "mount_type": mount,
                "secret": {"lease_id": lease},
                "data": {"username": hm(f"user-{name}"), "password": hm(f"pw-{name}")},
            },
        )
    return out


def _revoke_entries(admin: dict) -> list[dict]:
    later = T0 + timedelta(hours=1)
    return [
        *pair(
            "rv-path",
            f"sys/leases/revoke/{LEASES['ro1']}",
            later,
            auth=admin,
            mount_type="system",
            mount_point="sys/",
        ),
        *pair(
            "rv-data",
            "sys/leases/revoke",
            later,
            auth=admin,
            data={"lease_id": LEASES["aws"]},
            mount_type="system",
            mount_point="sys/",
        ),
        *pair(
            "rv-prefix",
            "sys/leases/revoke-prefix/database/creds/admin",
            later,
            auth=admin,
            mount_type="system",
            mount_point="sys/",
        ),
    ]


@pytest.mark.parametrize("separate_runs", [False, True])
def test_lease_revocations(ingest: Ingester, separate_runs):
    admin = token_auth(hm("token-admin"), hm("accessor-admin"), display_name="approle-admin")
    if separate_runs:
        ingest.lines("leases.log", _lease_entries())
        ingest.lines("revokes.log", _revoke_entries(admin))
    else:
        ingest.lines("audit.log", _lease_entries() + _revoke_entries(admin))
    lease_ids = {name: ingest.cred_id("vault", lease) for name, lease in LEASES.items()}
    assert len(cred_events(ingest, "issue")) == 5
    revokes = cred_events(ingest, "revoke")
    assert sorted((r["event_id"], r["credential_id"]) for r in revokes) == sorted(
        [
            ("vault:rv-path", lease_ids["ro1"]),
            ("vault:rv-data", lease_ids["aws"]),
            ("vault:rv-prefix", lease_ids["ad1"]),
            ("vault:rv-prefix", lease_ids["ad2"]),
        ]
    )
    assert {r["credential_kind"] for r in revokes} == {"vault_lease"}
    prefix_rows = [r for r in revokes if r["event_id"] == "vault:rv-prefix"]
    assert {r["principal"] for r in prefix_rows} == {"database/creds/admin"}
    # not revoked: the other readonly lease
    revoked = {r["credential_id"] for r in revokes}
    assert lease_ids["ro2"] not in revoked


def test_revoke_prefix_is_a_path_prefix(ingest: Ingester):
    """`database/creds/read` must not revoke leases of the role `database/creds/readonly`."""
    admin = token_auth(hm("token-admin"), hm("accessor-admin"), display_name="approle-admin")
    entries = _lease_entries() + pair(
        "rv-short",
        "sys/leases/revoke-prefix/database/creds/read",
        T0 + timedelta(hours=1),
        auth=admin,
        mount_type="system",
        mount_point="sys/",
    )
    ingest.lines("audit.log", entries)
    assert cred_events(ingest, "revoke") == []
    whole = pair(
        "rv-all",
        "sys/leases/revoke-prefix/database/",
        T0 + timedelta(hours=2),
        auth=admin,
        mount_type="system",
        mount_point="sys/",
    )
    ingest.lines("audit-2.log", whole)
    revoked = {r["credential_id"] for r in cred_events(ingest, "revoke")}
    assert revoked == {ingest.cred_id("vault", LEASES[n]) for n in ("ro1", "ro2", "ad1", "ad2")}


def test_dynamic_secret_lease_ttl_unknown_by_default(ingest: Ingester):
    ingest.lines("audit.log", _lease_entries()[:2])
    [issue] = cred_events(ingest, "issue")
    assert issue["credential_id"] == ingest.cred_id("vault", LEASES["ro1"])
    assert issue["credential_kind"] == "vault_lease"
    assert issue["principal"] == "database/creds/readonly"
    assert issue["scopes"] == ["database/creds/readonly"]
    assert issue["parent_credential_id"] == ingest.cred_id("vault", TOKEN)
    assert (issue["ttl_s"], issue["expires_at"]) == (None, None)
    assert issue["issued_at"] == at_response(T0)
    assert issue["task_id"] == "task-77"
    act = actions(ingest)["vault:lease-ro1"]
    assert (act["tool"], act["system"], act["action_class"], act["sensitivity"]) == (
        "vault.read",
        "vault:database",
        "read",
        "high",
    )


def test_dynamic_secret_lease_ttl_from_settings(ingest: Ingester):
    ingest.lines(
        "audit.log",
        _lease_entries(),
        vault_lease_ttls={"database/creds/": 900, "database/creds/admin/": 300},
    )
    issues = {i["credential_id"]: i for i in cred_events(ingest, "issue")}
    expected = {"ro1": 900, "ro2": 900, "ad1": 300, "ad2": 300, "aws": None}  # longest prefix wins
    for name, ttl in expected.items():
        issue = issues[ingest.cred_id("vault", LEASES[name])]
        assert issue["ttl_s"] == ttl, name
        assert issue["expires_at"] == (
            issue["issued_at"] + timedelta(seconds=ttl) if ttl else None
        ), name
    ro1 = issues[ingest.cred_id("vault", LEASES["ro1"])]
    assert ro1["expires_at"] == at_response(T0) + timedelta(seconds=900)


# ---------------------------------------------------------------- outcomes


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("1 error occurred:\n\t* permission denied\n\n", "denied"),
        ("permission denied", "denied"),
        (
            '1 error occurred:\n\t* no handler for route "nosuch/data/x". route entry not found.\n\n',
            "error",
        ),
    ],
)
def test_error_outcomes(ingest: Ingester, error, outcome):
    entries = kv_read("o-1", T0, AGENT_AUTH, error=error)
    assert counts(ingest.lines("audit.log", entries)) == [(2, 1, 0, 1)]
    act = actions(ingest)["vault:o-1"]
    assert (act["outcome"], act["error_type"]) == (outcome, error)
    [use] = cred_events(ingest, "use")
    assert use["outcome"] == outcome


def test_failed_login_issues_nothing(ingest: Ingester):
    entries = login("f-1", T0, AGENT_AUTH)
    entries[1].pop("auth")
    entries[1]["response"] = {
        "mount_type": "approle",
        "data": {"error": "invalid role or secret ID"},
    }
    entries[0]["error"] = entries[1]["error"] = "invalid role or secret ID"
    ingest.lines("audit.log", entries)
    assert cred_events(ingest, "issue") == []
    assert actions(ingest)["vault:f-1"]["outcome"] == "error"


# ---------------------------------------------------------------- rejects


def test_bad_entries_are_rejected_with_reasons(ingest: Ingester):
    good = kv_read("g-1", T0, AGENT_AUTH)
    base = good[1]
    unknown_type = dict(base, type="notification")
    no_id = dict(base, request={k: v for k, v in base["request"].items() if k != "id"})
    bad_time = dict(base, time="yesterday", request=dict(base["request"], id="g-3"))
    no_type = {k: v for k, v in base.items() if k != "type"} | {
        "request": dict(base["request"], id="g-4")
    }
    no_request = {k: v for k, v in base.items() if k != "request"}
    no_path = dict(
        base, request={k: v for k, v in dict(base["request"], id="g-5").items() if k != "path"}
    )
    entries = [
        *good,
        unknown_type,
        no_id,
        bad_time,
        no_type,
        no_request,
        no_path,
        [1, 2],
        "{truncated",
    ]
    report = ingest.lines("audit.log", entries)
    assert counts(report) == [(10, 1, 8, 1)]
    rows = ingest.rows("SELECT source_line, reason FROM rejected_events ORDER BY source_line")
    assert [(r["source_line"], r["reason"]) for r in rows] == [
        (3, "unknown Vault audit entry type: notification"),
        (4, "missing required field request.id"),
        (5, 'unparseable timestamp in time: "yesterday"'),
        (6, "missing required field type"),
        (7, "missing required field request"),
        (8, "missing required field request.path"),
        (9, "record is not a JSON object (got array)"),
        (10, "malformed JSON (invalid syntax or truncated line)"),
    ]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 1
    raw = ingest.rows("SELECT raw_text FROM rejected_events WHERE source_line = 3")[0]["raw_text"]
    assert TOKEN not in raw


# ---------------------------------------------------------------- classification


def test_tool_system_and_class(ingest: Ingester):
    admin = token_auth(hm("token-admin"), hm("accessor-admin"), display_name="approle-admin")
    entries = [
        *kv_read("c-kv", T0, AGENT_AUTH),
        *login("c-login", T0 + timedelta(seconds=1), AGENT_AUTH),
        *pair(
            "c-sys",
            "sys/policies/acl/agent-read",
            T0 + timedelta(seconds=2),
            auth=admin,
            data={"policy": hm("policy-body")},
            mount_type="system",
            mount_point="sys/",
        ),
        *pair(
            "c-list",
            "secret/metadata/agents",
            T0 + timedelta(seconds=3),
            operation="list",
            auth=AGENT_AUTH,
            mount_type="kv",
            mount_point="secret/",
        ),
        *pair(
            "c-del",
            "secret/data/agents/old",
            T0 + timedelta(seconds=4),
            operation="delete",
            auth=AGENT_AUTH,
            mount_type="kv",
            mount_point="secret/",
        ),
    ]
    ingest.lines("audit.log", entries)
    got = {
        k: (a["tool"], a["system"], a["action_class"], a["classified_by"], a["destination"])
        for k, a in actions(ingest).items()
    }
    assert got == {
        "vault:c-kv": ("vault.read", "vault:secret", "read", "catalog", "secret/data/agents/db"),
        "vault:c-login": (
            "vault.login",
            "vault:auth/approle",
            "credential",
            "source",
            "auth/approle/login",
        ),
        "vault:c-sys": (
            "vault.update",
            "vault:sys",
            "admin",
            "source",
            "sys/policies/acl/agent-read",
        ),
        "vault:c-list": ("vault.list", "vault:secret", "read", "source", "secret/metadata/agents"),
        "vault:c-del": (
            "vault.delete",
            "vault:secret",
            "delete",
            "source",
            "secret/data/agents/old",
        ),
    }
    acts = actions(ingest)
    assert acts["vault:c-kv"]["sensitivity"] == "high"
    assert (acts["vault:c-kv"]["agent_id"], acts["vault:c-kv"]["task_id"]) == (
        "researcher",
        "task-77",
    )
    assert acts["vault:c-sys"]["agent_id"] == "approle-admin"


# ---------------------------------------------------------------- lifetimes from any record


LONG_TOKEN = hm("token-long-lived")
ISSUED = datetime(2024, 3, 1, 10, 0, 0)
TTL_72H = 72 * 3600
LONG_META = {"role_name": "agent-runner", "task_id": "task-long", "agent_id": "lingerer"}
LONG_AUTH = token_auth(
    LONG_TOKEN,
    hm("accessor-long-lived"),
    display_name="approle-lingerer",
    policies=("default", "agent-read"),
    metadata=LONG_META,
    ttl=TTL_72H,
    issue_time="2024-03-01T10:00:00Z",
)


def lifecycle(ingest: Ingester, cred: str) -> dict:
    build_derived_tables(ingest.con)
    [row] = ingest.rows("SELECT * FROM credential_lifecycles WHERE credential_id = ?", [cred])
    return row


def test_first_use_states_the_token_lifetime(ingest: Ingester):
    """No login in the log: each use's auth block carries the token's issue time, TTL, policies,
    display name and metadata, and the first of them fills the lifecycle."""
    ingest.lines("audit.log", kv_read("s-1", ISSUED + timedelta(hours=1), LONG_AUTH))
    cred = ingest.cred_id("vault", LONG_TOKEN)
    [use] = cred_events(ingest, "use", cred)
    assert (use["issued_at"], use["ttl_s"], use["expires_at"]) == (
        ISSUED,
        TTL_72H,
        ISSUED + timedelta(hours=72),
    )
    assert (use["scopes"], use["principal"]) == (["default", "agent-read"], "approle-lingerer")
    life = lifecycle(ingest, cred)
    assert (life["issued_at"], life["ttl_s"], life["expires_at"]) == (
        ISSUED,
        TTL_72H,
        ISSUED + timedelta(hours=72),
    )
    assert (life["principal"], life["agent_id"], life["task_id"]) == (
        "approle-lingerer",
        "lingerer",
        "task-long",
    )
    assert life["scopes"] == ["default", "agent-read"]
    assert life["credential_kind"] == "vault_token"
    assert life["issue_seen"] is False  # the issue itself is still not in the warehouse


def test_principal_falls_back_to_the_entity(ingest: Ingester):
    auth = dict(LONG_AUTH, display_name=None)
    ingest.lines("audit.log", kv_read("s-e", ISSUED + timedelta(hours=1), auth))
    [use] = cred_events(ingest, "use")
    assert use["principal"] == LONG_AUTH["entity_id"]


def test_a_token_without_ttl_has_no_expiry(ingest: Ingester):
    """token_ttl 0 (root tokens): the token does not expire; it must not look expired at issue."""
    root = dict(LONG_AUTH, token_ttl=0, policies=["root"], token_policies=["root"])
    ingest.lines("audit.log", kv_read("s-root", ISSUED + timedelta(days=61), root))
    [use] = cred_events(ingest, "use")
    assert (use["ttl_s"], use["expires_at"]) == (0, None)
    assert lifecycle(ingest, use["credential_id"])["expires_at"] is None


def test_the_earliest_use_fills_the_lifecycle(ingest: Ingester):
    later = dict(LONG_AUTH, metadata={"task_id": "task-other", "agent_id": "other"})
    ingest.lines("audit-1.log", kv_read("s-late", ISSUED + timedelta(days=2), later))
    ingest.lines("audit-2.log", kv_read("s-early", ISSUED + timedelta(hours=1), LONG_AUTH))
    life = lifecycle(ingest, ingest.cred_id("vault", LONG_TOKEN))
    assert (life["agent_id"], life["task_id"]) == ("lingerer", "task-long")


def test_a_login_corrects_the_first_sighting(ingest: Ingester):
    """A later run brings the login: its values win over what the uses stated."""
    ingest.lines("audit-1.log", kv_read("s-use", ISSUED + timedelta(hours=1), LONG_AUTH))
    issued = dict(
        LONG_AUTH,
        display_name="approle-corrected",
        token_ttl=3600,
        policies=["default"],
        token_policies=["default"],
        metadata={"task_id": "task-login", "agent_id": "login-agent"},
    )
    ingest.lines("audit-2.log", login("s-login", ISSUED, issued))
    life = lifecycle(ingest, ingest.cred_id("vault", LONG_TOKEN))
    assert (life["issued_at"], life["ttl_s"], life["expires_at"]) == (
        ISSUED,
        3600,
        ISSUED + timedelta(hours=1),
    )
    assert (life["principal"], life["agent_id"], life["task_id"], life["scopes"]) == (
        "approle-corrected",
        "login-agent",
        "task-login",
        ["default"],
    )
    assert life["issue_seen"] is True


def test_token_used_61_days_past_its_72h_ttl_is_flagged(ingest: Ingester):
    """The issue-16 case, end to end: no login, no renewals in the log; the token's uses state a
    72 h TTL from 1 March, and it is still used on 1 May."""
    early = ISSUED + timedelta(hours=1)
    late = ISSUED + timedelta(days=61)
    entries = [*kv_read("x-early", early, LONG_AUTH), *kv_read("x-late", late, LONG_AUTH)]
    assert counts(ingest.lines("audit.log", entries)) == [(4, 2, 0, 2)]
    cred = ingest.cred_id("vault", LONG_TOKEN)
    life = lifecycle(ingest, cred)
    assert life["expires_at"] == ISSUED + timedelta(hours=72)
    assert (life["ended_by"], life["last_use"]) == ("expired", at_response(late))
    rule = load_rule(RULES_DIR / "credential_used_past_expiry.yaml")
    hits = [dict(zip(HIT_COLUMNS, row, strict=True)) for row in run_rule(ingest.con, rule)]
    assert [(h["credential_id"], h["evidence_event_ids"]) for h in hits] == [
        (cred, ["vault:x-late"])
    ]
    assert (hits[0]["agent_id"], hits[0]["task_id"]) == ("lingerer", "task-long")
    assert hits[0]["first_seen"] == at_response(late)


def test_token_used_within_its_72h_ttl_is_not_flagged(ingest: Ingester):
    entries = kv_read("w-1", ISSUED + timedelta(hours=71, minutes=59), LONG_AUTH)
    ingest.lines("audit.log", entries)
    build_derived_tables(ingest.con)
    rule = load_rule(RULES_DIR / "credential_used_past_expiry.yaml")
    assert run_rule(ingest.con, rule) == []


# ---------------------------------------------------------------- attribution of denied requests


def test_denied_request_naming_only_request_client_token_is_attributed(ingest: Ingester):
    """An invalid or unprivileged token: auth holds no client_token, request.client_token does."""
    entries = [
        *login("d-login", T0, AGENT_AUTH),
        *pair(
            "d-1",
            "secret/data/admin/root-creds",
            T0 + timedelta(minutes=5),
            operation="read",
            request_auth={"client_token": TOKEN},  # only to put it in request.client_token
            mount_type="kv",
            mount_point="secret/",
            error="1 error occurred:\n\t* permission denied\n\n",
        ),
    ]
    for entry in entries[2:]:
        entry["auth"] = {"token_type": "default"}
    assert (
        entries[3]["request"]["client_token"] == TOKEN and "client_token" not in entries[3]["auth"]
    )
    ingest.lines("audit.log", entries)
    cred = ingest.cred_id("vault", TOKEN)
    act = actions(ingest)["vault:d-1"]
    assert (act["credential_id"], act["outcome"]) == (cred, "denied")
    [use] = cred_events(ingest, "use", cred)
    assert (use["event_id"], use["outcome"]) == ("vault:d-1", "denied")
    life = lifecycle(ingest, cred)  # one credential: the login's token and the denied request's
    assert (life["issue_seen"], life["last_use"]) == (True, at_response(T0 + timedelta(minutes=5)))
    assert TOKEN not in ingest.stored_text()


def test_empty_request_client_token_names_no_credential(ingest: Ingester):
    ingest.lines("audit.log", pair("d-2", "sys/health", T0, operation="read"))
    assert actions(ingest)["vault:d-2"]["credential_id"] is None
    assert cred_events(ingest, "use") == []


# ---------------------------------------------------------------- KMIP entries


def kmip_pair(rid: str, at: datetime, *, path: str | None) -> list[dict]:
    """KMIP operations: `kmip-request` / `kmip-response` entries; the client authenticates with
    its TLS certificate, so there is no token."""
    request = {
        "id": rid,
        "operation": "Create",
        "mount_type": "kmip",
        "mount_point": "kmip/",
        "namespace": {"id": "root"},
        "remote_address": REMOTE,
    }
    if path is not None:
        request["path"] = path
    auth = {"display_name": "kmip-finance-db", "policies": None, "metadata": {"role": "db"}}
    return [
        {"time": vtime(at), "type": "kmip-request", "auth": auth, "request": request},
        {
            "time": vtime(at + RESPONSE_DELAY),
            "type": "kmip-response",
            "auth": auth,
            "request": request,
            "response": {"mount_type": "kmip"},
        },
    ]


def test_kmip_entries_are_loaded(ingest: Ingester):
    entries = [
        *kmip_pair("k-1", T0, path="kmip/scope/finance/role/db"),
        *kmip_pair("k-2", T0 + timedelta(seconds=1), path=None),
    ]
    # each pair: one action from the response, the request a duplicate of it
    assert counts(ingest.lines("audit.log", entries)) == [(4, 2, 0, 2)]
    acts = actions(ingest)
    assert {
        k: (a["tool"], a["system"], a["outcome"], a["source_line"]) for k, a in acts.items()
    } == {
        "vault:k-1": ("vault.kmip.create", "vault:kmip", "ok", 2),
        "vault:k-2": ("vault.kmip.create", "vault:kmip", "ok", 4),
    }
    assert acts["vault:k-2"]["destination"] == "kmip"
    assert acts["vault:k-1"]["credential_id"] is None
    assert ingest.one("SELECT count(*) FROM credential_events") == 0


def test_kmip_entry_without_request_id_is_rejected(ingest: Ingester):
    request, response = kmip_pair("k-3", T0, path=None)
    response["request"] = {k: v for k, v in response["request"].items() if k != "id"}
    report = ingest.lines("audit.log", [request, response])
    assert counts(report) == [(2, 1, 1, 0)]
    [reason] = [r["reason"] for r in ingest.rows("SELECT reason FROM rejected_events")]
    assert reason == "missing required field request.id"


# ---------------------------------------------------------------- PKI and SSH issuance


def _epoch(at: datetime) -> int:
    return int(at.replace(tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("path", "mount", "data", "response_data", "secret", "kind", "ttl"),
    [
        # certificate with its expiration (a number: Vault does not HMAC it)
        (
            "pki/issue/web-server",
            "pki",
            {"common_name": hm("cn"), "ttl": hm("ttl")},
            {"serial_number": hm("serial-1"), "expiration": _epoch(T0 + timedelta(hours=72))},
            None,
            "vault_certificate",
            72 * 3600,
        ),
        # a signed CSR on an intermediate mount, the requested ttl readable (audit_non_hmac_request_keys)
        (
            "pki_int/sign/agents",
            "pki",
            {"csr": hm("csr"), "ttl": "1h30m"},
            {"serial_number": hm("serial-2")},
            None,
            "vault_certificate",
            5400,
        ),
        # the requested ttl HMAC'd and no expiration: lifetime unknown
        (
            "pki/issue/web-server",
            "pki",
            {"common_name": hm("cn"), "ttl": hm("ttl")},
            {"serial_number": hm("serial-3")},
            None,
            "vault_certificate",
            None,
        ),
        # SSH certificate, ttl in plain seconds
        (
            "ssh-client-signer/sign/deployer",
            "ssh",
            {"public_key": hm("pub"), "ttl": "1800"},
            {"serial_number": hm("serial-4"), "signed_key": hm("signed")},
            None,
            "vault_ssh_certificate",
            1800,
        ),
        # SSH one-time password: a lease, issued once (not again as a vault_lease)
        (
            "ssh/creds/otp_key_role",
            "ssh",
            {"ip": hm("ip")},
            {"key": hm("otp"), "key_type": hm("otp-type")},
            {"lease_id": "ssh/creds/otp_key_role/73bbf513-9606-4bec-816c-5a2f009765a5"},
            "vault_ssh_certificate",
            None,
        ),
    ],
)
def test_pki_and_ssh_issuance_issues_a_credential(
    ingest: Ingester, path, mount, data, response_data, secret, kind, ttl
):
    response = {"mount_type": mount, "data": response_data}
    if secret:
        response["secret"] = secret
    entries = pair(
        "i-1",
        path,
        T0,
        auth=AGENT_AUTH,
        data=data,
        mount_type=mount,
        mount_point=path.split("/", 1)[0] + "/",
        response=response,
    )
    assert counts(ingest.lines("audit.log", entries)) == [(2, 1, 0, 1)]
    [issue] = cred_events(ingest, "issue")
    token = ingest.cred_id("vault", TOKEN)
    assert (issue["credential_kind"], issue["ttl_s"]) == (kind, ttl)
    assert issue["issued_at"] == at_response(T0)
    if ttl is None:
        assert issue["expires_at"] is None
    elif "expiration" in response_data:  # the certificate's own expiry, to the second
        assert issue["expires_at"] == T0 + timedelta(seconds=ttl)
    else:
        assert issue["expires_at"] == at_response(T0) + timedelta(seconds=ttl)
    assert (issue["principal"], issue["scopes"]) == (path, [path])
    assert (issue["parent_credential_id"], issue["task_id"], issue["agent_id"]) == (
        token,
        "task-77",
        "researcher",
    )
    assert issue["credential_id"] != token
    act = actions(ingest)["vault:i-1"]
    assert (act["action_class"], act["credential_id"]) == ("credential", token)
    [use] = cred_events(ingest, "use")
    assert use["credential_id"] == token


def test_pki_expiration_is_exact(ingest: Ingester):
    """expiration wins over the requested ttl, and names the expiry itself."""
    expires = T0 + timedelta(hours=24)
    entries = pair(
        "i-2",
        "pki/issue/web-server",
        T0,
        auth=AGENT_AUTH,
        data={"ttl": "72h"},
        mount_type="pki",
        mount_point="pki/",
        response={"mount_type": "pki", "data": {"expiration": _epoch(expires)}},
    )
    ingest.lines("audit.log", entries)
    [issue] = cred_events(ingest, "issue")
    assert (issue["expires_at"], issue["ttl_s"]) == (expires, 24 * 3600)


@pytest.mark.parametrize(
    "path",
    ["pki/roles/web-server", "pki/cert/ca", "ssh/roles/deployer", "secret/data/pki/issue/x"],
)
def test_other_pki_and_ssh_paths_issue_nothing(ingest: Ingester, path):
    mount = path.split("/", 1)[0]
    entries = pair(
        "i-3",
        path,
        T0,
        auth=AGENT_AUTH,
        mount_type="kv" if mount == "secret" else mount,
        mount_point=mount + "/",
        response={"mount_type": mount, "data": {"serial_number": hm("s")}},
    )
    ingest.lines("audit.log", entries)
    assert cred_events(ingest, "issue") == []
    assert actions(ingest)["vault:i-3"]["action_class"] != "credential"


def test_a_failed_pki_issue_issues_nothing(ingest: Ingester):
    entries = pair(
        "i-4",
        "pki/issue/web-server",
        T0,
        auth=AGENT_AUTH,
        mount_type="pki",
        mount_point="pki/",
        error="1 error occurred:\n\t* permission denied\n\n",
    )
    ingest.lines("audit.log", entries)
    assert cred_events(ingest, "issue") == []


# ---------------------------------------------------------------- misspelt main keys


@pytest.mark.parametrize(
    ("wrong", "right", "reason"),
    [
        ("requst", "request", "misspelt top-level key: requst (expected request)"),
        ("typ", "type", "misspelt top-level key: typ (expected type)"),
        ("respnse", "response", "misspelt top-level key: respnse (expected response)"),
        ("eror", "error", "misspelt top-level key: eror (expected error)"),
        ("auht", "auth", "misspelt top-level key: auht (expected auth)"),
        ("Time", "time", "misspelt top-level key: Time (expected time)"),
    ],
)
def test_misspelt_main_key_is_rejected_not_lost(ingest: Ingester, wrong, right, reason):
    """A response whose `response` or `error` key is misspelt would load as a bare success: the
    entry is rejected with the key named. The good entry before it still loads."""
    good = kv_read("m-1", T0, AGENT_AUTH, error="permission denied")
    bad = dict(good[1], request=dict(good[1]["request"], id="m-2"))
    bad[wrong] = bad.pop(right)
    report = ingest.lines("audit.log", [*good, bad])
    assert counts(report) == [(3, 1, 1, 1)]
    rows = ingest.rows("SELECT source_line, reason FROM rejected_events")
    assert [(r["source_line"], r["reason"]) for r in rows] == [(3, reason)]
    assert ingest.one("SELECT count(*) FROM agent_actions") == 1


def test_unknown_top_level_keys_far_from_vaults_are_kept(ingest: Ingester):
    """Newer Vault versions add keys (forwarded_from, ...): only near-misses are rejected."""
    request, response = kv_read("m-3", T0, AGENT_AUTH)
    response["forwarded_from"] = "vault-1.internal:8201"
    response["schema_version"] = 2
    assert counts(ingest.lines("audit.log", [request, response])) == [(2, 1, 0, 1)]
