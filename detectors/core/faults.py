"""Fault injection for the crash-safety tests: ``CHAINWATCH_CRASH_AT=<point>`` makes the process
kill itself with SIGKILL when it reaches that point, as a power cut or the OOM killer would.
Unset (always, outside tests) it does nothing. Points: ``ingest.in_transaction`` (a batch parsed,
its commit not yet made), ``ingest.after_batch`` (the first batch committed), ``refit.in_transaction``,
``detect.in_merge`` (findings half merged, uncommitted), ``publish.before_swap`` (the new analyst
database built, not yet renamed over the old one)."""

from __future__ import annotations

import os
import signal

CRASH_ENV = "CHAINWATCH_CRASH_AT"


def crash_point(name: str) -> None:
    """Die here, without any cleanup, if the environment asks for a crash at ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
