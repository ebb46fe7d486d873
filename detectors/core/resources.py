"""Where the shipped SQL files and notebooks are, in a checkout and in an installed wheel.

The repository keeps them at the top level (`sql/`, `notebooks/`); the wheel carries the same
folders inside the package, at `detectors/_shipped/<name>` (pyproject.toml, force-include).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def shipped_dir(name: str) -> Path:
    """The folder `name` (``sql`` or ``notebooks``): the installed copy, else the checkout's."""
    installed = Path(str(files("detectors") / "_shipped" / name))
    if installed.is_dir():
        return installed
    checkout = CHECKOUT_ROOT / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"chainwatch's {name}/ folder is neither installed nor in a checkout")


SQL_DIR = shipped_dir("sql")
NOTEBOOKS_DIR = shipped_dir("notebooks")
