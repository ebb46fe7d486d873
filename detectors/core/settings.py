"""One typed settings object for chainwatch, read from a YAML file and the environment.

Precedence (highest first): explicit keyword arguments, environment variables, the YAML file
named by ``CHAINWATCH_CONFIG``, defaults below.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = Path("data/warehouse/chainwatch.duckdb")
DEFAULT_LANDING = Path("data/landing")
DEFAULT_CATALOG = Path(__file__).resolve().parents[1] / "ingest" / "catalog" / "default.yaml"
# Development-only key: the demo and tests use it; production sets CHAINWATCH_HASH_KEY.
DEV_HASH_KEY = "chainwatch-dev-key-not-for-production"


class SettingsError(ValueError):
    """Raised when a setting is invalid; the message names the setting."""


PEER_METHODS: tuple[str, ...] = ("agent_clusters", "roles", "single")


@dataclass(frozen=True)
class AnomalyParams:
    """How peer groups are formed, models trained and anomalies flagged (setting ``anomaly``).

    ``peer_method``: ``agent_clusters`` (KMeans on tool profiles, ``n_groups`` clusters, 0 =
    automatic), ``roles`` (the named group ``role`` of ``role_pattern`` in the agent id) or
    ``single``. Models train on the last ``window_days`` days; a peer group with fewer than
    ``min_tasks`` tasks there gets no model (cold start). ``top_g``: successors that are not rare
    (DeepLog). Tasks at or above ``alert_percentile`` of their group's fused score become findings.
    """

    peer_method: str = "agent_clusters"
    role_pattern: str = r"^(?P<role>[A-Za-z]+(?:[-_][A-Za-z]+)*)"
    n_groups: int = 0
    window_days: int = 14
    min_tasks: int = 50
    seed: int = 7
    top_g: int = 3
    alert_percentile: float = 99.5

    def __post_init__(self) -> None:
        if self.peer_method not in PEER_METHODS:
            raise SettingsError(
                f"setting 'anomaly.peer_method': unknown peer group method {self.peer_method!r}"
            )
        try:
            groups = re.compile(self.role_pattern).groupindex
        except re.error as exc:
            raise SettingsError(f"setting 'anomaly.role_pattern': {exc}") from exc
        if "role" not in groups:
            raise SettingsError("setting 'anomaly.role_pattern' needs a named group (?P<role>...)")
        if self.window_days < 1 or self.min_tasks < 2 or self.top_g < 1 or self.n_groups < 0:
            raise SettingsError(
                "settings 'anomaly': window_days >= 1, min_tasks >= 2, top_g >= 1, n_groups >= 0"
            )
        if not 0 < self.alert_percentile <= 100:
            raise SettingsError("setting 'anomaly.alert_percentile' must be in (0, 100]")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> AnomalyParams:
        """Build from a YAML mapping, converting each value to its field's type."""
        known = {f.name: f for f in fields(cls)}
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise SettingsError(f"unknown setting 'anomaly.{key}'")
            kind = type(getattr(cls(), key))
            try:
                out[key] = kind(value)
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"setting 'anomaly.{key}': {exc}") from exc
        return cls(**out)


