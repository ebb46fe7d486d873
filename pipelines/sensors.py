"""Sensor on the landing folder: new or changed files trigger a run for their days."""

import hashlib
import json

from dagster import RunRequest, SensorEvaluationContext, SkipReason, sensor

from detectors.ingest.pipeline import file_day, landing_files
from pipelines.jobs import ingest_job
from pipelines.resources import ChainwatchConfig

LANDING_SENSOR_NAME = "landing_folder_sensor"


@sensor(name=LANDING_SENSOR_NAME, job=ingest_job, minimum_interval_seconds=60)
def landing_folder_sensor(context: SensorEvaluationContext, chainwatch: ChainwatchConfig):
    """Request one run per day whose files appeared or changed since the last evaluation."""
    try:
        files = landing_files(chainwatch.landing_dir)
    except OSError as exc:
        return SkipReason(f"landing folder {chainwatch.landing_dir} cannot be read: {exc}")
    seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
    current: dict[str, list] = {}
    changed_days: dict[str, list[str]] = {}
    for path in files:
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns]
        current[str(path)] = signature
        if seen.get(str(path)) != signature:
            changed_days.setdefault(file_day(path).isoformat(), []).append(f"{path}:{signature}")
    context.update_cursor(json.dumps(current, sort_keys=True))
    if not changed_days:
        return SkipReason("no new or changed files in the landing folder")
    return [
        RunRequest(
            partition_key=day,
            run_key=f"{day}-{hashlib.sha256('|'.join(sorted(items)).encode()).hexdigest()[:16]}",
        )
        for day, items in sorted(changed_days.items())
    ]
