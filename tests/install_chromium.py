"""Make Debian's chromium available for the report's browser test (no Playwright browser download).

``ensure_chromium()`` returns the browser's path, installing the ``chromium`` package with apt when
it is missing and we are root (as in CI, where a failed install is an error, not a skip); when we
cannot install (not root, no apt) it returns ``None`` and says why. Run it as a script
(``python tests/install_chromium.py``) to install ahead of the test run, e.g. in a CI image step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
# Wait for another apt/dpkg process (an engineer's install) instead of failing on its lock.
APT_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=600"]
INSTALL = ["apt-get", *APT_LOCK_WAIT, "install", "-y", "--no-install-recommends", "chromium"]
UPDATE = ["apt-get", *APT_LOCK_WAIT, "update"]


class ChromiumInstallError(RuntimeError):
    """apt-get could not install chromium although we are root."""


def ensure_chromium(log=print) -> tuple[Path | None, str]:
    """(path, message): the chromium binary, installed if needed; (None, reason) when we cannot
    try. Raises ``ChromiumInstallError`` when the install was tried and failed."""
    if CHROMIUM.exists():
        return CHROMIUM, f"{CHROMIUM} present"
    if os.geteuid() != 0:
        return None, f"{CHROMIUM} is missing and we are not root: run `apt-get install chromium`"
    if shutil.which("apt-get") is None:
        return None, f"{CHROMIUM} is missing and there is no apt-get to install it"
    started = time.monotonic()
    log(f"installing Debian chromium: {' '.join(INSTALL)}")
    done = _run(INSTALL)
    if done.returncode != 0:  # stale package lists: refresh once and retry
        log("apt-get install failed; running apt-get update and retrying")
        _run(UPDATE)
        done = _run(INSTALL)
    seconds = time.monotonic() - started
    if done.returncode != 0 or not CHROMIUM.exists():
        tail = (done.stdout + done.stderr)[-2000:]
        raise ChromiumInstallError(
            f"apt-get install chromium failed (exit {done.returncode}): {tail}"
        )
    return CHROMIUM, f"installed chromium in {seconds:.0f} s"


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=APT_ENV, capture_output=True, text=True, check=False)


if __name__ == "__main__":
    path, message = ensure_chromium()
    print(message)
    sys.exit(0 if path else 1)
