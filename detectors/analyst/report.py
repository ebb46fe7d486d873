"""A one-page HTML report of a published analyst database, for people who do not query DuckDB.

``write_report(published_db, out)`` reads the snapshot (read-only; its queries are the files
``sql/report_*.sql``, one per query, run with bound parameters) and writes one self-contained page:
no script, no network (a Content-Security-Policy forbids both), inline CSS, charts as inline SVG
drawn in :mod:`detectors.analyst.report_html`.

Every value shown comes from logs and is HTML-escaped. A snapshot that lacks a table the report
reads (an older or hand-made one; an empty run publishes no ``task_risk``) gets an empty stand-in
for it, a temporary view on the read-only connection, and the page names what was missing; the
sections then say "nothing found" instead of failing.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from detectors.analyst.report_html import (
    CSS,
    SEVERITIES,
    SEVERITY_SHORT,
    clip,
    empty_note,
    esc,
    fmt,
    hbars,
    heatmap,
    plural,
    raw,
    severity_badge,
    severity_colour,
    stacked_bars,
)
from detectors.core.sqlfiles import load_sql
from detectors.core.warehouse import connect

RECOMMENDATION_ROWS = 200
RECOMMENDATION_COLUMNS = ("agent_id", "category", "item", "access", "recommendation")
RECOMMENDATION_MAX_COLUMNS = 8

# What the report reads: relation -> {column: type}. A missing relation, or one missing some of
# these columns, is replaced for this connection by a temporary view (empty, or NULL columns added).
NEEDED: dict[str, dict[str, str]] = {
    "published_info": {"published_at": "TIMESTAMP", "chainwatch_version": "VARCHAR"},
    "findings": {
        "finding_id": "VARCHAR",
        "rule_id": "VARCHAR",
        "title": "VARCHAR",
        "severity": "VARCHAR",
        "first_seen": "TIMESTAMP",
    },
    "findings_open": {
        "finding_id": "VARCHAR",
        "priority": "INTEGER",
        "severity": "VARCHAR",
        "risk_score": "INTEGER",
        "rule_id": "VARCHAR",
        "title": "VARCHAR",
        "agent_id": "VARCHAR",
        "task_id": "VARCHAR",
        "last_seen": "TIMESTAMP",
        "detail": "VARCHAR",
    },
    "agent_summary": {
        "agent_id": "VARCHAR",
        "peer_group": "VARCHAR",
        "tasks": "BIGINT",
        "open_findings": "BIGINT",
        **{f"open_{s}": "BIGINT" for s in SEVERITIES},
        "max_priority": "INTEGER",
        "standing_credential_hours": "DOUBLE",
        "credentials_outliving_task": "BIGINT",
    },
    "task_risk": {"task_id": "VARCHAR", "agent_id": "VARCHAR", "risk_score": "INTEGER"},
    "tasks": {"task_id": "VARCHAR"},
    "credential_lifecycles": {
        "credential_id": "VARCHAR",
        "credential_kind": "VARCHAR",
        "agent_id": "VARCHAR",
        "task_id": "VARCHAR",
        "task_ended_at": "TIMESTAMP",
        "validity_end": "TIMESTAMP",
        "ended_by": "VARCHAR",
        "validity_after_task_s": "DOUBLE",
        "uses_after_task_end": "BIGINT",
    },
}


@dataclass(frozen=True)
class ReportSummary:
    """What one report shows: the headline numbers, as on the page."""

    path: Path
    published_at: datetime | None
    chainwatch_version: str | None
    findings: int
    open_findings: int
    agents: int
    charts: int
    recommendations: int | None  # None when the snapshot has no recommendations table
    stand_ins: tuple[str, ...]  # what the snapshot lacked, e.g. "task_risk" or "x.col"


def write_report(published_db: Path, out: Path, *, days: int = 60, top: int = 15) -> ReportSummary:
    """Write the HTML report of ``published_db`` to ``out``.

    ``days``: the findings charts cover at most this many days, ending on the last day with a
    finding. ``top``: rows in the agent, credential and open-finding tables and charts.
    """
    published_db, out = Path(published_db), Path(out)
    if not published_db.is_file():
        raise FileNotFoundError(
            f"no published analyst database at {published_db}: run `chainwatch run` first"
        )
    con = connect(published_db, read_only=True)
    try:
        stand_ins = _stand_in_missing(con)
        has_recommendations = _relation_columns(con, "recommendations") is not None
        page = _Page(con, days=max(1, days), top=max(1, top))
        body = page.render(stand_ins, has_recommendations, published_db.name)
    finally:
        con.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, out)
    snap = page.snapshot
    return ReportSummary(
        path=out,
        published_at=snap["published_at"],
        chainwatch_version=snap["chainwatch_version"],
        findings=snap["findings"],
        open_findings=snap["open_findings"],
        agents=snap["agents"],
        charts=page.charts,
        recommendations=page.recommendations,
        stand_ins=stand_ins,
    )


# --- reading -------------------------------------------------------------------------------------


def _rows(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of the one query in ``sql/<name>.sql`` as dicts, binding ``params`` by name."""
    (statement,) = load_sql(name)
    cursor = con.execute(statement, params or None)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _relation_columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str] | None:
    """Columns of a table or view in the snapshot's main schema; None when there is none."""
    cols = con.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_catalog = current_database() AND table_schema = 'main'
             AND table_name = $relation""",
        {"relation": relation},
    ).fetchall()
    return {c[0] for c in cols} or None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stand_in_missing(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """Temporary views for what the snapshot lacks, so every report query binds."""
    catalog = con.execute("SELECT current_database()").fetchone()[0]
    missing: list[str] = []
    for relation, needed in NEEDED.items():  # names and types from NEEDED, never from input
        have = _relation_columns(con, relation)
        if have is None:
            columns = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in needed.items())
            con.execute(f"CREATE TEMP VIEW {relation} AS SELECT {columns} WHERE false")
            missing.append(relation)
        elif lacking := [c for c in needed if c not in have]:
            extra = ", ".join(f"CAST(NULL AS {needed[c]}) AS {c}" for c in lacking)
            source = f"{_quote(catalog)}.main.{relation}"
            con.execute(f"CREATE TEMP VIEW {relation} AS SELECT *, {extra} FROM {source}")  # noqa: S608 - fixed names
            missing.extend(f"{relation}.{c}" for c in lacking)
    return tuple(missing)


# --- the page ------------------------------------------------------------------------------------


class _Page:
    """Runs the report's queries and renders the sections."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, days: int, top: int):
        self.con, self.days, self.top = con, days, top
        self.snapshot = _rows(con, "report_snapshot")[0]
        self.charts = 0
        self.recommendations: int | None = None

    def render(self, stand_ins: tuple[str, ...], has_recommendations: bool, db_name: str) -> str:
        sections = [
            self._findings_section(),
            self._agents_section(),
            self._standing_section(),
            self._recommendations_section(has_recommendations),
        ]
        published = self.snapshot["published_at"]
        title = "chainwatch report" + (f" — {fmt(published)} UTC" if published else "")
        return "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en">',
                "<head>",
                '<meta charset="utf-8">',
                # No script, no fetch of any kind: everything the page needs is in it.
                '<meta http-equiv="Content-Security-Policy" '
                "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{esc(title)}</title>",
                f"<style>{CSS}</style>",
                "</head>",
                "<body>",
                self._header(stand_ins, db_name),
                '<nav><a href="#findings">Findings</a> · <a href="#agents">Agents</a> · '
                '<a href="#standing">Standing credentials</a> · '
                '<a href="#recommendations">Recommendations</a></nav>',
                "<main>",
                *sections,
                "</main>",
                "<footer>Generated by chainwatch from the published analyst database "
                f"<code>{esc(db_name)}</code>. Self-contained: no scripts, no network.</footer>",
                "</body>",
                "</html>",
                "",
            ]
        )

    # header

    def _header(self, stand_ins: tuple[str, ...], db_name: str) -> str:
        s = self.snapshot
        published = f"{fmt(s['published_at'])} UTC" if s["published_at"] else "unknown"
        stats = [
            ("open-findings", "Open findings", s["open_findings"]),
            ("findings", "All findings", s["findings"]),
            ("open-critical", "Open critical", s["open_critical"]),
            ("open-high", "Open high", s["open_high"]),
            ("agents", "Agents", s["agents"]),
            ("tasks", "Tasks", s["tasks"]),
            ("outliving", "Credentials outliving their task", s["credentials_outliving_task"]),
            ("standing-hours", "Standing-credential hours", s["standing_credential_hours"]),
        ]
        cards = "".join(
            f'<div class="stat"><dt>{esc(label)}</dt>'
            f'<dd id="stat-{key}" data-value="{esc(raw(value))}">{esc(fmt(value))}</dd></div>'
            for key, label, value in stats
        )
        note = ""
        if stand_ins:
            lacking: dict[str, list[str]] = defaultdict(list)
            for missing in stand_ins:
                relation, _, column = missing.partition(".")
                lacking[relation] += [column] if column else []
            note = (
                '<p class="note" id="stand-ins">This snapshot lacks '
                + "; ".join(
                    f"<code>{esc(r)}</code>"
                    + (f" columns {', '.join(f'<code>{esc(c)}</code>' for c in cs)}" if cs else "")
                    for r, cs in lacking.items()
                )
                + ": what depends on them is shown empty.</p>"
            )
        return (
            "<header>"
            "<h1>chainwatch report</h1>"
            f'<p class="meta">Snapshot published <strong id="published-at">{esc(published)}'
            f'</strong> · chainwatch <span id="version">{esc(s["chainwatch_version"] or "unknown")}'
            f"</span> · <code>{esc(db_name)}</code></p>"
            f'<dl class="stats">{cards}</dl>{note}'
            "</header>"
        )

    # findings

    def _window(self) -> tuple[date, date] | None:
        first, last = self.snapshot["first_finding_day"], self.snapshot["last_finding_day"]
        if first is None or last is None:
            return None
        return max(first, last - timedelta(days=self.days - 1)), last

    def _findings_section(self) -> str:
        parts = ['<section id="findings">', "<h2>Findings over time</h2>"]
        window = self._window()
        if window is None:
            parts.append(empty_note("no findings in this snapshot."))
        else:
            first, last = window
            days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            params = {"first_day": first, "last_day": last}
            by_day = _rows(self.con, "report_findings_by_day", **params)
            by_rule = _rows(self.con, "report_findings_by_rule_day", **params)
            shown = sum(r["findings"] for r in by_day)
            parts.append(
                f"<p>All findings (any status) by the day they were first seen, "
                f"{esc(fmt(first))} to {esc(fmt(last))}: "
                f'<strong id="window-findings">{shown:,}</strong> of {self.snapshot["findings"]:,}.'
                "</p>"
            )
            parts.append(self._day_chart(days, by_day))
            parts.append("<h3>By rule and day</h3>")
            parts.append(heatmap(days, by_rule))
        parts.append("<h3>Most urgent open findings</h3>")
        parts.append(self._urgent_table())
        parts.append("</section>")
        return "\n".join(parts)

    def _day_chart(self, days: list[date], rows: list[dict[str, Any]]) -> str:
        counts: dict[date, dict[str, int]] = defaultdict(dict)
        for r in rows:
            counts[r["day"]][r["severity"]] = r["findings"]
        present = {r["severity"] for r in rows}
        order = [s for s in SEVERITIES if s in present] + sorted(present - set(SEVERITIES))
        self.charts += 1
        legend = "".join(
            f'<span class="key"><i style="background:{severity_colour(s)}"></i>{esc(s)}</span>'
            for s in order
        )
        return f'<div class="legend">{legend}</div>' + stacked_bars(days, counts, order)

    def _urgent_table(self) -> str:
        rows = _rows(self.con, "report_urgent_findings", limit=self.top)
        if not rows:
            return empty_note("no open findings.")
        body = "".join(
            "<tr>"
            f"<td class=num>{esc(fmt(r['priority']))}</td>"
            f"<td>{severity_badge(r['severity'])}</td>"
            f"<td class=num>{esc(fmt(r['risk_score']))}</td>"
            f"<td><code>{esc(r['rule_id'])}</code><br><small>{esc(r['title'])}</small></td>"
            f"<td class=id>{esc(fmt(r['agent_id']))}</td><td class=id>{esc(fmt(r['task_id']))}</td>"
            f"<td>{esc(fmt(r['last_seen']))}</td>"
            f"<td class=detail>{clip(r['detail'])}</td>"
            "</tr>"
            for r in rows
        )
        return (
            f"<p>The {len(rows)} most urgent of "
            f"{plural(self.snapshot['open_findings'], 'open finding')} "
            "(priority, then risk).</p>"
            '<div class="scroll"><table id="urgent-findings"><thead><tr><th>Priority</th>'
            "<th>Severity</th><th>Risk</th><th>Rule</th><th>Agent</th><th>Task</th>"
            f"<th>Last seen</th><th>Detail</th></tr></thead><tbody>{body}</tbody></table></div>"
        )

    # agents

    def _agents_section(self) -> str:
        parts = ['<section id="agents">', "<h2>Top agents by risk</h2>"]
        rows = _rows(self.con, "report_top_agents", limit=self.top)
        if not rows:
            parts.append(empty_note("no agents in this snapshot."))
            parts.append("</section>")
            return "\n".join(parts)
        parts.append(
            f"<p>The {plural(len(rows), 'agent')} whose riskiest task scored highest (task risk 0–100: rule "
            "findings raised by the task's anomaly percentile), then by finding priority.</p>"
        )
        scored = [r for r in rows if r["max_task_risk"] is not None]
        if scored:
            self.charts += 1
            parts.append(
                hbars(
                    [
                        (
                            r["agent_id"],
                            float(r["max_task_risk"]),
                            f"{fmt(r['agent_id'])}: riskiest task {fmt(r['riskiest_task'])} "
                            f"scored {r['max_task_risk']}",
                        )
                        for r in scored
                    ],
                    label="Riskiest task score per agent",
                    kind="agent-risk",
                    colour="#b91c1c",
                    xmax=100.0,
                )
            )
        body = "".join(
            "<tr>"
            f"<td class=id>{esc(fmt(r['agent_id']))}</td><td>{esc(fmt(r['peer_group']))}</td>"
            f"<td class=num>{esc(fmt(r['tasks']))}</td>"
            f"<td class=num>{esc(fmt(r['max_task_risk']))}</td>"
            f"<td class=id>{esc(fmt(r['riskiest_task']))}</td>"
            f"<td class=num>{esc(fmt(r['open_findings']))}</td>"
            + "".join(f"<td class=num>{esc(fmt(r[f'open_{s}']))}</td>" for s in SEVERITIES)
            + f"<td class=num>{esc(fmt(r['max_priority']))}</td>"
            f"<td class=num>{esc(fmt(r['standing_credential_hours']))}</td>"
            "</tr>"
            for r in rows
        )
        heads = "".join(f"<th>{esc(SEVERITY_SHORT[s])}</th>" for s in SEVERITIES)
        parts.append(
            '<div class="scroll"><table id="top-agents"><thead><tr><th>Agent</th>'
            "<th>Peer group</th><th>Tasks</th><th>Max task risk</th><th>Riskiest task</th>"
            f"<th>Open findings</th>{heads}<th>Max priority</th><th>Standing h</th></tr></thead>"
            f"<tbody>{body}</tbody></table></div>"
        )
        parts.append("</section>")
        return "\n".join(parts)

    # standing credentials

    def _standing_section(self) -> str:
        s = self.snapshot
        parts = ['<section id="standing">', "<h2>Standing credentials</h2>"]
        rows = _rows(self.con, "report_standing_by_agent", limit=self.top)
        if not rows:
            parts.append(empty_note("no credential stayed usable after its task ended."))
            parts.append("</section>")
            return "\n".join(parts)
        parts.append(
            "<p>Hours of validity credentials kept after their task ended, summed per agent: "
            f"{esc(fmt(s['standing_credential_hours']))} hours over "
            f"{plural(s['credentials_outliving_task'], 'credential')} in all.</p>"
        )
        self.charts += 1
        parts.append(
            hbars(
                [
                    (
                        r["agent_id"],
                        float(r["standing_credential_hours"]),
                        f"{fmt(r['agent_id'])}: {fmt(r['standing_credential_hours'])} h over "
                        f"{r['credentials_outliving_task']} credential(s)",
                    )
                    for r in rows
                ],
                label="Standing-credential hours per agent",
                kind="standing-hours",
                colour="#7c3aed",
            )
        )
        outlived = _rows(self.con, "report_outlived_credentials", limit=self.top)
        parts.append("<h3>What outlived its task</h3>")
        if not outlived:
            parts.append(empty_note("no credential with a known task end outlived it."))
        else:
            body = "".join(
                "<tr>"
                f"<td><code>{esc(fmt(r['credential_id']))}</code></td>"
                f"<td>{esc(fmt(r['credential_kind']))}</td>"
                f"<td class=id>{esc(fmt(r['agent_id']))}</td><td class=id>{esc(fmt(r['task_id']))}</td>"
                f"<td>{esc(fmt(r['task_ended_at']))}</td><td>{esc(fmt(r['validity_end']))}</td>"
                f"<td>{esc(fmt(r['ended_by']))}</td>"
                f"<td class=num>{esc(fmt(r['hours_after_task']))}</td>"
                f"<td class=num>{esc(fmt(r['uses_after_task_end']))}</td>"
                "</tr>"
                for r in outlived
            )
            parts.append(
                f"<p>The {plural(len(outlived), 'credential')} usable longest after their task ended "
                "(ended by: revoked, expired, still valid, or open when no end is known).</p>"
                '<div class="scroll"><table id="outlived-credentials"><thead><tr>'
                "<th>Credential</th><th>Kind</th><th>Agent</th><th>Task</th><th>Task ended</th>"
                "<th>Validity end</th><th>Ended by</th><th>Hours after task</th>"
                f"<th>Uses after task</th></tr></thead><tbody>{body}</tbody></table></div>"
            )
        parts.append("</section>")
        return "\n".join(parts)

    # recommendations

    def _recommendations_section(self, present: bool) -> str:
        parts = ['<section id="recommendations">', "<h2>Recommendations</h2>"]
        if not present:
            parts.append(
                '<p class="empty" id="recommendations-absent">'
                "No recommendations table in this snapshot.</p>"
            )
        else:
            rows = _rows(self.con, "report_recommendations", limit=RECOMMENDATION_ROWS)
            self.recommendations = rows[0]["report_rows_total"] if rows else 0
            if not rows:
                parts.append(empty_note("the recommendations table is empty."))
            else:
                names = [n for n in rows[0] if n != "report_rows_total"]
                columns = [n for n in RECOMMENDATION_COLUMNS if n in names]
                columns += [n for n in names if n not in columns]
                columns = columns[:RECOMMENDATION_MAX_COLUMNS]
                head = "".join(f"<th>{esc(n)}</th>" for n in columns)
                shown = (
                    f" (the first {len(rows)} shown)" if len(rows) < self.recommendations else ""
                )
                body = "".join(
                    "<tr>" + "".join(f"<td>{clip(r[n])}</td>" for n in columns) + "</tr>"
                    for r in rows
                )
                parts.append(
                    f'<p><strong id="recommendation-count">{self.recommendations:,}</strong> '
                    f"recommendation{'' if self.recommendations == 1 else 's'}{shown}.</p>"
                    '<div class="scroll"><table id="recommendations-table"><thead><tr>'
                    f"{head}</tr></thead><tbody>{body}</tbody></table></div>"
                )
        parts.append("</section>")
        return "\n".join(parts)
