"""A one-page HTML report of a published analyst database, for people who do not query DuckDB.

``write_report(published_db, out)`` reads the snapshot (read-only; its queries are the files
``sql/report_*.sql``, one per query, run with bound parameters) and writes one self-contained page:
no script, no network (a Content-Security-Policy forbids both), inline CSS, charts as inline SVG
drawn here.

Every value shown comes from logs and is HTML-escaped. A snapshot that lacks a table the report
reads (an older or hand-made one; an empty run publishes no ``task_risk``) gets an empty stand-in
for it, a temporary view on the read-only connection, and the page names what was missing; the
sections then say "nothing found" instead of failing.
"""

from __future__ import annotations

import html
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from detectors.core.sqlfiles import load_sql
from detectors.core.warehouse import connect

SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "informational")
SEVERITY_COLOURS = {
    "critical": "#7f1d1d",
    "high": "#dc2626",
    "medium": "#f59e0b",
    "low": "#3b82f6",
    "informational": "#9ca3af",
}
SEVERITY_SHORT = {
    "critical": "crit",
    "high": "high",
    "medium": "med",
    "low": "low",
    "informational": "info",
}
OTHER_COLOUR = "#6b7280"
RECOMMENDATION_ROWS = 200
RECOMMENDATION_COLUMNS = ("agent_id", "category", "item", "access", "recommendation")
RECOMMENDATION_MAX_COLUMNS = 8
DETAIL_CHARS = 240

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
        title = "chainwatch report" + (f" — {_fmt(published)} UTC" if published else "")
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
                f"<title>{_e(title)}</title>",
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
                f"<code>{_e(db_name)}</code>. Self-contained: no scripts, no network.</footer>",
                "</body>",
                "</html>",
                "",
            ]
        )

    # header

    def _header(self, stand_ins: tuple[str, ...], db_name: str) -> str:
        s = self.snapshot
        published = f"{_fmt(s['published_at'])} UTC" if s["published_at"] else "unknown"
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
            f'<div class="stat"><dt>{_e(label)}</dt>'
            f'<dd id="stat-{key}" data-value="{_e(_raw(value))}">{_e(_fmt(value))}</dd></div>'
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
                    f"<code>{_e(r)}</code>"
                    + (f" columns {', '.join(f'<code>{_e(c)}</code>' for c in cs)}" if cs else "")
                    for r, cs in lacking.items()
                )
                + ": what depends on them is shown empty.</p>"
            )
        return (
            "<header>"
            "<h1>chainwatch report</h1>"
            f'<p class="meta">Snapshot published <strong id="published-at">{_e(published)}'
            f'</strong> · chainwatch <span id="version">{_e(s["chainwatch_version"] or "unknown")}'
            f"</span> · <code>{_e(db_name)}</code></p>"
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
            parts.append(_empty("no findings in this snapshot."))
        else:
            first, last = window
            days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            params = {"first_day": first, "last_day": last}
            by_day = _rows(self.con, "report_findings_by_day", **params)
            by_rule = _rows(self.con, "report_findings_by_rule_day", **params)
            shown = sum(r["findings"] for r in by_day)
            parts.append(
                f"<p>All findings (any status) by the day they were first seen, "
                f"{_e(_fmt(first))} to {_e(_fmt(last))}: "
                f'<strong id="window-findings">{shown:,}</strong> of {self.snapshot["findings"]:,}.'
                "</p>"
            )
            parts.append(self._day_chart(days, by_day))
            parts.append("<h3>By rule and day</h3>")
            parts.append(_heatmap(days, by_rule))
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
            f'<span class="key"><i style="background:{_colour(s)}"></i>{_e(s)}</span>'
            for s in order
        )
        return f'<div class="legend">{legend}</div>' + _stacked_bars(days, counts, order)

    def _urgent_table(self) -> str:
        rows = _rows(self.con, "report_urgent_findings", limit=self.top)
        if not rows:
            return _empty("no open findings.")
        body = "".join(
            "<tr>"
            f"<td class=num>{_e(_fmt(r['priority']))}</td>"
            f"<td>{_severity(r['severity'])}</td>"
            f"<td class=num>{_e(_fmt(r['risk_score']))}</td>"
            f"<td><code>{_e(r['rule_id'])}</code><br><small>{_e(r['title'])}</small></td>"
            f"<td class=id>{_e(_fmt(r['agent_id']))}</td><td class=id>{_e(_fmt(r['task_id']))}</td>"
            f"<td>{_e(_fmt(r['last_seen']))}</td>"
            f"<td class=detail>{_clip(r['detail'])}</td>"
            "</tr>"
            for r in rows
        )
        return (
            f"<p>The {len(rows)} most urgent of "
            f"{_plural(self.snapshot['open_findings'], 'open finding')} "
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
            parts.append(_empty("no agents in this snapshot."))
            parts.append("</section>")
            return "\n".join(parts)
        parts.append(
            f"<p>The {_plural(len(rows), 'agent')} whose riskiest task scored highest (task risk 0–100: rule "
            "findings raised by the task's anomaly percentile), then by finding priority.</p>"
        )
        scored = [r for r in rows if r["max_task_risk"] is not None]
        if scored:
            self.charts += 1
            parts.append(
                _hbars(
                    [
                        (
                            r["agent_id"],
                            float(r["max_task_risk"]),
                            f"{_fmt(r['agent_id'])}: riskiest task {_fmt(r['riskiest_task'])} "
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
            f"<td class=id>{_e(_fmt(r['agent_id']))}</td><td>{_e(_fmt(r['peer_group']))}</td>"
            f"<td class=num>{_e(_fmt(r['tasks']))}</td>"
            f"<td class=num>{_e(_fmt(r['max_task_risk']))}</td>"
            f"<td class=id>{_e(_fmt(r['riskiest_task']))}</td>"
            f"<td class=num>{_e(_fmt(r['open_findings']))}</td>"
            + "".join(f"<td class=num>{_e(_fmt(r[f'open_{s}']))}</td>" for s in SEVERITIES)
            + f"<td class=num>{_e(_fmt(r['max_priority']))}</td>"
            f"<td class=num>{_e(_fmt(r['standing_credential_hours']))}</td>"
            "</tr>"
            for r in rows
        )
        heads = "".join(f"<th>{_e(SEVERITY_SHORT[s])}</th>" for s in SEVERITIES)
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
            parts.append(_empty("no credential stayed usable after its task ended."))
            parts.append("</section>")
            return "\n".join(parts)
        parts.append(
            "<p>Hours of validity credentials kept after their task ended, summed per agent: "
            f"{_e(_fmt(s['standing_credential_hours']))} hours over "
            f"{_plural(s['credentials_outliving_task'], 'credential')} in all.</p>"
        )
        self.charts += 1
        parts.append(
            _hbars(
                [
                    (
                        r["agent_id"],
                        float(r["standing_credential_hours"]),
                        f"{_fmt(r['agent_id'])}: {_fmt(r['standing_credential_hours'])} h over "
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
            parts.append(_empty("no credential with a known task end outlived it."))
        else:
            body = "".join(
                "<tr>"
                f"<td><code>{_e(_fmt(r['credential_id']))}</code></td>"
                f"<td>{_e(_fmt(r['credential_kind']))}</td>"
                f"<td class=id>{_e(_fmt(r['agent_id']))}</td><td class=id>{_e(_fmt(r['task_id']))}</td>"
                f"<td>{_e(_fmt(r['task_ended_at']))}</td><td>{_e(_fmt(r['validity_end']))}</td>"
                f"<td>{_e(_fmt(r['ended_by']))}</td>"
                f"<td class=num>{_e(_fmt(r['hours_after_task']))}</td>"
                f"<td class=num>{_e(_fmt(r['uses_after_task_end']))}</td>"
                "</tr>"
                for r in outlived
            )
            parts.append(
                f"<p>The {_plural(len(outlived), 'credential')} usable longest after their task ended "
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
                parts.append(_empty("the recommendations table is empty."))
            else:
                names = [n for n in rows[0] if n != "report_rows_total"]
                columns = [n for n in RECOMMENDATION_COLUMNS if n in names]
                columns += [n for n in names if n not in columns]
                columns = columns[:RECOMMENDATION_MAX_COLUMNS]
                head = "".join(f"<th>{_e(n)}</th>" for n in columns)
                shown = (
                    f" (the first {len(rows)} shown)" if len(rows) < self.recommendations else ""
                )
                body = "".join(
                    "<tr>" + "".join(f"<td>{_clip(r[n])}</td>" for n in columns) + "</tr>"
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


# --- charts (inline SVG) -------------------------------------------------------------------------


def _nice_step(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _axis_max(value: float, ticks: int = 4) -> tuple[float, float]:
    """(axis maximum, tick step) for data up to ``value``."""
    step = _nice_step(value / ticks) if value > 0 else 1.0
    return max(step, step * math.ceil(value / step)), step


def _svg(width: int, height: int, label: str, kind: str, content: list[str]) -> str:
    return (
        f'<svg class="chart {kind}" role="img" aria-label="{_e(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{_e(label)}</title>'
        + "".join(content)
        + "</svg>"
    )


def _stacked_bars(days: list[date], counts: dict[date, dict[str, int]], order: list[str]) -> str:
    """Vertical bars, one per day, stacked by severity."""
    width, height = 760, 260
    left, right, top, bottom = 44, 12, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(counts.get(d, {}).values()) for d in days]
    ymax, step = _axis_max(max(totals, default=0))
    content: list[str] = []
    tick = 0.0
    while tick <= ymax + 1e-9:
        y = top + plot_h - tick / ymax * plot_h
        content.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_e(_fmt(tick))}</text>"
        )
        tick += step
    slot = plot_w / len(days)
    bar_w = max(1.0, min(48.0, slot * 0.7))
    label_every = math.ceil(len(days) / 12)
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for severity in order:
            n = counts.get(day, {}).get(severity, 0)
            if not n:
                continue
            h = n / ymax * plot_h
            y -= h
            content.append(
                f'<rect class="bar sev-{_e(severity)}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{_colour(severity)}">'
                f"<title>{_e(f'{day.isoformat()} · {severity}: {n}')}</title></rect>"
            )
        if totals[i] and len(days) <= 31:
            content.append(
                f'<text class="total" x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" '
                f'text-anchor="middle">{totals[i]}</text>'
            )
        if i % label_every == 0:
            content.append(
                f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle">{_e(day.strftime("%m-%d"))}</text>'
            )
    content.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}"/>'
    )
    return _svg(width, height, "Findings per day by severity", "findings-by-day", content)


def _hbars(
    rows: list[tuple[Any, float, str]],
    *,
    label: str,
    kind: str,
    colour: str,
    xmax: float | None = None,
) -> str:
    """Horizontal bars: one (name, value, tooltip) per row, the value printed at the bar's end."""
    width, name_w, value_w, row_h, bar_h, top = 760, 180, 70, 24, 16, 8
    height = top * 2 + row_h * len(rows)
    scale_max = xmax or _axis_max(max((v for _, v, _ in rows), default=0))[0]
    plot_w = width - name_w - value_w
    content: list[str] = []
    for i, (name, value, tooltip) in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, value / scale_max * plot_w) if value > 0 else 0.0
        text = _fmt(name)
        short = text if len(text) <= 24 else text[:23] + "…"
        content.append(
            f'<g class="row"><title>{_e(tooltip)}</title>'
            f'<text class="name" x="{name_w - 8}" y="{y + bar_h - 3}" text-anchor="end">'
            f"{_e(short)}</text>"
            f'<rect class="bar" x="{name_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
            f'fill="{colour}"/>'
            f'<text class="value" x="{name_w + w + 6:.1f}" y="{y + bar_h - 3}">'
            f"{_e(_fmt(value))}</text></g>"
        )
    return _svg(width, height, label, kind, content)


def _heatmap(days: list[date], rows: list[dict[str, Any]]) -> str:
    """A rule × day table, cells shaded by count."""
    if not rows:
        return _empty("no findings in this window.")
    cells: dict[str, dict[date, int]] = defaultdict(dict)
    titles: dict[str, str] = {}
    for r in rows:
        cells[r["rule_id"]][r["day"]] = r["findings"]
        titles[r["rule_id"]] = r["title"]
    rules = sorted(cells, key=lambda rule: (-sum(cells[rule].values()), str(rule)))
    peak = max(n for per_day in cells.values() for n in per_day.values())
    head = "".join(f'<th title="{_e(d.isoformat())}">{_e(d.strftime("%m-%d"))}</th>' for d in days)
    body = []
    for rule in rules:
        tds = []
        for d in days:
            n = cells[rule].get(d, 0)
            if not n:
                tds.append("<td></td>")
                continue
            alpha = 0.15 + 0.85 * n / peak
            ink = "#fff" if alpha > 0.55 else "#111"
            tds.append(
                f'<td class="cell num" data-count="{n}" style="background:rgba(185,28,28,{alpha:.2f});'
                f'color:{ink}" title="{_e(f"{rule} on {d.isoformat()}: {n}")}">{n}</td>'
            )
        body.append(
            f"<tr><th class=rule><code>{_e(rule)}</code><br><small>{_e(titles[rule])}</small></th>"
            + "".join(tds)
            + f"<td class=num><strong>{sum(cells[rule].values())}</strong></td></tr>"
        )
    return (
        '<div class="scroll"><table class="heatmap" id="rule-day-heatmap"><thead><tr><th>Rule</th>'
        f"{head}<th>Total</th></tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


# --- formatting ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """HTML-escaped text (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """A value as the page shows it (not yet escaped)."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _raw(value: Any) -> str:
    return "" if value is None else str(value)


def _clip(value: Any, limit: int = DETAIL_CHARS) -> str:
    """Escaped text cut to ``limit`` characters; the whole text in the tooltip."""
    text = _fmt(value)
    if len(text) <= limit:
        return _e(text)
    return f'<span title="{_e(text)}">{_e(text[: limit - 1])}…</span>'


def _colour(severity: str) -> str:
    return SEVERITY_COLOURS.get(severity, OTHER_COLOUR)


def _severity(severity: Any) -> str:
    return (
        f'<span class="sev" style="background:{_colour(str(severity))}">{_e(_fmt(severity))}</span>'
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _empty(what: str) -> str:
    return f'<p class="empty">Nothing found: {_e(what)}</p>'


CSS = """
:root { color-scheme: light; --ink: #111827; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
  sans-serif; color: var(--ink); background: #f9fafb; }
header, nav, main, footer { max-width: 1120px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 20px; }
h1 { margin: 0 0 4px; font-size: 24px; }
h2 { margin: 28px 0 8px; font-size: 19px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { margin: 20px 0 6px; font-size: 15px; }
.meta, footer, small { color: var(--muted); }
footer { padding: 24px 20px 40px; font-size: 12px; }
nav { padding-top: 8px; }
a { color: #1d4ed8; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px;
  margin: 12px 0; }
.stat { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.stat dt { font-size: 12px; color: var(--muted); }
.stat dd { margin: 2px 0 0; font-size: 22px; font-weight: 600; }
.note { background: #fffbeb; border: 1px solid #fde68a; padding: 6px 10px; border-radius: 6px; }
.empty { color: var(--muted); font-style: italic; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 4px 16px 16px;
  margin: 16px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
thead th { background: #f3f4f6; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.id { white-space: nowrap; }
td.detail { max-width: 380px; overflow-wrap: anywhere; }
code { font-size: 12px; overflow-wrap: break-word; }
.heatmap td.cell { text-align: center; min-width: 34px; }
.heatmap th.rule { font-weight: normal; min-width: 220px; }
.sev { color: #fff; border-radius: 4px; padding: 1px 6px; font-size: 12px; }
.legend { margin: 4px 0; font-size: 12px; }
.legend .key { margin-right: 12px; white-space: nowrap; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 6px 0; }
svg.chart text { font-size: 11px; fill: #374151; }
svg.chart .grid { stroke: var(--line); }
svg.chart .axis { stroke: #9ca3af; }
svg.chart .total { font-weight: 600; }
"""
