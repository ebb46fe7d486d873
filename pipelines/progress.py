"""A Dagster logger that draws a progress bar of a run's steps on the terminal (``chainwatch run``)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from dagster import Field, logger

if TYPE_CHECKING:
    from tqdm import tqdm


class _StepBar(logging.Handler):
    """Advances a tqdm bar on every finished step (success, failure or skip)."""

    _DONE = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}

    def __init__(self, total: int, label: str) -> None:
        super().__init__()
        self.total, self.label = total, label
        self.bar: tqdm | None = None

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        kind = getattr(event, "event_type_value", None)
        if kind in self._DONE:
            if self.bar is None:  # Dagster may build the logger twice; draw only where events go
                from tqdm import tqdm

                self.bar = tqdm(
                    total=self.total, desc=self.label, unit="step", file=sys.stderr, mininterval=0
                )
            self.bar.set_postfix_str(getattr(event, "step_key", "") or "", refresh=False)
            self.bar.update(1)
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE") and self.bar is not None:
            self.bar.close()


@logger(
    {"total": Field(int, description="steps in the run"), "label": Field(str, default_value="")},
    description="Progress bar of the run's steps on stderr.",
)
def progress_logger(init_context):
    log = logging.getLogger(f"chainwatch.progress.{id(init_context)}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(
        _StepBar(init_context.logger_config["total"], init_context.logger_config["label"])
    )
    return log