@dataclass(frozen=True)
class Settings:
    """Everything configurable about ingest and linking."""

    db_path: Path = DEFAULT_DB
    catalog_path: Path = DEFAULT_CATALOG
    hash_key: str = DEV_HASH_KEY
    # Longest input line (or whole-document file) parsed; longer ones are rejected.
    max_record_bytes: int = 8 * 1024 * 1024
    max_document_bytes: int = 512 * 1024 * 1024
    # Files of one format are parsed together up to this many bytes per batch (memory bound).
    ingest_batch_bytes: int = 256 * 1024 * 1024
    # How much of a rejected record's (redacted) text is kept in rejected_events.raw_text.
    reject_text_chars: int = 2048
    # How much of a tool call's (redacted) arguments is kept in agent_actions.args.
    args_chars: int = 4096
    # Content capture (OTel GenAI prompts, messages, tool results): read for the entities they
    # contain, stored as keyed hashes in content_entities. Raw text is never stored unless
    # content_keep_text is on; then a redacted copy (at most content_text_chars) goes to content_text.
    content_capture: bool = True
    content_keep_text: bool = False
    content_text_chars: int = 8192
    # Linking conventions (see docs/schema.md, "Linking").
    vault_task_keys: tuple[str, ...] = ("task_id", "chainwatch_task_id", "task")
    vault_agent_keys: tuple[str, ...] = ("agent_id", "chainwatch_agent_id", "agent")
    sts_session_pattern: str = r"^(?P<agent_id>[A-Za-z0-9_+=,.-]+)@(?P<task_id>[A-Za-z0-9_+=,.-]+)$"
    sts_task_tag_keys: tuple[str, ...] = ("chainwatch:task-id", "task_id", "TaskId")
    k8s_pod_pattern: str = r"^(?P<agent_id>[a-z0-9-]+?)-(?P<task_id>task-[a-z0-9-]+)$"
    # Dynamic-secret lease TTLs are not in Vault's audit log: role path prefix -> seconds.
    vault_lease_ttls: dict[str, int] = field(default_factory=dict)
    # Timestamps this far past "now" are in the future and rejected by the asset check.
    future_tolerance_s: int = 300
    # Detection: per-rule parameter overrides {rule_id: {param: value}}, the allowlist file, and
    # where findings are exported (Parquet by day, OCSF JSON lines).
    rule_parameters: dict[str, dict] = field(default_factory=dict)
    suppressions_path: Path | None = None
    findings_dir: Path | None = None  # default: a "findings" folder beside the warehouse file
    # The analyst database each run publishes (default: chainwatch_published.duckdb beside the warehouse).
    published_db: Path | None = None
    # Where the daily job looks for new files (the Dagster sensor and `chainwatch run`).
    landing_dir: Path = DEFAULT_LANDING
    # The Spark engine: the Parquet lake it reads, where its outputs go (default <lake>/out),
    # landing files it parses (default <lake>/raw), and its master ("default": spark-submit's).
    lake_path: str = "data/lake"
    spark_out: str | None = None
    spark_raw: str | None = None
    spark_master: str = "local[2]"
    # Anomaly models (detectors/anomaly/): peer groups, training window, alert percentile.
    anomaly: AnomalyParams = field(default_factory=lambda: AnomalyParams())

    @property
    def findings_path(self) -> Path:
        """Where findings are exported: findings_dir, else `<warehouse folder>/findings`."""
        return (
            Path(self.findings_dir) if self.findings_dir else Path(self.db_path).parent / "findings"
        )

    @property
    def published_path(self) -> Path:
        """Where the analyst database is published: published_db, else beside the warehouse."""
        return (
            Path(self.published_db)
            if self.published_db
            else Path(self.db_path).parent / "chainwatch_published.duckdb"
        )

    @property
    def spark_out_path(self) -> str:
        """Where the Spark engine writes: spark_out, else `<lake>/out`."""
        return self.spark_out or f"{self.lake_path.rstrip('/')}/out"

    @property
    def spark_raw_path(self) -> str:
        """Landing files the Spark ingest parses: spark_raw, else `<lake>/raw`."""
        return self.spark_raw or f"{self.lake_path.rstrip('/')}/raw"

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the non-None overrides applied and validated."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        return _validated(replace(self, **_coerce(clean)))


