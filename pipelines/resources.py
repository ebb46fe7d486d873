"""Resources, declared once and injected by name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from detectors.core.settings import (
    DEFAULT_DB,
    DEFAULT_LANDING,
    Settings,
    config_file_path,
    environment_values,
    load_settings,
)
from detectors.core.warehouse import prepare


class ChainwatchConfig(ConfigurableResource):
    """Where the landing folder is and which settings file / catalog to use."""

    landing_dir: str = str(DEFAULT_LANDING)
    config_file: str | None = None
    catalog_path: str | None = None
    _settings: dict[str, Settings] = PrivateAttr(default_factory=dict)

    def settings(self, db_path: str) -> Settings:
        """The settings for this warehouse, built once per resource (once per run)."""
        if db_path not in self._settings:
            self._settings[db_path] = load_settings(
                self.config_file, db_path=db_path, catalog_path=self.catalog_path
            )
        return self._settings[db_path]


@contextmanager
def warehouse(resource: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A prepared (UTC, schema present) connection from the DuckDB resource."""
    # The folder is made here, when a step first needs it, not when the definitions load. One
    # that cannot be made (a read-only working folder) fails the connection, which names it.
    with suppress(OSError):
        Path(resource.database).parent.mkdir(parents=True, exist_ok=True)
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
    env = environment_values()
    db = db_path or env.get("db_path") or str(DEFAULT_DB)
    return {
        "duckdb": DuckDBResource(database=db),
        "chainwatch": ChainwatchConfig(
            landing_dir=landing_dir or env.get("landing_dir") or str(DEFAULT_LANDING),
            config_file=(str(path) if (path := config_file_path(config_file)) else None),
            catalog_path=catalog_path or env.get("catalog_path"),
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
    spark_keys = ("lake_path", "spark_out", "spark_raw", "spark_master")
    env = Settings().with_overrides(
        **{k: v for k, v in environment_values().items() if k in spark_keys}
    )
    lake = lake_path or env.lake_path
    master = master or env.spark_master
    return SparkResource(
        lake_path=lake,
        out_path=out_path or env.spark_out or f"{lake.rstrip('/')}/out",
        raw_path=raw_path or env.spark_raw or f"{lake.rstrip('/')}/raw",
        refit=refit,
        refit_tasks_per_agent=refit_tasks_per_agent,
        master=None if master == "default" else master,
    )
