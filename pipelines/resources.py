"""Resources, declared once and injected by name."""

from __future__ import annotations

import os
from contextlib import contextmanager, suppress

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from detectors.core.settings import DEFAULT_DB, Settings, load_settings
from detectors.core.warehouse import prepare

DEFAULT_LANDING = "data/landing"


class ChainwatchConfig(ConfigurableResource):
    """Where the landing folder is and which settings file / catalog to use."""

    landing_dir: str = DEFAULT_LANDING
    config_file: str | None = None
    catalog_path: str | None = None

    def settings(self, db_path: str) -> Settings:
        return load_settings(self.config_file, db_path=db_path, catalog_path=self.catalog_path)


@contextmanager
def warehouse(resource: DuckDBResource) -> duckdb.DuckDBPyConnection:
    """A prepared (UTC, schema present) connection from the DuckDB resource."""
    with resource.get_connection() as con:
        try:
            yield prepare(con)
        except BaseException:
            con.close()  # dagster_duckdb closes it only when the step succeeds
            raise


def default_resources(
    db_path: str | None = None,
    landing_dir: str | None = None,
    catalog_path: str | None = None,
    config_file: str | None = None,
    lake_path: str | None = None,
    spark_out: str | None = None,
    spark_master: str | None = None,
    raw_path: str | None = None,
    spark_refit: str = "auto",
    spark_refit_tasks: int = 1000,
) -> dict:
    """Local resources; production differs only here (paths from the environment)."""
    db = db_path or os.environ.get("CHAINWATCH_DB") or str(DEFAULT_DB)
    # A folder that cannot be made (a read-only working folder) is reported by whoever opens the
    # warehouse, naming it; importing the definitions must not fail on it.
    with suppress(OSError):
        os.makedirs(os.path.dirname(os.path.abspath(db)), exist_ok=True)
    return {
        "duckdb": DuckDBResource(database=db),
        "chainwatch": ChainwatchConfig(
            landing_dir=landing_dir or os.environ.get("CHAINWATCH_LANDING") or DEFAULT_LANDING,
            config_file=config_file or os.environ.get("CHAINWATCH_CONFIG"),
            catalog_path=catalog_path or os.environ.get("CHAINWATCH_CATALOG"),
        ),
        "spark": default_spark(
            lake_path, spark_out, spark_master, raw_path, spark_refit, spark_refit_tasks
        ),
    }


class SparkResource(ConfigurableResource):
    """The Spark engine: where the landing files and the lake are, where its outputs go, and the
    session to use.

    ``master`` None leaves the master to spark-submit or the cluster (``local[2]`` here);
    ``conf`` is passed to the session builder (executor memory, S3 credentials provider, ...).
    """

    lake_path: str = "data/lake"
    out_path: str = "data/lake/out"
    raw_path: str = "data/lake/raw"
    # Retrain the anomaly models on Spark before scoring: auto = when the lake has none; on each
    # agent's refit_tasks_per_agent most recent tasks of the training window.
    refit: str = "auto"
    refit_tasks_per_agent: int = 1000
    master: str | None = "local[2]"
    app_name: str = "chainwatch"
    conf: dict[str, str] = {}

    def session(self):
        """The active Spark session, created on first use (never stopped here: it is shared)."""
        from detectors.spark.engine import spark_session

        return spark_session(self.master, self.app_name, **self.conf)


def default_spark(
    lake_path: str | None = None,
    out_path: str | None = None,
    master: str | None = None,
    raw_path: str | None = None,
    refit: str = "auto",
    refit_tasks_per_agent: int = 1000,
) -> SparkResource:
    """The Spark resource from arguments, else $CHAINWATCH_LAKE, $CHAINWATCH_SPARK_OUT,
    $CHAINWATCH_SPARK_MASTER ("default" leaves the master to spark-submit) and
    $CHAINWATCH_RAW (landing files; default <lake>/raw)."""
    lake = lake_path or os.environ.get("CHAINWATCH_LAKE") or "data/lake"
    master = master or os.environ.get("CHAINWATCH_SPARK_MASTER") or "local[2]"
    return SparkResource(
        lake_path=lake,
        out_path=out_path or os.environ.get("CHAINWATCH_SPARK_OUT") or f"{lake.rstrip('/')}/out",
        raw_path=raw_path or os.environ.get("CHAINWATCH_RAW") or f"{lake.rstrip('/')}/raw",
        refit=refit,
        refit_tasks_per_agent=refit_tasks_per_agent,
        master=None if master == "default" else master,
    )
