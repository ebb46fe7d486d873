"""Injection: untrusted strings are data, never SQL (or code).

Rule YAML values, parameters and ids, catalog entries, CLI arguments and the investigation
notebook's parameters are fed strings built to break out of a SQL literal or identifier. Each must
end as data: no table dropped or altered, a "not found" or empty result, the documented exit code.
After each attempt every table of the warehouse (and of the analyst database) still exists with
the row count it had before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from chainwatch.cli import EXIT_OK, EXIT_USAGE, main
from detectors.analyst.investigate import InvestigationError, run_investigation
from detectors.ingest.catalog import CatalogError, load_catalog
from detectors.ingest.pipeline import ingest_paths
from detectors.rules.engine import (
    RULES_DIR,
    RuleError,
    Suppression,
    detect,
    load_rules,
)
from pipelines.run import run_landing
from tests.conftest import Ingester, sample_landing, write_lines

# Strings that would change a query if pasted into it: quote breaks, comments, UNION, unicode
# look-alike quotes, a NUL byte, a bound-parameter look-alike and a database attach.
INJECTIONS = [
    "'; DROP TABLE findings; --",
    '" OR 1=1 --',
    "x') UNION SELECT finding_id, rule_id FROM findings --",
    "\u2019; DROP TABLE agent_actions; --",  # right single quotation mark
    "\uff07 OR \uff071\uff07=\uff071",  # fullwidth apostrophes
    "nul\x00'; DROP TABLE findings; --",
    "$c0; DROP TABLE findings",
    "'); ATTACH '/tmp/cw-evil.duckdb' AS evil; --",
]
IDS = [
    "drop",
    "or_1",
    "union",
    "unicode_quote",
    "fullwidth",
    "nul",
    "param",
    "attach",
]
# CLI arguments travel through argv, which cannot carry a NUL byte; `main()` is called in-process
# here, so it can, and those cases are kept.
# A warehouse folder whose name would break any SQL that pastes the path (ATTACH, COPY TO, ...).
QUOTED_FOLDER = "wh'; DROP TABLE findings; --"


def tables_and_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Every base table and view of the connection's database, with its row count."""
    rows = con.execute(
        """SELECT table_name, table_type FROM information_schema.tables
           WHERE table_catalog = current_database() AND table_schema = 'main'
           ORDER BY table_name"""
    ).fetchall()
    return {
        ("view:" if kind == "VIEW" else "") + name: con.execute(
            f'SELECT count(*) FROM "{name}"'
        ).fetchone()[0]
        for name, kind in rows
    }


