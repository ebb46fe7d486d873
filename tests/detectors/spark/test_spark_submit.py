"""The cluster command of docs/scale-out.md, run as written with the spark-submit PySpark ships
(``--master local[2]`` instead of yarn, no wheel: chainwatch is installed in this interpreter)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from detectors.anomaly.common import ANOMALY_RULE_ID
from tests.conftest import sample_landing

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _documented_arguments() -> list[str]:
    """The chainwatch arguments of the spark-submit example in docs/scale-out.md."""
    text = (ROOT / "docs" / "scale-out.md").read_text()
    block = re.search(r"```sh\npip wheel.*?\n(spark-submit .*?)```", text, re.S)
    assert block, "docs/scale-out.md has no spark-submit example"
    words = shlex.split(block.group(1).replace("\\\n", " "))
    start = words.index("$(python")  # the application: $(python -c '...print(m.__file__)')
    end = next(i for i in range(start, len(words)) if words[i].endswith(")"))
    return words[end + 1 :]


def test_documented_spark_submit_runs_from_landing_files_to_findings(
    published_sample: Path, tmp_path
):
    arguments = _documented_arguments()
    assert arguments[::2] == ["--raw", "--lake", "--out", "--refit"] and arguments[-1] == "always"
    landing = sample_landing(tmp_path / "landing")
    paths = {"--raw": landing, "--lake": tmp_path / "lake", "--out": tmp_path / "out"}
    local = [str(paths.get(a, v)) for a, v in zip(arguments[::2], arguments[1::2], strict=True)]
    application = ROOT / "detectors" / "spark" / "__main__.py"
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[2]",
        "--conf",
        "spark.sql.session.timeZone=UTC",
        "--conf",
        "spark.sql.shuffle.partitions=2",
        str(application),
        *[x for pair in zip(arguments[::2], local, strict=True) for x in pair],
    ]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The JSON summary; Spark's shutdown may print after it.
    summary, _ = json.JSONDecoder().raw_decode(result.stdout, result.stdout.index("{"))
    assert summary["ingest"]["files"] == len(list(landing.rglob("*.*")))
    assert summary["ingest"]["file_errors"] == []
    assert summary["refit_trained_groups"] and summary["refit_sampled_tasks"] > 0
    assert summary["scored_tasks"] > 0
    spark = set(
        duckdb.execute(
            "SELECT finding_id, rule_id, entity_id FROM read_parquet(?, hive_partitioning = true) "
            "WHERE rule_id <> ?",
            [str(tmp_path / "out" / "findings" / "*" / "*.parquet"), ANOMALY_RULE_ID],
        ).fetchall()
    )
    con = duckdb.connect(str(published_sample), read_only=True)
    try:
        expected = set(
            con.execute(
                "SELECT finding_id, rule_id, entity_id FROM findings WHERE rule_id <> ?",
                [ANOMALY_RULE_ID],
            ).fetchall()
        )
    finally:
        con.close()
    assert spark == expected and len(expected) > 50
    assert not (tmp_path / ".tmp").exists()  # DuckDB spills stayed in the tasks' scratch folders
