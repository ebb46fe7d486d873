"""The HTML report: rendered in a real headless browser (Debian's chromium, driven by Playwright),
its numbers checked against the published database; escaping, secrets and an empty snapshot."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from detectors.analyst.report import ReportSummary, write_report
from detectors.analyst.report_html import axis_max, fmt, nice_step
from detectors.core.warehouse import connect
from detectors.findings.snapshot import publish_analyst_db
from pipelines.run import run_landing
from tests.install_chromium import ensure_chromium

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples"
SECTIONS = ["Findings over time", "Top agents by risk", "Standing credentials", "Recommendations"]

HOSTILE_AGENT = "<script>alert(1)</script>"
HOSTILE_DETAIL = "\"><img src=x onerror=alert(2)> leaked AKIAIOSFODNN7EXAMPLE & 'quotes'"
HOSTILE_RULE = "rule\"'><svg onload=alert(3)>"
HOSTILE_TASK = "task<iframe src=javascript:alert(4)>"
HOSTILE_VERSION = "9.9<b>bold</b>"
HOSTILE_ITEM = "<style>body{display:none}</style>s3:GetObject"
# Strings that look like secrets; the report may only show one when the database holds it.
SECRET_PATTERNS = [
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",
    r"hvs\.[A-Za-z0-9_-]{20,}",
    r"gh[pousr]_[A-Za-z0-9]{20,}",
    r"github_pat_\w{20,}",
    r"xox[abpr]-[A-Za-z0-9-]{10,}",
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}",
    r"chainwatch-dev-key-not-for-production",
]
# Relations whose text the report may show.
SHOWN_RELATIONS = [
    "findings",
    "agent_summary",
    "credential_lifecycles",
    "task_risk",
    "recommendations",
    "published_info",
]


@dataclass
class Report:
    db: Path
    path: Path
    summary: ReportSummary
    html: str


def _report(db: Path, out: Path, **options) -> Report:
    summary = write_report(db, out, **options)
    return Report(db, out, summary, out.read_text(encoding="utf-8"))


def _scalar(db: Path, sql: str, params: list | None = None):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params).fetchone()[0]


def _tables(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }


def _number(text: str) -> float:
    return float(text.replace(",", "").strip())


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory) -> Report:
    """The report of the published database of one real run over data/samples."""
    root = tmp_path_factory.mktemp("report_sample")
    for source in ("otlp", "vault", "cloudtrail", "native"):
        shutil.copytree(SAMPLES / source, root / "landing" / source)
    outcome = run_landing(root / "landing", root / "wh.duckdb", refit="auto")
    assert outcome.success, outcome
    db = root / "chainwatch_published.duckdb"
    assert db.is_file()
    return _report(db, root / "report.html")


@pytest.fixture(scope="module")
def empty_report(tmp_path_factory) -> Report:
    """The report of a snapshot published from a warehouse with nothing in it."""
    root = tmp_path_factory.mktemp("report_empty")
    con = connect(root / "wh.duckdb")
    try:
        publish_analyst_db(con, root / "published.duckdb", product_version="0.1.0")
    finally:
        con.close()
    return _report(root / "published.duckdb", root / "report.html")


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> Report:
    """A small hand-made snapshot whose log-derived values carry markup and a secret-looking key."""
    root = tmp_path_factory.mktemp("report_hostile")
    con = connect(root / "wh.duckdb")
    try:
        _fill_hostile(con)
        publish_analyst_db(con, root / "published.duckdb", product_version=HOSTILE_VERSION)
    finally:
        con.close()
    return _report(root / "published.duckdb", root / "report.html")


def _fill_hostile(con: duckdb.DuckDBPyConnection) -> None:
    t0, t1 = datetime(2026, 11, 1, 9), datetime(2026, 11, 1, 10)
    for i, (rule, severity, agent, detail) in enumerate(
        [
            (HOSTILE_RULE, "high", HOSTILE_AGENT, HOSTILE_DETAIL),
            ("credential_outlived_task", "<b>odd</b>", HOSTILE_AGENT, "x" * 600),
            ("credential_outlived_task", "low", "agent-ok", None),
        ]
    ):
        con.execute(
            """INSERT INTO findings (finding_id, rule_id, title, severity, risk_score, confidence,
                   analytic_type, entity_type, entity_id, agent_id, task_id, first_seen, last_seen,
                   evidence_event_ids, detail, status, first_detected_at, last_detected_at,
                   priority)
               VALUES (?, ?, ?, ?, 80, 'high', 'rule', 'task', ?, ?, ?, ?, ?, [], ?, 'new', ?, ?, ?)""",
            [f"f{i}", rule, f"title <u>{i}</u>", severity, HOSTILE_TASK, agent, HOSTILE_TASK]
            + [t0, t1, detail, t1, t1, 90 - i],
        )
    con.execute(
        """INSERT INTO tasks (task_id, agent_id, started_at, ended_at, start_source, end_source,
               status, actions, credentials_issued, updated_at)
           VALUES (?, ?, ?, ?, 'task_event', 'task_event', 'completed', 1, 1, ?)""",
        [HOSTILE_TASK, HOSTILE_AGENT, t0, t1, t1],
    )
    con.execute(
        """CREATE TABLE credential_lifecycles AS
           SELECT 'cred_<i>x</i>' AS credential_id, 'vault_token' AS credential_kind,
               $agent AS agent_id, $task AS task_id, $t0 AS issued_at, $t1 AS task_ended_at,
               $t1 + INTERVAL 5 HOUR AS validity_end, 'expired' AS ended_by,
               18000.0 AS validity_after_task_s, 2::BIGINT AS uses_after_task_end,
               ['<policy>'] AS scopes""",
        {"agent": HOSTILE_AGENT, "task": HOSTILE_TASK, "t0": t0, "t1": t1},
    )
    con.execute(
        """CREATE TABLE task_risk AS SELECT $task AS task_id, $agent AS agent_id,
               $t0 AS started_at, 1::BIGINT AS rule_findings, 80 AS max_rule_risk,
               99.0 AS anomaly_percentile, 91 AS risk_score""",
        {"agent": HOSTILE_AGENT, "task": HOSTILE_TASK, "t0": t0},
    )
    con.execute(
        """CREATE TABLE agent_peer_groups AS
           SELECT $agent AS agent_id, '<em>group</em>' AS peer_group, 'tools' AS method""",
        {"agent": HOSTILE_AGENT},
    )
    con.execute(
        """CREATE TABLE recommendations AS
           SELECT $agent AS agent_id, 'unused_scope' AS category, $item AS item,
               'read' AS access, 'Remove <b>it</b> & rotate' AS recommendation,
               ['a', '<b>'] AS evidence""",
        {"agent": HOSTILE_AGENT, "item": HOSTILE_ITEM},
    )


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's chromium, installed with apt once per session when missing and we are root."""
    path, message = ensure_chromium()
    if path is None:
        pytest.skip(f"no headless browser for the report test: {message}")
    print(f"chromium: {message}")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_path), args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@dataclass