def snapshot(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return tables_and_rows(con)
    finally:
        con.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- rule YAML ------------------------------------------------------------------------------

SENSITIVE_READ = yaml.safe_load((RULES_DIR / "sensitive_read_then_egress.yaml").read_text())
OUTLIVED = yaml.safe_load((RULES_DIR / "credential_outlived_task.yaml").read_text())
HIT_SQL = """SELECT task_id AS entity_id, agent_id, task_id, credential_id, ts AS first_seen,
    ts AS last_seen, [event_id] AS evidence_event_ids, 'tool ' || tool AS detail
FROM agent_actions WHERE tool = $tool_name AND task_id IS NOT NULL
"""
# A number parameter, tested on every action (a filter before it could skip the conversion).
NUMBER_SQL = HIT_SQL.replace(
    "WHERE tool = $tool_name AND", "WHERE ts > TIMESTAMP '2000-01-01' + to_seconds($grace_s) AND"
)


def _native_actions() -> list[dict]:
    """One task per injection string: a sensitive read by a tool named with the string, then an
    external e-mail. NUL cannot travel in JSON text to DuckDB's parser intact, so its task's tool
    drops the NUL (its rule value is still tested, and matches nothing)."""
    records = []
    for k, text in enumerate(INJECTIONS):
        task = f"task-{k}"
        records += [
            {
                "record_type": "action",
                "event_id": f"r{k}",
                "ts": f"2026-11-01T10:{k:02d}:00Z",
                "agent_id": "agent-1",
                "task_id": task,
                "tool": text.replace("\x00", ""),
                "action_class": "read",
                "sensitivity": "high",
                "arguments": {"query": text},
            },
            {
                "record_type": "action",
                "event_id": f"e{k}",
                "ts": f"2026-11-01T10:{k:02d}:30Z",
                "agent_id": "agent-1",
                "task_id": task,
                "tool": "send_email",
                "action_class": "egress",
                "external": "true",
                "destination": "someone@elsewhere.example",
            },
        ]
    return records


@pytest.fixture
def loaded(ingest: Ingester) -> Ingester:
    report = ingest.lines("injected.jsonl", _native_actions())
    assert not report.errors and report.total("rejected") == 0, report.files
    return ingest


def _write_rule(folder: Path, meta: dict, sql: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{meta['id']}.yaml"
    path.write_text(yaml.safe_dump(meta, allow_unicode=True))
    if sql is not None:
        path.with_suffix(".sql").write_text(sql)
    return path


def _chain(rule_id: str, first_step: dict) -> dict:
    meta = {**SENSITIVE_READ, "id": rule_id}
    meta["sequence"] = {
        "group_by": "task",
        "within": "30m",
        "steps": [{"where": first_step}, {"where": {"action_class": "egress"}}],
    }
    return meta


@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
def test_rule_where_values_are_bound_and_match_only_as_data(
    loaded: Ingester, tmp_path: Path, text: str
):
    k = INJECTIONS.index(text)
    stored_tool = text.replace("\x00", "")
    rules_dir = tmp_path / "rules"
    _write_rule(rules_dir, _chain("inj_equals", {"tool": text}))
    _write_rule(rules_dir, _chain("inj_in", {"tool": {"in": [text, "never"]}}))
    _write_rule(rules_dir, _chain("inj_not", {"tool": {"not": text}, "sensitivity": "high"}))
    _write_rule(
        rules_dir,
        _chain("inj_not_in", {"tool": {"not_in": [text]}, "sensitivity": "high"}),
    )
    _write_rule(rules_dir, _chain("inj_glob", {"tool": {"glob": text}}))
    _write_rule(rules_dir, _chain("inj_destination", {"destination": text}))
    rules = load_rules(rules_dir)
    for rule in rules:
        assert text not in rule.sql and "DROP" not in rule.sql, rule.id
        assert any(
            v == text or (isinstance(v, list) and text in v) for v in rule.params.values()
        ), rule.id

    con = loaded.con
    before = tables_and_rows(con)
    counts = detect(
        con, rules, suppressions=[Suppression(text, text, text, None)]
    )  # a suppression of injected globs as well
    after = tables_and_rows(con)
    assert after.keys() == before.keys()
    assert {t: n for t, n in after.items() if t != "findings"} == {
        t: n for t, n in before.items() if t != "findings"
    }
    others = len(INJECTIONS) - 1
    matches = 1 if stored_tool == text else 0  # the NUL string was stored without its NUL
    assert counts == {
        "inj_equals": matches,
        "inj_in": matches,
        "inj_not": others + (1 - matches),
        "inj_not_in": others + (1 - matches),
        # A glob has its own syntax ('[' ...) but none of these strings uses it: literal match.
        "inj_glob": matches,
        "inj_destination": 0,
    }
    if matches:
        hit = con.execute(
            "SELECT entity_id, evidence_event_ids FROM findings WHERE rule_id = 'inj_equals'"
        ).fetchall()
        assert hit == [(f"task-{k}", [f"native:r{k}", f"native:e{k}"])]


@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
def test_rule_parameters_and_overrides_are_bound(loaded: Ingester, tmp_path: Path, text: str):
    rules_dir = tmp_path / "rules"
    meta = {**OUTLIVED, "id": "inj_param", "kind": "sql", "parameters": {"tool_name": "nothing"}}
    _write_rule(rules_dir, meta, HIT_SQL)
    con = loaded.con
    before = tables_and_rows(con)

    # As the rule's own default, and as an override from the settings file.
    for overrides in (None, {"inj_param": {"tool_name": text}}):
        if overrides is None:
            _write_rule(rules_dir, {**meta, "parameters": {"tool_name": text}}, HIT_SQL)
        rules = load_rules(rules_dir, overrides)
        assert rules[0].params["tool_name"] == text and text not in rules[0].sql
        counts = detect(con, rules)
        assert counts == {"inj_param": 1 if "\x00" not in text else 0}
        _write_rule(rules_dir, meta, HIT_SQL)

    # Where a number is expected the string cannot be converted: an error, nothing merged.
    number = {**meta, "id": "inj_number", "parameters": {"grace_s": text}}
    _write_rule(rules_dir, number, NUMBER_SQL)
    with pytest.raises((duckdb.Error, RuleError)):
        detect(con, [r for r in load_rules(rules_dir) if r.id == "inj_number"])

    after = tables_and_rows(con)
    assert after.keys() == before.keys()
    assert {t: n for t, n in after.items() if t != "findings"} == {
        t: n for t, n in before.items() if t != "findings"
    }


@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
def test_parameter_names_that_are_not_identifiers_are_refused(tmp_path: Path, text: str):
    rules_dir = tmp_path / "rules"
    path = _write_rule(
        rules_dir,
        {**OUTLIVED, "id": "inj_param", "kind": "sql", "parameters": {text: 1}},
        HIT_SQL,
    )
    with pytest.raises(RuleError, match="parameter name") as err:
        load_rules(rules_dir)
    assert str(path) in str(err.value)
    # An override naming such a parameter is refused too.
    _write_rule(
        rules_dir,
        {**OUTLIVED, "id": "inj_param", "kind": "sql", "parameters": {"tool_name": "x"}},
        HIT_SQL,
    )
    with pytest.raises(RuleError, match="unknown parameter"):
        load_rules(rules_dir, {"inj_param": {text: 1}})


@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
def test_a_rule_id_that_is_not_an_identifier_is_refused_naming_file_and_field(
    tmp_path: Path, text: str
):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    meta = _chain(text, {"tool": "x"})
    # Where the file system allows it, the file is named like the id (so the id "equals the file
    # name" and only its form can refuse it); otherwise the id differs from the file name too.
    name = text if "/" not in text and "\x00" not in text else "bad_id"
    path = rules_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(meta, allow_unicode=True))
    with pytest.raises(RuleError) as err:
        load_rules(rules_dir)
    message = str(err.value)
    assert str(path) in message and "field 'id'" in message
    assert "identifier" in message or "must match" in message, message


def test_rule_yaml_with_a_raw_nul_byte_is_a_rule_error(tmp_path: Path):
    path = tmp_path / "inj_nul.yaml"
    text = yaml.safe_dump(_chain("inj_nul", {"tool": "PLACEHOLDER"}))
    path.write_bytes(text.replace("PLACEHOLDER", "x\x00'; DROP TABLE findings; --").encode())
    with pytest.raises(RuleError, match="cannot read rule") as err:
        load_rules(tmp_path)
    assert str(path) in str(err.value)


# --- the tool catalog ---------------------------------------------------------------------------


def test_catalog_entries_are_bound_and_match_only_as_data(ingest: Ingester, tmp_path: Path):
    texts = [t for t in INJECTIONS if "\x00" not in t]
    catalog_path = tmp_path / "catalog.yaml"
    catalog_path.write_text(
        yaml.safe_dump(
            {
                "internal_domains": [*texts, "corp.example"],
                "tools": [
                    {
                        "tool": text,
                        "system": f"system {text}",
                        "action": "egress",
                        "sensitivity": "high",
                        "external": False,
                        "destination_args": ["to"],
                    }
                    for text in texts
                ]
                + [
                    {
                        "tool": "lookup",
                        "when_system": text,
                        "system": f"renamed {k}",
                        "action": "read",
                    }
                    for k, text in enumerate(texts)
                ],
            },
            allow_unicode=True,
        )
    )
    catalog = load_catalog(catalog_path)
    records = []
    for k, text in enumerate(texts):
        records += [
            {
                "record_type": "action",
                "event_id": f"t{k}",
                "ts": f"2026-11-01T10:{k:02d}:00Z",
                "agent_id": "agent-1",
                "task_id": f"task-{k}",
                "tool": text,
                "arguments": {"to": text},
            },
            {
                "record_type": "action",
                "event_id": f"l{k}",
                "ts": f"2026-11-01T10:{k:02d}:30Z",
                "agent_id": "agent-1",
                "task_id": f"task-{k}",
                "tool": "lookup",
                "system": text,
            },
        ]
    path = write_lines(tmp_path / "in" / "catalog-injection.jsonl", records)
    before = tables_and_rows(ingest.con)
    report = ingest_paths(ingest.con, [path], ingest.settings, catalog=catalog)
    assert not report.errors and report.total("loaded") == len(records)
    after = tables_and_rows(ingest.con)
    assert after.keys() == before.keys()  # nothing dropped, nothing attached or created
    rows = ingest.rows(
        """SELECT event_id, tool, system, action_class, sensitivity, classified_by, destination
           FROM agent_actions ORDER BY event_id"""
    )
    by_id = {r["event_id"]: r for r in rows}
    for k, text in enumerate(texts):
        sent = by_id[f"native:t{k}"]
        assert (sent["tool"], sent["system"], sent["action_class"], sent["classified_by"]) == (
            text,
            f"system {text}",
            "egress",
            "catalog",
        )
        assert sent["destination"] == text
        looked = by_id[f"native:l{k}"]
        assert (looked["system"], looked["action_class"]) == (f"renamed {k}", "read")
    assert ingest.one("SELECT count(*) FROM agent_actions") == len(records)


@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
def test_catalog_destination_args_that_are_not_names_are_refused(tmp_path: Path, text: str):
    path = tmp_path / "catalog.yaml"
    path.write_text(
        yaml.safe_dump(
            {"tools": [{"tool": "send", "action": "egress", "destination_args": [text]}]},
            allow_unicode=True,
        )
    )
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert str(path) in message and "tools[0]" in message and "'destination_args'" in message


# --- CLI arguments and notebook parameters, on a real run ---------------------------------------


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """A warehouse (in a folder whose name is itself an injection) after a real run of the
    Dagster job over one day of the committed sample, with its analyst database and exports."""
    root = tmp_path_factory.mktemp("injection")
    landing = sample_landing(root / "landing", days=("2026-11-01",))
    db = root / QUOTED_FOLDER / "chainwatch.duckdb"
    outcome = run_landing(landing, db, refit="auto")
    assert outcome.success, outcome.failed_checks
    assert (db.parent / "chainwatch_published.duckdb").is_file()
    return db


@pytest.fixture
def state(warehouse: Path):
    """Row counts of the warehouse and the analyst database, checked unchanged after the test."""
    published = warehouse.with_name("chainwatch_published.duckdb")
    before = (snapshot(warehouse), snapshot(published))
    assert before[0]["findings"] > 0 and before[0]["agent_actions"] > 0
    yield warehouse
    assert (snapshot(warehouse), snapshot(published)) == before


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
def test_cli_filters_treat_injections_as_values(state: Path, capsys, text: str):
    db = str(state)
    for option in ("--agent", "--rule"):
        code, out, err = _run(capsys, "findings", "--db", db, option, text)
        assert (code, err) == (EXIT_OK, "") and out.rstrip().endswith("0 finding(s)"), out
        for fmt in ("json", "ocsf"):
            code, out, err = _run(capsys, "findings", "--db", db, option, text, "--format", fmt)
            assert (code, out, err) == (EXIT_OK, "", "")
    code, out, err = _run(capsys, "recommend", "--db", db, "--agent", text)
    assert code == EXIT_OK and out.rstrip().endswith("0 recommendation(s)"), out
    code, out, err = _run(capsys, "recommend", "--db", db, "--agent", text, "--format", "json")
    assert (code, out) == (EXIT_OK, "")


@pytest.mark.slow
@pytest.mark.parametrize("text", INJECTIONS, ids=IDS)
def test_cli_lookups_of_injected_ids_are_not_found(state: Path, capsys, text: str):
    db = str(state)
    code, out, err = _run(capsys, "show", text, "--db", db)
    assert code == EXIT_USAGE and f"no task {text!r}" in err, err
    code, out, err = _run(capsys, "triage", text, "--status", "resolved", "--db", db)
    assert code == EXIT_USAGE and f"no finding {text!r}" in err, err


@pytest.mark.slow
def test_cli_since_is_validated_before_any_query(state: Path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["findings", "--db", str(state), "--since", "2026-11-01' OR 1=1 --"])
    assert exit_.value.code == EXIT_USAGE
    assert "not an ISO 8601 time" in capsys.readouterr().err


@pytest.mark.slow
def test_a_triage_note_with_injections_is_stored_verbatim(warehouse: Path, tmp_path: Path, capsys):
    folder = tmp_path / QUOTED_FOLDER
    shutil.copytree(warehouse.parent, folder)
    db = folder / warehouse.name
    finding_id = snapshot_value(db, "SELECT finding_id FROM findings ORDER BY finding_id LIMIT 1")
    note = " | ".join(INJECTIONS)
    before = snapshot(db)
    code, out, err = _run(
        capsys, "triage", finding_id, "--status", "in_progress", "--note", note, "--db", str(db)
    )
    assert code == EXIT_OK, err
    assert snapshot(db) == before
    assert (
        snapshot_value(db, "SELECT triage_note FROM findings WHERE finding_id = ?", [finding_id])
        == note
    )
    published = folder / "chainwatch_published.duckdb"
    assert (
        snapshot_value(
            published, "SELECT triage_note FROM findings WHERE finding_id = ?", [finding_id]
        )
        == note
    )
    ocsf = (folder / "findings" / "findings.ocsf.jsonl").read_text(encoding="utf-8")
    assert any(finding_id in line for line in ocsf.splitlines())


def snapshot_value(db: Path, sql: str, params=()):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("text", [INJECTIONS[0], INJECTIONS[2]], ids=["drop", "union"])
def test_cli_investigate_of_an_injected_id_is_not_found(
    state: Path, tmp_path: Path, capsys, text: str
):
    out_dir = tmp_path / "inv"
    code, out, err = _run(capsys, "investigate", text, "--db", str(state), "--out", str(out_dir))
    assert code == EXIT_USAGE and "no such finding" in err, err
    code, out, err = _run(
        capsys, "investigate", text, "--task", "--db", str(state), "--out", str(out_dir)
    )
    assert code == EXIT_USAGE and "no such task" in err, err
    # Whatever was written stays inside the output folder, under a safe name.
    for path in out_dir.rglob("*"):
        assert path.resolve().is_relative_to(out_dir.resolve())


# Strings aimed at the notebook's parameter cell (Python code), besides the SQL ones.
NOTEBOOK_PAYLOADS = [
    INJECTIONS[0],
    INJECTIONS[5],
    '"; open({canary!r}, "w").write("pwned"); x = "',
    "x\nopen({canary!r}, 'w').write('pwned')\n",
    "\\\"; open({canary!r}, 'w').write('pwned') #",
]


@pytest.mark.slow
@pytest.mark.parametrize("payload", NOTEBOOK_PAYLOADS, ids=["drop", "nul", "dq", "nl", "bs"])
def test_notebook_parameters_are_data(state: Path, tmp_path: Path, payload: str):
    canary = tmp_path / "pwned"
    text = payload.replace("{canary!r}", repr(str(canary)))
    published = state.with_name("chainwatch_published.duckdb")
    digest = sha256(published)
    with pytest.raises(InvestigationError, match="no such finding") as err:
        run_investigation(published, tmp_path / "out", finding_id=text)
    assert err.value.ename == "ValueError"
    assert not canary.exists(), "the finding id ran as code in the notebook"
    assert sha256(published) == digest
    # The partial notebook records the id as the string it was given.
    (notebook,) = (tmp_path / "out").glob("*.ipynb")
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    assert any("no such finding" in json.dumps(c.get("outputs", [])) for c in cells)
