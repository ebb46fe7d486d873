"""The investigation notebook, executed for real (papermill, then nbconvert) on the sample data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import nbformat
import pytest

from detectors.analyst.investigate import (
    NOTEBOOK,
    InvestigationDatabaseMissing,
    InvestigationError,
    output_stem,
    run_investigation,
)
from pipelines.run import run_landing

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples"
INJECTION_IDS = ["f_x' OR '1'='1", "'; DROP TABLE findings; --"]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """The analyst database of one pipeline run (ingest, refit, score) over the committed sample."""
    root = tmp_path_factory.mktemp("investigate")
    landing = root / "landing"
    for folder in ("otlp", "vault", "cloudtrail", "native"):
        shutil.copytree(SAMPLES / folder, landing / folder)
    db = root / "wh" / "chainwatch.duckdb"
    assert run_landing(landing, db, refit="auto").success
    path = db.with_name("chainwatch_published.duckdb")
    assert path.is_file()
    return path


def query(db: Path, sql: str, params=()) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def outputs(path: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def text_of(path: Path) -> str:
    """Every text, Markdown and HTML output of an executed notebook, as one string."""
    parts = []
    for out in outputs(path):
        data = out.get("data", {})
        parts += [data.get("text/markdown", ""), data.get("text/html", ""), out.get("text", "")]
    return "\n".join(parts)


def assert_complete(result, *, min_figures: int = 2) -> None:
    """Executed without an error output, with figures, exported to HTML with them inline."""
    outs = outputs(result.notebook)
    assert [o for o in outs if o.output_type == "error"] == []
    pngs = sum("image/png" in o.get("data", {}) for o in outs)
    assert pngs >= min_figures and result.figures == pngs
    html = result.html.read_text(encoding="utf-8")
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) == pngs
    assert 'alt="Timeline of task' in html  # figures carry their alternative text
    assert "checked_id(" not in html  # the export shows results, not code


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    hint = "strip it: jupyter nbconvert --clear-output --inplace " + str(NOTEBOOK)
    assert all(c.outputs == [] for c in code), hint
    assert all(c.execution_count is None for c in code), hint
    assert "papermill" not in nb.metadata
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("db_path", "finding_id", "task_id", "output_dir"):
        assert re.search(rf"^{name} = ", tagged[0].source, re.M), name


def test_output_names_are_safe():
    assert output_stem("f_0123abc") == "investigate_f_0123abc"
    assert output_stem("task-20261101-000053") == "investigate_task-20261101-000053"
    stem = output_stem("../x' OR '1'='1")
    assert re.fullmatch(r"investigate_[A-Za-z0-9._-]+", stem) and ".." not in stem.split("_")[1]


def test_missing_database_is_named(tmp_path: Path):
    missing = tmp_path / "nowhere.duckdb"
    with pytest.raises(InvestigationDatabaseMissing, match="nowhere.duckdb") as err:
        run_investigation(missing, tmp_path / "out", finding_id="f_1")
    assert "f_1" in str(err.value) and isinstance(err.value, FileNotFoundError)


def test_exactly_one_id(tmp_path: Path):
    with pytest.raises(ValueError, match="exactly one"):
        run_investigation(tmp_path / "db", tmp_path, finding_id="f_1", task_id="t_1")
    with pytest.raises(ValueError, match="exactly one"):
        run_investigation(tmp_path / "db", tmp_path)


@pytest.mark.slow
def test_anomaly_finding(published: Path, tmp_path: Path):
    finding_id, task_id, evidence = query(
        published,
        """SELECT finding_id, task_id, evidence_event_ids FROM findings
           WHERE rule_id = 'task_behaviour_anomaly' ORDER BY priority DESC, finding_id LIMIT 1""",
    )[0]
    result = run_investigation(published, tmp_path, finding_id=finding_id)
    assert result.notebook == tmp_path.resolve() / f"investigate_{finding_id}.ipynb"
    assert result.html == result.notebook.with_suffix(".html")
    assert_complete(result)
    text = text_of(result.notebook)
    assert task_id.replace("-", r"\-") in text  # the task heading (Markdown-escaped)
    assert "top features" in text and "rare tool transitions" in text
    assert all(event_id in text for event_id in evidence)  # the evidence table
    assert re.search(
        r"recommendation\\\(s\\\) for|no recommendation", text
    )  # shown, or said absent
    assert (tmp_path / f"investigate_{task_id}_timeline.png").is_file()


@pytest.mark.slow
def test_credential_finding_shows_its_credentials_task(published: Path, tmp_path: Path):
    finding_id, credential_id, task_id = query(
        published,
        """SELECT f.finding_id, f.credential_id, l.task_id
           FROM findings f JOIN credential_lifecycles l USING (credential_id)
           WHERE f.rule_id = 'credential_used_after_task' AND l.task_id IS NOT NULL
           ORDER BY f.finding_id LIMIT 1""",
    )[0]
    result = run_investigation(published, tmp_path, finding_id=finding_id)
    assert_complete(result)
    text = text_of(result.notebook)
    assert f"Task {task_id.replace('-', chr(92) + '-')} of agent" in text
    assert credential_id in text
    assert "credential uses after the task ended" in text
    assert "no use after the task ended" not in text  # this finding is about such uses


@pytest.mark.slow
def test_task_id(published: Path, tmp_path: Path):
    (task_id,) = query(
        published,
        """SELECT task_id FROM findings WHERE entity_type = 'task' AND rule_id <> 'task_behaviour_anomaly'
           ORDER BY priority DESC, finding_id LIMIT 1""",
    )[0]
    result = run_investigation(published, tmp_path, task_id=task_id)
    assert result.notebook.name == f"investigate_{task_id}.ipynb"
    assert_complete(result)
    assert "evidence of" in text_of(result.notebook)


@pytest.mark.slow
def test_unknown_finding_raises_naming_it(published: Path, tmp_path: Path):
    with pytest.raises(InvestigationError, match="no such finding: 'f_does_not_exist'") as err:
        run_investigation(published, tmp_path, finding_id="f_does_not_exist")
    assert err.value.ename == "ValueError"
    assert "Traceback" not in str(err.value) and len(str(err.value)) < 400
    with pytest.raises(InvestigationError, match="no such task: 'task-nope'"):
        run_investigation(published, tmp_path, task_id="task-nope")


@pytest.mark.slow
@pytest.mark.parametrize("bad_id", INJECTION_IDS)
def test_injection_looking_id_is_just_not_found(published: Path, tmp_path: Path, bad_id: str):
    before = query(published, "SELECT count(*) FROM findings")
    with pytest.raises(InvestigationError) as err:
        run_investigation(published, tmp_path, finding_id=bad_id)
    # Bound as a value: an id no finding has, not SQL (pasted, it would match or fail to parse).
    assert err.value.evalue.startswith(f"no such finding: {bad_id!r}")
    assert query(published, "SELECT count(*) FROM findings") == before


@pytest.mark.slow
def test_agent_finding_and_recommendations(published: Path, tmp_path: Path):
    """An agent finding goes to the agent's latest flagged task; its recommendations are shown."""
    db = tmp_path / "chainwatch_published.duckdb"
    shutil.copy(published, db)
    agent_id, task_id = query(
        db,
        """SELECT f.agent_id, t.task_id FROM findings f JOIN tasks t USING (task_id)
           ORDER BY t.started_at DESC, t.task_id DESC LIMIT 1""",
    )[0]
    con = duckdb.connect(str(db))
    con.execute(
        """INSERT INTO findings (finding_id, rule_id, title, severity, entity_type, entity_id,
               agent_id, evidence_event_ids, detail, status, priority)
           VALUES ('f_agent_test', 'agent_rule', 'An agent finding', 'low', 'agent', ?, ?, [],
               'about the agent', 'new', 10)""",
        [agent_id, agent_id],
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS recommendations (agent_id VARCHAR, category VARCHAR,
               item VARCHAR, access VARCHAR, recommendation VARCHAR)"""
    )
    con.execute(
        """INSERT INTO recommendations (agent_id, category, item, access, recommendation)
           VALUES (?, 'scope', 'secret/payroll', 'unused', 'drop the unused grant secret/payroll'),
                  ('someone-else', 'ttl', 'vault_token', 'ttl', 'not this agent')""",
        [agent_id],
    )
    con.close()
    result = run_investigation(db, tmp_path / "out", finding_id="f_agent_test")
    assert_complete(result)
    text = text_of(result.notebook)
    assert f"Task {task_id.replace('-', chr(92) + '-')} of agent" in text
    assert "drop the unused grant secret/payroll" in text and "not this agent" not in text


@pytest.mark.slow
def test_without_recommendations_table(published: Path, tmp_path: Path):
    """An analyst database from before the recommendations table: the notebook says so."""
    db = tmp_path / "chainwatch_published.duckdb"
    shutil.copy(published, db)
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE IF EXISTS recommendations")
    (task_id,) = con.execute("SELECT task_id FROM tasks ORDER BY task_id LIMIT 1").fetchone()
    con.close()
    result = run_investigation(db, tmp_path / "out", task_id=task_id)
    assert_complete(result)
    assert "no recommendations table in this analyst database" in text_of(result.notebook)


@pytest.mark.slow
def test_refuses_the_warehouse(published: Path, tmp_path: Path):
    """Only the published analyst database is read, never the pipeline's warehouse."""
    warehouse = published.with_name("chainwatch.duckdb")
    (finding_id,) = query(published, "SELECT finding_id FROM findings LIMIT 1")[0]
    with pytest.raises(InvestigationError, match="not a published analyst database"):
        run_investigation(warehouse, tmp_path, finding_id=finding_id)
