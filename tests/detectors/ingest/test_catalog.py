"""The tool catalog (detectors/ingest/catalog) and action classification (sql/classify_actions.sql)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from detectors.core.settings import DEFAULT_CATALOG
from detectors.ingest.catalog import ACTION_CLASSES, CatalogError, catalog_report, load_catalog
from tests.conftest import Ingester, write_lines

TS = "2024-05-01T10:00:00Z"


def write_catalog(tmp_path: Path, doc, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def act(n: int, tool: str, system: str | None = None, **fields) -> dict:
    rec = {
        "record_type": "action",
        "event_id": f"e{n}",
        "ts": TS,
        "agent_id": "agent-1",
        "task_id": "task-1",
        "tool": tool,
    }
    if system is not None:
        rec["system"] = system
    rec.update(fields)
    return rec


def ingest_with(
    ingest: Ingester, catalog: Path, records: list[dict], name: str = "acts.jsonl"
) -> dict[str, dict]:
    path = write_lines(ingest.tmp_path / "in" / name, records)
    report = ingest.files(path, catalog_path=str(catalog))
    assert [(f.records, f.loaded) for f in report.files] == [(len(records), len(records))]
    return {
        r["event_id"].removeprefix("native:"): r for r in ingest.rows("SELECT * FROM agent_actions")
    }


# --- precedence ------------------------------------------------------------------------------------

PRECEDENCE = {
    "internal_domains": ["acme.test"],
    "tools": [
        {"tool": "send_*", "action": "write"},  # 0
        {"tool": "send_report*", "action": "delete"},  # 1: longer glob
        {"tool": "send_report", "action": "admin", "sensitivity": "high"},  # 2: exact
        {
            "tool": "send_report",
            "when_system": "mail*",
            "action": "credential",
        },  # 3: exact, system-specific
        {"tool": "send_*", "when_system": "mailer", "action": "egress"},  # 4: glob, system-specific
        {"tool": "fetch_*", "action": "read"},  # 5: same length as 6
        {"tool": "*_thing", "action": "egress"},  # 6
        {"tool": "dup_tool", "action": "read"},  # 7: earlier of two equals
        {"tool": "dup_tool", "action": "write"},  # 8
        {"tool": "sync_?", "action": "write"},  # 9
        {"tool": "sync_?", "when_system": "drive", "action": "delete"},  # 10
    ],
}


@pytest.mark.parametrize(
    ("tool", "system", "expected"),
    [
        pytest.param("send_report", None, "admin", id="exact-beats-globs"),
        pytest.param(
            "send_report", "mailer", "credential", id="system-specific-exact-beats-general-exact"
        ),
        pytest.param("send_report", "other", "admin", id="system-pattern-must-match"),
        pytest.param("send_report_weekly", None, "delete", id="longer-glob-beats-shorter"),
        pytest.param(
            "send_report_weekly",
            "mailer",
            "egress",
            id="system-specific-glob-beats-longer-general-glob",
        ),
        pytest.param("send_invoice", None, "write", id="shorter-glob-when-alone"),
        pytest.param("fetch_thing", None, "read", id="earlier-entry-breaks-ties"),
        pytest.param("get_thing", None, "egress", id="later-entry-when-alone"),
        pytest.param("dup_tool", None, "read", id="earlier-duplicate-wins"),
        pytest.param("sync_a", "drive", "delete", id="system-specific-glob"),
        pytest.param("sync_a", "dropbox", "write", id="other-system-gets-general"),
        pytest.param("sync_a", None, "write", id="no-system-gets-general"),
        pytest.param("sync_ab", None, None, id="question-mark-is-one-character"),
    ],
)
def test_catalog_precedence(
    ingest: Ingester, tmp_path: Path, tool: str, system: str | None, expected: str | None
):
    rows = ingest_with(ingest, write_catalog(tmp_path, PRECEDENCE), [act(1, tool, system)])
    row = rows["e1"]
    if expected is None:
        assert row["classified_by"] != "catalog"
    else:
        assert (row["action_class"], row["classified_by"]) == (expected, "catalog")


def test_catalog_system_names_the_connector(ingest: Ingester, tmp_path: Path):
    catalog = write_catalog(
        tmp_path,
        {
            "tools": [
                {
                    "tool": "s3_*",
                    "system": "s3",
                    "destination_args": ["bucket"],
                },  # only system and destination
                {
                    "tool": "put_row",
                    "when_system": "db-*",
                    "system": "warehouse",
                    "action": "write",
                },
            ]
        },
    )
    rows = ingest_with(
        ingest,
        catalog,
        [
            act(1, "s3_get_object", arguments={"bucket": "reports"}),
            act(2, "s3_get_object", system="function", arguments={"bucket": "reports"}),
            act(3, "put_row", system="db-eu"),
            act(4, "put_row", system="other"),
            act(5, "frobnicate", system="reported-system"),
        ],
    )
    got = {
        k: (v["system"], v["action_class"], v["classified_by"], v["destination"])
        for k, v in rows.items()
    }
    assert got == {
        # an entry that sets only system/destination_args: the class falls back to the name
        "e1": ("s3", "read", "tool_name", "reports"),
        # the source named a system and the entry has no when_system: the source's name stays
        "e2": ("function", "read", "tool_name", "reports"),
        "e3": ("warehouse", "write", "catalog", None),
        "e4": ("other", "write", "tool_name", None),  # when_system did not match: no entry applies
        "e5": ("reported-system", "unknown", "unknown", None),
    }


def test_catalog_sensitivity_and_external_are_applied(ingest: Ingester, tmp_path: Path):
    catalog = write_catalog(
        tmp_path,
        {
            "tools": [
                {
                    "tool": "send_report",
                    "action": "egress",
                    "sensitivity": "low",
                    "external": False,
                },
                {"tool": "post_*", "action": "egress", "external": True},
            ]
        },
    )
    rows = ingest_with(
        ingest,
        catalog,
        [
            act(1, "send_report", arguments={"to": "eve@outside.org"}),
            act(2, "post_update", arguments={"text": "hello"}),
        ],
    )
    assert (rows["e1"]["sensitivity"], rows["e1"]["external"]) == (
        "low",
        False,
    )  # the catalog's word is final
    assert (rows["e2"]["sensitivity"], rows["e2"]["external"]) == ("medium", True)


def test_catalog_beats_source_hints_and_annotations(ingest: Ingester, tmp_path: Path):
    catalog = write_catalog(tmp_path, {"tools": [{"tool": "wipe_disk", "action": "delete"}]})
    rows = ingest_with(
        ingest,
        catalog,
        [
            act(1, "wipe_disk", action_class="read", annotations={"readOnlyHint": True}),
            act(2, "read_notes", action_class="write", annotations={"readOnlyHint": True}),
            act(3, "read_notes", annotations={"destructiveHint": True}),
        ],
    )
    got = {k: (v["action_class"], v["classified_by"]) for k, v in rows.items()}
    assert got == {
        "e1": ("delete", "catalog"),
        "e2": ("write", "source"),
        "e3": ("delete", "mcp_annotation"),
    }


# --- defaults from the tool's name ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ("getUser", "read"),
        ("read_file", "read"),
        ("listBuckets", "read"),
        ("search_docs", "read"),
        ("fetchPage", "read"),
        ("sendMessage", "egress"),
        ("post_comment", "egress"),
        ("shareDocument", "egress"),
        ("email_user", "egress"),
        ("uploadBlob", "egress"),
        ("invite_member", "egress"),
        ("createIssue", "write"),
        ("update_record", "write"),
        ("writeNote", "write"),
        ("put_item", "write"),
        ("deleteRepo", "delete"),
        ("remove_user", "delete"),
        ("assumeRole", "credential"),
        ("issue_certificate", "credential"),
        ("refreshToken", "credential"),
        ("spawnAgent", "delegate"),
        ("delegate_task", "delegate"),
        ("handoffToHuman", "delegate"),
        ("frobnicate", "unknown"),
        ("widget", "unknown"),
    ],
)
def test_unknown_tools_are_classified_by_name(
    ingest: Ingester, tmp_path: Path, tool: str, expected: str
):
    rows = ingest_with(ingest, write_catalog(tmp_path, {"tools": []}), [act(1, tool)])
    assert rows["e1"]["action_class"] == expected
    assert rows["e1"]["classified_by"] == ("unknown" if expected == "unknown" else "tool_name")


def test_name_words_are_read_in_order(ingest: Ingester, tmp_path: Path):
    rows = ingest_with(
        ingest,
        write_catalog(tmp_path, {"tools": []}),
        [
            act(1, "getToken"),  # get comes first
            act(2, "createIssue"),  # create, not issue
            act(3, "file.delete"),  # dots split words
            act(4, "Send-Email"),  # dashes and capitals
            act(5, "dataset"),  # 'set' inside a word is no word
        ],
    )
    assert {k: v["action_class"] for k, v in rows.items()} == {
        "e1": "read",
        "e2": "write",
        "e3": "delete",
        "e4": "egress",
        "e5": "unknown",
    }


# --- MCP annotation hints -------------------------------------------------------------------------

OTLP_TRACE = "5b8efff798038103d269b633813fc60c"


def otlp_tool(span_no: int, tool: str, hints: dict) -> dict:
    attrs = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
        {"key": "gen_ai.tool.name", "value": {"stringValue": tool}},
    ]
    attrs += [
        {"key": f"mcp.tool.annotations.{k}", "value": {"boolValue": v}} for k, v in hints.items()
    ]
    return {
        "traceId": OTLP_TRACE,
        "spanId": f"00000000000000{span_no:02x}",
        "name": f"execute_tool {tool}",
        "startTimeUnixNano": str(1714557600 * 10**9 + span_no),
        "attributes": attrs,
    }


def test_mcp_annotation_hints_in_otlp(ingest: Ingester, tmp_path: Path):
    doc = {
        "resourceSpans": [
            {
                "resource": {},
                "scopeSpans": [
                    {
                        "scope": {"name": "s"},
                        "spans": [
                            otlp_tool(1, "frobnicate", {"readOnlyHint": True}),
                            otlp_tool(
                                2,
                                "frobnicate_more",
                                {"destructiveHint": True, "readOnlyHint": False},
                            ),
                            otlp_tool(3, "frobnicate_out", {"openWorldHint": True}),
                            otlp_tool(4, "frobnicate_far", {"readOnlyHint": False}),
                            otlp_tool(
                                5, "delete_all", {"readOnlyHint": True}
                            ),  # a hint beats the name
                            otlp_tool(6, "frobnicate_closed", {"openWorldHint": False}),
                        ],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(doc, indent=2))
    ingest.files(path, catalog_path=str(write_catalog(tmp_path, {"tools": []})))
    got = {
        r["tool"]: (r["action_class"], r["classified_by"], r["external"])
        for r in ingest.rows("SELECT * FROM agent_actions")
    }
    assert got == {
        "frobnicate": ("read", "mcp_annotation", False),
        "frobnicate_more": ("delete", "mcp_annotation", False),
        "frobnicate_out": ("unknown", "unknown", True),
        "frobnicate_far": ("write", "mcp_annotation", False),
        "delete_all": ("read", "mcp_annotation", False),
        "frobnicate_closed": ("unknown", "unknown", False),
    }


def test_mcp_annotation_hints_in_native(ingest: Ingester, tmp_path: Path):
    rows = ingest_with(
        ingest,
        write_catalog(tmp_path, {"tools": []}),
        [
            act(1, "frobnicate", annotations={"readOnlyHint": True}),
            act(2, "frobnicate", annotations={"destructiveHint": True}),
            act(3, "frobnicate", annotations={"openWorldHint": True}),
            act(4, "frobnicate", annotations={"idempotentHint": True}),
        ],
    )
    got = {k: (v["action_class"], v["classified_by"], v["external"]) for k, v in rows.items()}
    assert got == {
        "e1": ("read", "mcp_annotation", False),
        "e2": ("delete", "mcp_annotation", False),
        "e3": ("unknown", "unknown", True),
        "e4": ("unknown", "unknown", False),
    }


# --- destinations and external ----------------------------------------------------------------------

DEST_CATALOG = {
    "internal_domains": ["acme.test", ".corp.example"],
    "tools": [
        {"tool": "notify_people", "action": "egress", "destination_args": ["recipients", "to"]},
        {"tool": "one_arg", "action": "egress", "destination_args": "channel"},
    ],
}


def test_destination_args_pick_the_destination(ingest: Ingester, tmp_path: Path):
    rows = ingest_with(
        ingest,
        write_catalog(tmp_path, DEST_CATALOG),
        [
            act(
                1,
                "notify_people",
                arguments={"recipients": ["a@acme.test", "b@other.org"], "to": "c@x.org"},
            ),
            act(
                2,
                "notify_people",
                arguments={"to": "carol@acme.test", "body": "see bob@partner.org"},
            ),
            act(3, "notify_people", arguments={"recipients": None, "to": "dave@eu.acme.test"}),
            act(4, "one_arg", arguments={"channel": "#general"}),
            act(5, "notify_people", arguments={"subject": "no destination here"}),
        ],
    )
    got = {k: (v["destination"], v["external"]) for k, v in rows.items()}
    assert got == {
        "e1": (
            "a@acme.test,b@other.org",
            True,
        ),  # a list is comma-joined; one outside address makes it external
        "e2": ("carol@acme.test", False),  # the named argument wins over an address in the body
        "e3": ("dave@eu.acme.test", False),  # null is skipped; sub-domains are inside
        "e4": ("#general", False),
        "e5": (None, False),
    }


def test_destinations_found_by_shape(ingest: Ingester, tmp_path: Path):
    rows = ingest_with(
        ingest,
        write_catalog(tmp_path, DEST_CATALOG),
        [
            act(1, "frobnicate", arguments={"note": "please mail bob@partner.org today"}),
            act(2, "frobnicate", arguments={"target": "https://files.partner.org/upload/1"}),
            act(3, "frobnicate", arguments={"acct": "DE89370400440532013000"}),
            act(4, "frobnicate", arguments={"note": "nothing to see"}),
            act(5, "frobnicate", arguments={"target": "https://wiki.acme.test/page"}),
            act(6, "frobnicate", arguments={"target": "https://host.corp.example/x"}),
            act(7, "frobnicate", destination="ops@acme.test"),
        ],
    )
    got = {k: (v["destination"], v["external"]) for k, v in rows.items()}
    assert got == {
        "e1": ("bob@partner.org", True),
        "e2": ("https://files.partner.org/upload/1", True),
        "e3": ("DE89370400440532013000", False),
        "e4": (None, False),
        "e5": ("https://wiki.acme.test/page", False),
        "e6": ("https://host.corp.example/x", False),
        "e7": ("ops@acme.test", False),
    }


@pytest.mark.parametrize(
    ("address", "external"),
    [
        ("user@acme.test", False),
        ("user@ACME.TEST", False),
        ("user@mail.acme.test", False),
        ("user@notacme.test", True),
        ("user@acme.test.evil.org", True),
        ("https://acme.test/x", False),
        ("https://a.b.acme.test:8443/x", False),
        ("https://acme.test.evil.org/x", True),
    ],
)
def test_external_means_outside_internal_domains(
    ingest: Ingester, tmp_path: Path, address: str, external: bool
):
    rows = ingest_with(
        ingest,
        write_catalog(tmp_path, DEST_CATALOG),
        [act(1, "notify_people", arguments={"to": address})],
    )
    assert (rows["e1"]["destination"], rows["e1"]["external"]) == (address, external)


def test_a_url_destination_with_a_token_is_redacted(ingest: Ingester, tmp_path: Path):
    catalog = write_catalog(
        tmp_path,
        {"tools": [{"tool": "call_hook", "action": "egress", "destination_args": ["url"]}]},
    )
    rows = ingest_with(
        ingest,
        catalog,
        [
            act(
                1,
                "call_hook",
                arguments={"url": "https://hooks.partner.org/in?token=s3cr3tvalue&x=1"},
            ),
            act(
                2,
                "frobnicate",
                arguments={"target": "https://api.partner.org/v1?api_key=s3cr3tvalue"},
            ),
        ],
    )
    assert rows["e1"]["destination"] == "https://hooks.partner.org/in?token=[REDACTED]&x=1"
    assert rows["e2"]["destination"] == "https://api.partner.org/v1?api_key=[REDACTED]"
    for row in rows.values():
        assert "s3cr3tvalue" not in row["destination"] and "s3cr3tvalue" not in row["args"]
        assert row["external"] is True


def test_default_internal_domains_come_from_the_shipped_catalog(ingest: Ingester):
    path = write_lines(
        ingest.tmp_path / "in" / "d.jsonl",
        [
            act(1, "send_email", arguments={"to": "x@sub.example.com"}),
            act(2, "send_email", arguments={"to": "x@gmail.com"}),
        ],
    )
    ingest.files(path)
    got = {
        r["event_id"]: (r["action_class"], r["classified_by"], r["external"])
        for r in ingest.rows("SELECT * FROM agent_actions")
    }
    assert got == {
        "native:e1": ("egress", "catalog", False),
        "native:e2": ("egress", "catalog", True),
    }


# --- catalog_report -------------------------------------------------------------------------------------


def test_catalog_report_lists_unmapped_tools_by_count(ingest: Ingester, tmp_path: Path):
    catalog = write_catalog(
        tmp_path,
        {
            "tools": [
                {"tool": "known_tool", "action": "read", "output_trust": "trusted"},
                {"tool": "half_known", "action": "read"},
            ]
        },
    )
    ingest_with(
        ingest,
        catalog,
        [
            act(1, "mystery_tool"),
            act(2, "mystery_tool"),
            act(3, "mystery_tool"),
            act(4, "getThing"),
            act(5, "getThing", system="crm"),
            act(6, "known_tool"),
            act(7, "known_tool"),
            act(8, "frobnicate", annotations={"destructiveHint": True}),
            act(9, "read_inbox", annotations={"readOnlyHint": True}),
            act(10, "half_known"),
        ],
    )
    report = catalog_report(ingest.con)
    assert report[0] == ("mystery_tool", None, "unknown", "unknown", "default", "trusted", 3)
    # Ties by tool name; a mapped class with a defaulted trust is listed too.
    assert report[1] == ("frobnicate", None, "mcp_annotation", "delete", "default", "trusted", 1)
    assert sorted(report[2:4], key=lambda r: r[1] or "") == [
        ("getThing", None, "tool_name", "read", "default", "trusted", 1),
        ("getThing", "crm", "tool_name", "read", "default", "trusted", 1),
    ]
    assert report[4] == ("half_known", None, "catalog", "read", "default", "trusted", 1)
    # An inbox is untrusted by its name.
    assert report[5] == ("read_inbox", None, "mcp_annotation", "read", "tool_name", "untrusted", 1)
    assert all(r[0] != "known_tool" for r in report)
    assert catalog_report(ingest.con, limit=1) == [report[0]]


def test_catalog_report_is_empty_when_everything_is_mapped(ingest: Ingester, tmp_path: Path):
    catalog = write_catalog(
        tmp_path, {"tools": [{"tool": "*", "action": "read", "output_trust": "untrusted"}]}
    )
    ingest_with(ingest, catalog, [act(1, "anything"), act(2, "else")])
    assert catalog_report(ingest.con) == []


def test_output_trust_and_critical_args_are_validated(tmp_path: Path):
    bad_trust = write_catalog(tmp_path, {"tools": [{"tool": "x", "output_trust": "maybe"}]})
    with pytest.raises(CatalogError, match=r"tools\[0\]: field 'output_trust' must be one of"):
        load_catalog(bad_trust)
    bad_args = write_catalog(tmp_path, {"tools": [{"tool": "x", "critical_args": ["a b"]}]})
    with pytest.raises(
        CatalogError, match="field 'critical_args' must be a list of argument names"
    ):
        load_catalog(bad_args)
    good = write_catalog(
        tmp_path,
        {"tools": [{"tool": "x", "output_trust": "untrusted", "critical_args": "recipient"}]},
    )
    entry = load_catalog(good).entries[0]
    assert (entry.output_trust, entry.critical_args) == ("untrusted", ("recipient",))


# --- loading and validation ------------------------------------------------------------------------------


def test_the_shipped_catalog_loads():
    catalog = load_catalog(DEFAULT_CATALOG)
    assert catalog.internal_domains == ("example.com", "corp.example", "internal", "acme.example")
    assert len(catalog.entries) > 10
    assert all(e.action is None or e.action in ACTION_CLASSES for e in catalog.entries)
    assert [e.entry_no for e in catalog.entries] == list(range(len(catalog.entries)))
    send = next(e for e in catalog.entries if e.tool == "send_email")
    assert (send.is_glob, send.action, send.destination_args[:2]) == (
        False,
        "egress",
        ("to", "recipients"),
    )
    assert next(e for e in catalog.entries if e.tool == "*webhook*").is_glob is True


def test_load_catalog_normalises_domains_and_single_destination_arg(tmp_path: Path):
    catalog = load_catalog(
        write_catalog(
            tmp_path,
            {
                "internal_domains": [".Corp.Example", "acme.test"],
                "tools": [
                    {"tool": "t", "destination_args": "to", "note": "why"},
                    {"tool": "u?", "when_system": "s*", "system": "svc"},
                ],
            },
        )
    )
    assert catalog.internal_domains == ("corp.example", "acme.test")
    first, second = catalog.entries
    assert first.destination_args == ("to",)
    assert (first.action, first.external, first.system, first.when_system, first.is_glob) == (
        None,
        None,
        None,
        None,
        False,
    )
    assert (second.is_glob, second.when_system, second.system) == (True, "s*", "svc")


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        pytest.param({"tool": "t", "acton": "read"}, "acton", id="unknown-field"),
        pytest.param({"tool": "t", "action": "steal"}, "'action'", id="bad-action"),
        pytest.param(
            {"tool": "t", "sensitivity": "extreme"}, "'sensitivity'", id="bad-sensitivity"
        ),
        pytest.param({"tool": "t", "external": "sometimes"}, "'external'", id="external-string"),
        pytest.param({"tool": "t", "external": 1}, "'external'", id="external-number"),
        pytest.param(
            {"tool": "t", "destination_args": ['to"x']}, "'destination_args'", id="arg-with-quote"
        ),
        pytest.param(
            {"tool": "t", "destination_args": ["to'x"]},
            "'destination_args'",
            id="arg-with-single-quote",
        ),
        pytest.param(
            {"tool": "t", "destination_args": ["to addr"]},
            "'destination_args'",
            id="arg-with-space",
        ),
        pytest.param(
            {"tool": "t", "destination_args": {"to": 1}}, "'destination_args'", id="args-mapping"
        ),
        pytest.param({"tool": ""}, "'tool'", id="empty-tool"),
        pytest.param({"action": "read"}, "'tool'", id="missing-tool"),
        pytest.param({"tool": 5}, "'tool'", id="tool-number"),
        pytest.param({"tool": "t", "system": ""}, "'system'", id="empty-system"),
        pytest.param({"tool": "t", "when_system": ""}, "'when_system'", id="empty-when_system"),
        pytest.param({"tool": "t", "when_system": ["a"]}, "'when_system'", id="when_system-list"),
    ],
)
def test_malformed_entries_name_the_file_entry_and_field(tmp_path: Path, entry: dict, field: str):
    path = write_catalog(tmp_path, {"tools": [{"tool": "fine", "action": "read"}, entry]})
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path}: tools[1]: ")
    assert field in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(
            "- a\n- b\n", "a catalog is a mapping with a 'tools' list", id="not-a-mapping"
        ),
        pytest.param(
            "internal_domains: []\n", "a catalog is a mapping with a 'tools' list", id="no-tools"
        ),
        pytest.param(
            "tools: {a: 1}\n", "a catalog is a mapping with a 'tools' list", id="tools-mapping"
        ),
        pytest.param(
            "tools: []\nextra: 1\n", "unknown top-level field(s) ['extra']", id="unknown-top-level"
        ),
        pytest.param(
            "tools: []\ninternal_domains: acme.test\n", "'internal_domains'", id="domains-not-list"
        ),
        pytest.param(
            "tools: []\ninternal_domains: ['']\n", "'internal_domains'", id="empty-domain"
        ),
        pytest.param("tools: [\n", "cannot read catalog", id="bad-yaml"),
        pytest.param(
            "tools:\n  - just a string\n", "tools[0]: an entry is a mapping", id="entry-not-mapping"
        ),
    ],
)
def test_malformed_catalogs_name_the_file(tmp_path: Path, text: str, fragment: str):
    path = write_catalog(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value).startswith(f"{path}: ")
    assert fragment in str(err.value)


def test_missing_catalog_file(tmp_path: Path):
    with pytest.raises(CatalogError, match="cannot read catalog") as err:
        load_catalog(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(err.value)


def test_ingest_with_a_malformed_catalog_raises_before_loading(ingest: Ingester, tmp_path: Path):
    bad = write_catalog(tmp_path, {"tools": [{"tool": "t", "action": "steal"}]})
    path = write_lines(tmp_path / "in" / "a.jsonl", [act(1, "t")])
    with pytest.raises(CatalogError, match=r"tools\[0\]: field 'action'"):
        ingest.files(path, catalog_path=str(bad))
    assert ingest.one("SELECT count(*) FROM agent_actions") == 0
    assert ingest.one("SELECT count(*) FROM ingest_files") == 0


def test_odd_characters_in_tool_patterns_are_data_not_sql(ingest: Ingester, tmp_path: Path):
    catalog = write_catalog(
        tmp_path, {"tools": [{"tool": "it's; DROP TABLE agent_actions; --", "action": "admin"}]}
    )
    rows = ingest_with(ingest, catalog, [act(1, "it's; DROP TABLE agent_actions; --")])
    assert (rows["e1"]["action_class"], rows["e1"]["classified_by"]) == ("admin", "catalog")
