"""The report's HTML building blocks: escaping and formatting of values, the inline SVG charts
and the page's CSS. Nothing here reads the database (see :mod:`detectors.analyst.report`)."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from datetime import date, datetime
from typing import Any

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
DETAIL_CHARS = 240


# --- charts (inline SVG) -------------------------------------------------------------------------


def nice_step(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def axis_max(value: float, ticks: int = 4) -> tuple[float, float]:
    """(axis maximum, tick step) for data up to ``value``."""
    step = nice_step(value / ticks) if value > 0 else 1.0
    return max(step, step * math.ceil(value / step)), step


def _svg(width: int, height: int, label: str, kind: str, content: list[str]) -> str:
    return (
        f'<svg class="chart {kind}" role="img" aria-label="{esc(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{esc(label)}</title>'
        + "".join(content)
        + "</svg>"
    )


def stacked_bars(days: list[date], counts: dict[date, dict[str, int]], order: list[str]) -> str:
    """Vertical bars, one per day, stacked by severity."""
    width, height = 760, 260
    left, right, top, bottom = 44, 12, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(counts.get(d, {}).values()) for d in days]
    ymax, step = axis_max(max(totals, default=0))
    content: list[str] = []
    tick = 0.0
    while tick <= ymax + 1e-9:
        y = top + plot_h - tick / ymax * plot_h
        content.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{esc(fmt(tick))}</text>"
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
                f'<rect class="bar sev-{esc(severity)}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{severity_colour(severity)}">'
                f"<title>{esc(f'{day.isoformat()} · {severity}: {n}')}</title></rect>"
            )
        if totals[i] and len(days) <= 31:
            content.append(
                f'<text class="total" x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" '
                f'text-anchor="middle">{totals[i]}</text>'
            )
        if i % label_every == 0:
            content.append(
                f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle">{esc(day.strftime("%m-%d"))}</text>'
            )
    content.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}"/>'
    )
    return _svg(width, height, "Findings per day by severity", "findings-by-day", content)


def hbars(
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
    scale_max = xmax or axis_max(max((v for _, v, _ in rows), default=0))[0]
    plot_w = width - name_w - value_w
    content: list[str] = []
    for i, (name, value, tooltip) in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, value / scale_max * plot_w) if value > 0 else 0.0
        text = fmt(name)
        short = text if len(text) <= 24 else text[:23] + "…"
        content.append(
            f'<g class="row"><title>{esc(tooltip)}</title>'
            f'<text class="name" x="{name_w - 8}" y="{y + bar_h - 3}" text-anchor="end">'
            f"{esc(short)}</text>"
            f'<rect class="bar" x="{name_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
            f'fill="{colour}"/>'
            f'<text class="value" x="{name_w + w + 6:.1f}" y="{y + bar_h - 3}">'
            f"{esc(fmt(value))}</text></g>"
        )
    return _svg(width, height, label, kind, content)


def heatmap(days: list[date], rows: list[dict[str, Any]]) -> str:
    """A rule × day table, cells shaded by count."""
    if not rows:
        return empty_note("no findings in this window.")
    cells: dict[str, dict[date, int]] = defaultdict(dict)
    titles: dict[str, str] = {}
    for r in rows:
        cells[r["rule_id"]][r["day"]] = r["findings"]
        titles[r["rule_id"]] = r["title"]
    rules = sorted(cells, key=lambda rule: (-sum(cells[rule].values()), str(rule)))
    peak = max(n for per_day in cells.values() for n in per_day.values())
    head = "".join(
        f'<th title="{esc(d.isoformat())}">{esc(d.strftime("%m-%d"))}</th>' for d in days
    )
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
                f'color:{ink}" title="{esc(f"{rule} on {d.isoformat()}: {n}")}">{n}</td>'
            )
        body.append(
            f"<tr><th class=rule><code>{esc(rule)}</code><br><small>{esc(titles[rule])}</small></th>"
            + "".join(tds)
            + f"<td class=num><strong>{sum(cells[rule].values())}</strong></td></tr>"
        )
    return (
        '<div class="scroll"><table class="heatmap" id="rule-day-heatmap"><thead><tr><th>Rule</th>'
        f"{head}<th>Total</th></tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


# --- formatting ----------------------------------------------------------------------------------


def esc(value: Any) -> str:
    """HTML-escaped text (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
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
        return ", ".join(fmt(v) for v in value)
    return str(value)


def raw(value: Any) -> str:
    """A value as a data attribute holds it: ``str``, empty for None (not yet escaped)."""
    return "" if value is None else str(value)


def clip(value: Any, limit: int = DETAIL_CHARS) -> str:
    """Escaped text cut to ``limit`` characters; the whole text in the tooltip."""
    text = fmt(value)
    if len(text) <= limit:
        return esc(text)
    return f'<span title="{esc(text)}">{esc(text[: limit - 1])}…</span>'


def severity_colour(severity: str) -> str:
    """The severity's colour; grey for one outside :data:`SEVERITIES`."""
    return SEVERITY_COLOURS.get(severity, OTHER_COLOUR)


def severity_badge(severity: Any) -> str:
    """The severity as an escaped, coloured badge."""
    return f'<span class="sev" style="background:{severity_colour(str(severity))}">{esc(fmt(severity))}</span>'


def plural(n: int, word: str) -> str:
    """``n`` (with thousands separators) and ``word``, plural unless ``n`` is 1."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def empty_note(what: str) -> str:
    """The paragraph a section shows when it has nothing to show."""
    return f'<p class="empty">Nothing found: {esc(what)}</p>'


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
