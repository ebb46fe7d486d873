"""Which detection stage (detectors/stages.py) each Dagster asset runs, as an asset tag."""

from __future__ import annotations

from detectors.stages import STAGE_NAMES

STAGE_TAG = "chainwatch/stage"


def stage_tags(*names: str) -> dict[str, str]:
    """The tag naming the stage(s) an asset runs, in stage order (``rank.export``)."""
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are {STAGE_NAMES}")
    return {STAGE_TAG: ".".join(n for n in STAGE_NAMES if n in names)}
