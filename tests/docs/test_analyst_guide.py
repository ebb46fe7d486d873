"""The analyst guide's worked queries run against the analyst database published from the sample."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "analyst-guide.md"
QUERIES = re.findall(r"### (\d+\. [^\n]+)\n.*?```sql\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_guide_has_at_least_ten_worked_queries():
    assert len(QUERIES) >= 10
    assert [int(title.split(".")[0]) for title, _ in QUERIES] == list(range(1, len(QUERIES) + 1))


@pytest.mark.slow
@pytest.mark.parametrize(("title", "sql"), QUERIES, ids=[t.split(".")[0] for t, _ in QUERIES])
def test_worked_query_answers_on_the_sample(published_sample: Path, title: str, sql: str):
    con = duckdb.connect(str(published_sample), read_only=True)
    try:
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    assert rows, f"{title}: no rows on the sample"
