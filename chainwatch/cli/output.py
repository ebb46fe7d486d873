"""What the commands print: the text table and the summaries several commands share."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from detectors.analyst.views import anomaly_summary
from detectors.core.warehouse import table_counts
from detectors.findings.listing import findings_by_rule_severity, top_open_findings


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Left-aligned columns two spaces apart under a dashed rule; None prints as empty."""
    cells = [[str(h) for h in headers]] + [
        ["" if v is None else str(v) for v in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_counts(con: duckdb.DuckDBPyConnection) -> None:
    """Rows per warehouse table."""
    print("\nrows per table:")
    print(table(["table", "rows"], sorted(table_counts(con).items())))


def print_anomaly_summary(con: duckdb.DuckDBPyConnection) -> None:
    """Anomaly scores by peer group, if any task was scored."""
    rows = anomaly_summary(con)
    if rows:
        print("\nanomaly scores by peer group:")
        print(table(["peer_group", "tasks", "model", "tasks_at_p99+", "max_percentile"], rows))


def print_findings_summary(con: duckdb.DuckDBPyConnection, top: int) -> None:
    """Findings by rule and severity, then the ``top`` most urgent open ones."""
    print("\nfindings by rule and severity:")
    print(
        table(
            ["rule", "severity", "findings", "open", "suppressed"],
            findings_by_rule_severity(con),
        )
    )
    print(f"\ntop {top} findings:")
    headers = ["finding", "severity", "priority", "rule", "task", "agent", "detail"]
    print(table([*headers, "evidence (first events)"], top_open_findings(con, top)))
