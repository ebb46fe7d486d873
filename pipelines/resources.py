"""Resources, declared once and injected by name."""

from __future__ import annotations

import os
from contextlib import contextmanager, suppress

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from detectors.settings import DEFAULT_DB, Settings, load_settings
from detectors.warehouse import prepare

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
    }
