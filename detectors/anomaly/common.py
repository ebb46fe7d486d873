"""What the anomaly modules and their callers share: the findings' rule id and UTC handling."""

from __future__ import annotations

from datetime import UTC, datetime

# The rule id of anomaly findings (metadata in detectors/anomaly/anomaly.yaml).
ANOMALY_RULE_ID = "task_behaviour_anomaly"


def naive_utc(ts: datetime) -> datetime:
    """``ts`` in UTC without a time zone (the warehouse's TIMESTAMP); naive input is kept."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
