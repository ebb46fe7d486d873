"""A local Spark session for the whole test session (Java 17; pyspark from the dev extra)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def spark():
    assert shutil.which("java"), (
        "the Spark tests need Java 17 on PATH (Debian: openjdk-17-jre-headless)"
    )
    from detectors.spark.engine import spark_session

    session = spark_session(
        "local[2]", app_name="chainwatch-tests", **{"spark.sql.shuffle.partitions": "2"}
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
