"""Run the investigation notebook for one finding or task, headlessly, and export it as HTML.

``notebooks/investigate_task.ipynb`` is executed with papermill (no Jupyter server) against the
published analyst database, read-only. The executed notebook and its HTML export (figures embedded,
code cells hidden) are written as ``<out_dir>/investigate_<id>.ipynb`` and ``.html``.

The kernel is this interpreter's own ipykernel (Jupyter's built-in ``python3`` spec, resolved
without looking at registered kernels), so the notebook runs with the packages of the process that
calls it: nothing has to be registered with ``ipykernel install`` first, on a fresh clone either.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from detectors.core.resources import NOTEBOOKS_DIR

NOTEBOOK = NOTEBOOKS_DIR / "investigate_task.ipynb"
KERNEL_NAME = "python3"
START_TIMEOUT_S = 60


class InvestigationError(RuntimeError):
    """The investigation could not run, or the notebook failed (the message says which cell)."""

    def __init__(self, message: str, *, ename: str | None = None, evalue: str | None = None):
        super().__init__(message)
        self.ename, self.evalue = ename, evalue


class InvestigationDatabaseMissing(InvestigationError, FileNotFoundError):
    """No published analyst database at the given path."""


@dataclass(frozen=True)
class InvestigationResult:
    """What one investigation wrote."""

    notebook: Path  # the executed notebook
    html: Path  # its HTML export
    figures: int  # image/png outputs in the executed notebook
    elapsed_s: float


def output_stem(identifier: str) -> str:
    """``investigate_<id>`` as a safe file name; an id that needed changes gets a short hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", identifier).lstrip(".")[:80]
    if safe != identifier:
        safe = f"{safe}-{hashlib.sha256(identifier.encode()).hexdigest()[:8]}"
    return f"investigate_{safe}"


def count_figures(nb: nbformat.NotebookNode) -> int:
    """PNG images among the outputs of a notebook."""
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    )


def _kernel_manager_class():
    """A kernel manager that starts this interpreter's ipykernel, over local IPC sockets."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class CallerKernelManager(AsyncKernelManager):
        # Unix sockets beside the connection file: no TCP port to eavesdrop on (POSIX only).
        transport = CaselessStrEnum(
            ["tcp", "ipc"], default_value="ipc" if os.name == "posix" else "tcp", config=True
        )

        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self) -> KernelSpecManager:
            # No kernel directories: only the native python3 spec (sys.executable) is found.
            return KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)

    return CallerKernelManager


# JupyterLab's HTML template, with each figure's alternative text (output metadata "alt").
_HTML_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
 alt="{{ ((output | get_metadata('alt', 'image/png')) or 'figure') | escape_html }}">
</div>
{% endblock data_png %}
"""


def export_html(notebook: Path, html: Path) -> None:
    """The executed notebook as one self-contained HTML page (figures inline, code hidden)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        template_file="investigate.html.j2",
        extra_loaders=[DictLoader({"investigate.html.j2": _HTML_TEMPLATE})],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    html.write_text(body, encoding="utf-8")


def run_investigation(
    published_db: Path,
    out_dir: Path,
    *,
    finding_id: str | None = None,
    task_id: str | None = None,
    timeout_s: int = 300,
) -> InvestigationResult:
    """Execute the investigation notebook for a finding (or a task) and export it as HTML.

    Exactly one of ``finding_id`` / ``task_id``. ``timeout_s`` bounds each cell's run. Raises
    ``InvestigationDatabaseMissing`` when ``published_db`` is not a file and
    ``InvestigationError`` when the notebook fails (an unknown id included), with the failing
    cell's error message; the partial notebook is kept for inspection.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if (finding_id is None) == (task_id is None):
        raise ValueError("give exactly one of finding_id or task_id")
    identifier = finding_id if finding_id is not None else task_id
    kind = "finding" if finding_id is not None else "task"
    if not isinstance(identifier, str) or not identifier.strip():
        raise ValueError(f"invalid {kind} id: {identifier!r}")
    published_db = Path(published_db)
    if not published_db.is_file():
        raise InvestigationDatabaseMissing(
            f"no published analyst database at {published_db} (investigating {kind} "
            f"{identifier!r}): run `chainwatch run` first"
        )
    if not NOTEBOOK.is_file():
        raise InvestigationError(f"investigation notebook {NOTEBOOK} is missing")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = output_stem(identifier)
    notebook, html = out_dir / f"{stem}.ipynb", out_dir / f"{stem}.html"
    html.unlink(missing_ok=True)  # never leave an older export beside a new notebook
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(NOTEBOOK),
            str(notebook),
            parameters={
                "db_path": str(published_db.resolve()),
                "finding_id": finding_id,
                "task_id": task_id,
                "output_dir": str(out_dir),
            },
            kernel_name=KERNEL_NAME,
            kernel_manager_class=_kernel_manager_class(),
            progress_bar=False,
            log_output=False,
            cwd=str(out_dir),
            start_timeout=START_TIMEOUT_S,
            execution_timeout=timeout_s,
        )
    except PapermillExecutionError as exc:
        raise InvestigationError(
            f"investigation of {kind} {identifier!r} failed in cell {exc.exec_count}: "
            f"{exc.ename}: {exc.evalue} (partial notebook: {notebook})",
            ename=exc.ename,
            evalue=exc.evalue,
        ) from None
    except Exception as exc:  # kernel start, cell timeout, dead kernel
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InvestigationError(
            f"investigation of {kind} {identifier!r} could not run {NOTEBOOK.name}: "
            f"{type(exc).__name__}: {first}"
        ) from exc
    export_html(notebook, html)
    figures = count_figures(nbformat.read(notebook, as_version=4))
    return InvestigationResult(notebook, html, figures, round(time.perf_counter() - started, 2))