class Opened:
    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.dialogs == []
        assert [u for u in self.requests if not u.startswith("file://")] == []


@contextmanager
def opened(browser, path: Path) -> Iterator[Opened]:
    """The report in a fresh page, with what the page logged, requested and tried to pop up."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = Opened(page)
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
    page.on("request", lambda r: seen.requests.append(r.url))
    page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        yield seen
    finally:
        page.close()


# --- the report in a browser ---------------------------------------------------------------------


def test_sample_report_renders_in_chromium(sample_report: Report, browser):
    db = sample_report.db
    with opened(browser, sample_report.path) as seen:
        page = seen.page
        seen.assert_clean()
        assert page.locator("h1").inner_text() == "chainwatch report"
        assert page.locator("h2").all_inner_texts() == SECTIONS
        assert {"By rule and day", "Most urgent open findings", "What outlived its task"} <= set(
            page.locator("h3").all_inner_texts()
        )

        charts = page.locator("svg.chart")
        assert charts.count() >= 3
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 0 and box["height"] > 0, i
            bar = charts.nth(i).locator("rect.bar").first.bounding_box()
            assert bar and bar["width"] > 0 and bar["height"] > 0, i

        def stat(key: str) -> float:
            return _number(page.locator(f"#stat-{key}").inner_text())

        assert stat("open-findings") == _scalar(db, "SELECT count(*) FROM findings_open") > 0
        assert stat("findings") == _scalar(db, "SELECT count(*) FROM findings")
        assert stat("open-high") == _scalar(
            db, "SELECT count(*) FROM findings_open WHERE severity = ?", ["high"]
        )
        assert stat("agents") == _scalar(db, "SELECT count(*) FROM agent_summary")
        assert stat("tasks") == _scalar(db, "SELECT count(*) FROM tasks")
        assert stat("outliving") == _scalar(
            db, "SELECT count(*) FROM credential_lifecycles WHERE validity_after_task_s > 0"
        )
        assert page.locator("#version").inner_text() == _scalar(
            db, "SELECT chainwatch_version FROM published_info"
        )

        # The sample spans two days, so the window holds every finding: per-day bars and the
        # rule x day cells add up to the findings table.
        cells = page.locator("#rule-day-heatmap td.cell").all_inner_texts()
        assert sum(int(c) for c in cells) == stat("findings")
        assert _number(page.locator("#window-findings").inner_text()) == stat("findings")
        days = _scalar(db, "SELECT count(DISTINCT CAST(first_seen AS DATE)) FROM findings")
        assert page.locator("#rule-day-heatmap thead th").count() == days + 2

        top_agent, top_risk = _top_agent(db)
        first_row = page.locator("#top-agents tbody tr").first.locator("td")
        assert first_row.nth(0).inner_text() == top_agent
        assert _number(first_row.nth(3).inner_text()) == top_risk
        assert page.locator("svg.agent-risk g.row text.name").first.text_content() == top_agent

        standing = _scalar(
            db, "SELECT count(*) FROM agent_summary WHERE standing_credential_hours > 0"
        )
        assert page.locator("svg.standing-hours g.row").count() == min(standing, 15)
        assert page.locator("#outlived-credentials tbody tr").count() == min(stat("outliving"), 15)

        if "recommendations" in _tables(db):
            assert _number(page.locator("#recommendation-count").inner_text()) == _scalar(
                db, "SELECT count(*) FROM recommendations"
            )
        else:
            assert page.locator("#recommendations-absent").inner_text() == (
                "No recommendations table in this snapshot."
            )


def _top_agent(db: Path) -> tuple[str, int]:
    """The agent with the riskiest task (ties: highest finding priority, then name)."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            """SELECT s.agent_id, max(t.risk_score) AS risk
               FROM agent_summary s JOIN task_risk t USING (agent_id)
               GROUP BY s.agent_id, s.max_priority, s.open_findings
               ORDER BY risk DESC, s.max_priority DESC NULLS LAST, s.open_findings DESC,
                   s.agent_id
               LIMIT 1"""
        ).fetchone()


def test_hostile_snapshot_renders_inert_in_chromium(hostile_report: Report, browser):
    with opened(browser, hostile_report.path) as seen:
        seen.assert_clean()  # no alert() dialog, no blocked-script error, no fetch
        page = seen.page
        assert page.locator("script, iframe, img, body style").count() == 0
        assert page.locator("#top-agents tbody td").first.inner_text() == HOSTILE_AGENT
        assert HOSTILE_DETAIL in page.locator("#urgent-findings").inner_text()
        assert page.locator("#version").inner_text() == HOSTILE_VERSION
        assert page.locator("body").is_visible()  # the injected <style> did not apply


def test_empty_report_renders_in_chromium(empty_report: Report, browser):
    with opened(browser, empty_report.path) as seen:
        seen.assert_clean()
        assert seen.page.locator("h2").all_inner_texts() == SECTIONS
        assert seen.page.locator("svg.chart").count() == 0


# --- the page as text ----------------------------------------------------------------------------


def test_summary_matches_the_database(sample_report: Report):
    db, summary = sample_report.db, sample_report.summary
    assert summary.path == sample_report.path
    assert summary.open_findings == _scalar(db, "SELECT count(*) FROM findings_open")
    assert summary.findings == _scalar(db, "SELECT count(*) FROM findings")
    assert summary.agents == _scalar(db, "SELECT count(*) FROM agent_summary")
    assert summary.published_at == _scalar(db, "SELECT published_at FROM published_info")
    assert summary.charts == 3
    assert summary.stand_ins == ()
    has_recommendations = "recommendations" in _tables(db)
    assert (summary.recommendations is not None) == has_recommendations


def test_page_is_self_contained(sample_report: Report):
    page = sample_report.html
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    for forbidden in ("<script", "<link", "<iframe", "<img", "@import", "url("):
        assert forbidden not in page.lower(), forbidden
    assert re.findall(r"\b(?:src|href)\s*=\s*(?![\"']?#)", page) == []  # in-page anchors only


def test_values_are_escaped(hostile_report: Report):
    page = hostile_report.html
    for raw in (HOSTILE_AGENT, HOSTILE_DETAIL, HOSTILE_RULE, HOSTILE_TASK, HOSTILE_VERSION):
        assert raw not in page
        assert html.escape(raw, quote=True) in page
    assert "<script" not in page and "<img" not in page and "<svg onload" not in page
    assert "<b>" not in page and "<style>body" not in page
    # The detail longer than the cut is shortened on the page, whole (escaped) in its tooltip.
    assert f'title="{"x" * 600}"' in page
    # Recommendations: every column shown, list values joined, markup escaped.
    assert hostile_report.summary.recommendations == 1
    assert html.escape(HOSTILE_ITEM) in page and "a, &lt;b&gt;" in page
    assert "task_risk" not in hostile_report.summary.stand_ins


@pytest.mark.parametrize("which", ["sample_report", "hostile_report", "empty_report"])
def test_no_secret_looking_string_that_is_not_in_the_database(which: str, request):
    report: Report = request.getfixturevalue(which)
    shown = html.unescape(report.html)
    found = {m for p in SECRET_PATTERNS for m in re.findall(p, shown)}
    in_db = _database_text(report.db)
    assert {s for s in found if s not in in_db} == set()
    if which == "hostile_report":
        assert found == {"AKIAIOSFODNN7EXAMPLE"}  # planted in a finding's detail: shown, escaped


def _database_text(db: Path) -> str:
    present = _tables(db)
    with duckdb.connect(str(db), read_only=True) as con:
        return "\n".join(
            con.execute(
                f"SELECT coalesce(string_agg(CAST(t AS VARCHAR), '\n'), '') FROM {r} t"
            ).fetchone()[0]
            for r in SHOWN_RELATIONS
            if r in present
        )


def test_empty_snapshot_says_nothing_found(empty_report: Report):
    page, summary = empty_report.html, empty_report.summary
    assert (summary.findings, summary.open_findings, summary.agents, summary.charts) == (0, 0, 0, 0)
    assert summary.recommendations is None
    assert "task_risk" in summary.stand_ins  # an empty run publishes none
    assert "credential_lifecycles.ended_by" in summary.stand_ins
    for stat in ("open-findings", "open-critical", "open-high", "agents", "outliving"):
        assert f'id="stat-{stat}" data-value="0">0<' in page, stat
    assert 'id="stand-ins">This snapshot lacks <code>task_risk</code>;' in page
    for message in (
        "Nothing found: no findings in this snapshot.",
        "Nothing found: no open findings.",
        "Nothing found: no agents in this snapshot.",
        "Nothing found: no credential stayed usable after its task ended.",
        "No recommendations table in this snapshot.",
    ):
        assert message in page, message
    assert '<svg class="chart' not in page


def test_missing_database_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="chainwatch run"):
        write_report(tmp_path / "absent.duckdb", tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_report_leaves_the_database_as_it_was(hostile_report: Report, tmp_path: Path):
    before = hashlib.sha256(hostile_report.db.read_bytes()).hexdigest()
    write_report(hostile_report.db, tmp_path / "again.html")
    assert hashlib.sha256(hostile_report.db.read_bytes()).hexdigest() == before
    assert (tmp_path / "again.html").read_text() == hostile_report.html  # and is reproducible
    assert not hostile_report.db.with_name(hostile_report.db.name + ".wal").exists()


def test_report_replaces_the_output_file(empty_report: Report, tmp_path: Path):
    out = tmp_path / "nested" / "report.html"
    out.parent.mkdir()
    out.write_text("old")
    write_report(empty_report.db, out)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


# --- helpers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "step"), [(0, 1), (0.3, 0.5), (1, 1), (1.5, 2), (3, 5), (7, 10), (15, 20), (250, 500)]
)
def test_nice_step(value, step):
    assert nice_step(value) == pytest.approx(step)


@pytest.mark.parametrize(
    ("value", "axis"), [(0, (1, 1)), (4, (4, 1)), (25, (30, 10)), (60, (60, 20)), (101, (150, 50))]
)
def test_axis_max(value, axis):
    assert axis_max(value) == pytest.approx(axis)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (1234, "1,234"),
        (2.0, "2"),
        (390.4, "390.40"),
        (True, "yes"),
        (datetime(2026, 11, 1, 9, 5, 3, 120), "2026-11-01 09:05:03"),
        (date(2026, 11, 1), "2026-11-01"),
        (["a", 1], "a, 1"),
    ],
)
def test_fmt(value, shown):
    assert fmt(value) == shown


def test_findings_charts_cover_the_last_days(tmp_path: Path):
    con = connect(tmp_path / "wh.duckdb")
    try:
        con.execute(
            """INSERT INTO findings (finding_id, rule_id, title, severity, risk_score, confidence,
                   analytic_type, entity_type, entity_id, first_seen, last_seen,
                   evidence_event_ids, status, first_detected_at, last_detected_at)
               SELECT 'f' || i, 'rule_' || (i % 3), 'Rule', ['high', 'low'][1 + i % 2], 50, 'high',
                   'rule', 'agent', 'a', TIMESTAMP '2026-01-01 12:00' + to_days(i // 2),
                   TIMESTAMP '2026-01-01 12:00' + to_days(i // 2), [], 'resolved',
                   TIMESTAMP '2026-06-01', TIMESTAMP '2026-06-01'
               FROM range(200) r(i)"""  # two findings a day for 100 days, all resolved
        )
        publish_analyst_db(con, tmp_path / "published.duckdb")
    finally:
        con.close()
    report = _report(tmp_path / "published.duckdb", tmp_path / "report.html", days=30)
    assert (report.summary.findings, report.summary.open_findings) == (200, 0)
    page = report.html
    assert 'id="window-findings">60<' in page  # the last 30 days of 100, at two a day
    assert "2026-03-12 to 2026-04-10" in page
    assert page.count('<rect class="bar sev-high"') == 30
    assert "Nothing found: no open findings." in page