_ENV = {
    "CHAINWATCH_DB": "db_path",
    "CHAINWATCH_CATALOG": "catalog_path",
    "CHAINWATCH_HASH_KEY": "hash_key",
    "CHAINWATCH_MAX_RECORD_BYTES": "max_record_bytes",
    "CHAINWATCH_SUPPRESSIONS": "suppressions_path",
    "CHAINWATCH_PUBLISHED_DB": "published_db",
    "CHAINWATCH_LANDING": "landing_dir",
    "CHAINWATCH_LAKE": "lake_path",
    "CHAINWATCH_SPARK_OUT": "spark_out",
    "CHAINWATCH_RAW": "spark_raw",
    "CHAINWATCH_SPARK_MASTER": "spark_master",
    "CHAINWATCH_CONTENT_CAPTURE": "content_capture",
    "CHAINWATCH_CONTENT_KEEP_TEXT": "content_keep_text",
}
_OPTIONAL_PATHS = ("suppressions_path", "findings_dir", "published_db")
_OPTIONAL_TEXT = ("spark_out", "spark_raw")


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(Settings)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise SettingsError(f"unknown setting {key!r}")
        try:
            out[key] = _coerce_one(key, value)
        except SettingsError:
            raise
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"setting {key!r}: {exc}") from exc
    return out


def _coerce_one(key: str, value: Any) -> Any:
    """`value` converted to the type of setting `key` (by its default's type)."""
    if key == "anomaly":
        return _anomaly(value)
    if key == "rule_parameters":
        return _rule_parameters(value)
    if key in _OPTIONAL_PATHS:
        return Path(value) if value else None
    if key in _OPTIONAL_TEXT:
        return str(value) if value else None
    default = getattr(Settings(), key)
    if isinstance(default, Path):
        return Path(value)
    if isinstance(default, bool):
        return str(value).lower() in ("1", "true", "yes") if isinstance(value, str) else bool(value)
    if isinstance(default, float | int):
        return type(default)(value)
    if isinstance(default, tuple):
        return tuple(str(v) for v in (value.split(",") if isinstance(value, str) else value))
    if isinstance(default, dict):
        return {str(k): int(v) for k, v in dict(value).items()}
    return str(value)


def _anomaly(value: Any) -> AnomalyParams:
    if isinstance(value, AnomalyParams):
        return value
    if isinstance(value, dict):
        return AnomalyParams.from_mapping(value)
    raise ValueError("expected a mapping of anomaly parameters")


def _rule_parameters(value: Any) -> dict[str, dict]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError("expected a mapping of rule id to a mapping of parameters")
    return {str(k): dict(v) for k, v in value.items()}


def _validated(settings: Settings) -> Settings:
    for name in ("sts_session_pattern", "k8s_pod_pattern"):
        pattern = getattr(settings, name)
        try:
            groups = re.compile(pattern).groupindex
        except re.error as exc:
            raise SettingsError(
                f"setting {name!r} is not a valid regular expression: {exc}"
            ) from exc
        if "task_id" not in groups or "agent_id" not in groups:
            raise SettingsError(
                f"setting {name!r} needs named groups (?P<agent_id>...) and (?P<task_id>...)"
            )
    if not settings.hash_key:
        raise SettingsError("setting 'hash_key' must not be empty")
    if (
        settings.max_record_bytes <= 0
        or settings.reject_text_chars <= 0
        or settings.content_text_chars <= 0
    ):
        raise SettingsError("size limits must be positive")
    return settings


def config_file_path(explicit: str | Path | None = None) -> str | Path | None:
    """The settings file: the one given, else $CHAINWATCH_CONFIG, else none."""
    return explicit or os.environ.get("CHAINWATCH_CONFIG") or None


def environment_values() -> dict[str, str]:
    """The settings given by CHAINWATCH_* environment variables (the one place that reads them)."""
    return {key: os.environ[env] for env, key in _ENV.items() if os.environ.get(env)}


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, a YAML file, the environment, then explicit overrides."""
    values: dict[str, Any] = {}
    config_file = config_file_path(config_file)
    if config_file:
        path = Path(config_file)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path} must hold a mapping")
        values.update(loaded)
    values.update(environment_values())
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _validated(replace(Settings(), **_coerce(values)))
