"""End-to-end benchmark: simulate N agent actions, run every stage the job runs, and compare with
the parse floor (DuckDB only reading the same files).

    .venv/bin/python -m benchmarks.pipeline --actions 1000000 [--actions 10000000 ...] [--keep DIR]

Stages call the same functions the Dagster assets call, in the job's order, on one warehouse
file: ingest (parse, redact, hash, link, tasks) -> credential_lifecycles -> task_sequences ->
argument_provenance -> task_features -> recommendations -> rules -> models (refit, then score + flag, which is what a
daily run does) -> publish (task risk, Parquet, OCSF, analyst database). Each stage's wall time,
events per second and peak RSS (sampled from /proc every 20 ms) are printed as a markdown table
and appended to benchmarks/RESULTS.md with the machine's cores, memory and package versions.

``--content-tasks N`` (default 2000; 0 skips it) adds the cost of content capture: the same N
assistant tasks (``chainwatch simulate --assistants``) ingested with and without their prompts,
messages and tool results, best of three runs each. Target: ≤ 1.5× the ingest without content.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import duckdb

from detectors.core.warehouse import MEMORY_LIMIT_ENV

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SOURCES = ("otlp", "vault", "cloudtrail", "native")


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class _PeakRss:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(0.02)

    def __enter__(self):
        self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


@dataclass
class Stage:
    name: str
    seconds: float
    peak_rss: int
    rows: int | None = None


@dataclass
class BenchResult:
    actions: int
    input_bytes: int
    records: int
    stages: list[Stage] = field(default_factory=list)
    floor_seconds: float = 0.0
    simulate_seconds: float = 0.0

    @property
    def pipeline_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def peak_rss(self) -> int:
        return max(s.peak_rss for s in self.stages)


@contextmanager
def _stage(result: BenchResult, name: str):
    holder: dict = {}
    with _PeakRss() as rss:
        started = time.perf_counter()
        yield holder
        elapsed = time.perf_counter() - started
    result.stages.append(Stage(name, elapsed, rss.peak, holder.get("rows")))
    print(f"  {name:22s} {elapsed:8.2f} s  peak RSS {rss.peak / 2**30:5.2f} GiB", flush=True)


def input_files(logs: Path) -> list[Path]:
    return sorted(p for s in SOURCES for p in (logs / s).glob("*") if p.is_file())


def parse_floor(files: list[Path]) -> tuple[float, int]:
    """DuckDB only reading the same files: a count over read_json (JSON lines and the CloudTrail
    Records documents). Returns (seconds, records)."""
    con = duckdb.connect()
    lines = [str(p) for p in files if "cloudtrail" not in p.parent.name]
    documents = [str(p) for p in files if "cloudtrail" in p.parent.name]
    started = time.perf_counter()
    total = 0
    if lines:
        total += con.execute(
            "SELECT count(*) FROM read_json(?, format = 'newline_delimited', records = false, "
            "columns = {'json': 'JSON'}, maximum_object_size = 268435456)",
            [lines],
        ).fetchone()[0]
    if documents:
        total += con.execute(
            "SELECT sum(len(Records)) FROM read_json(?, format = 'auto', "
            "columns = {'Records': 'JSON[]'}, maximum_object_size = 1073741824)",
            [documents],
        ).fetchone()[0]
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed, int(total)


def run_pipeline(
    logs: Path | list[Path], db: Path, result: BenchResult, *, refit_models: bool = True
) -> None:
    """Every stage of the job, through the functions its assets call (``logs``: a folder of
    source folders, or the files themselves). Without ``refit_models`` the stored models score,
    as in a daily run."""
    from detectors.analyst.recommend import build_recommendations
    from detectors.anomaly.score import score_tasks
    from detectors.anomaly.train import default_train_until, refit
    from detectors.core.settings import load_settings
    from detectors.core.warehouse import connect
    from detectors.derive.tables import (
        build_argument_provenance,
        build_credential_lifecycles,
        build_task_features,
        build_task_sequences,
    )
    from detectors.findings.exports import (
        export_findings_ocsf,
        export_findings_parquet,
        product_version,
    )
    from detectors.findings.merge import flag_anomalies, rank_findings
    from detectors.findings.snapshot import publish_with_settings
    from detectors.ingest.pipeline import ingest_paths
    from detectors.rules.engine import RULES_DIR, detect, load_rules

    settings = load_settings(db_path=db)
    con = connect(db)
    files = input_files(logs) if isinstance(logs, Path) else logs
    steps: list[tuple[str, Callable[[], int | None]]] = [
        ("ingest", lambda: ingest_paths(con, files, settings).total("records")),
        ("credential_lifecycles", lambda: build_credential_lifecycles(con)),
        ("task_sequences", lambda: build_task_sequences(con)),
        ("argument_provenance", lambda: build_argument_provenance(con)),
        ("task_features", lambda: build_task_features(con)),
        ("recommendations", lambda: build_recommendations(con)),
        ("rules", lambda: sum(detect(con, load_rules(RULES_DIR)).values())),
        (
            "models_refit",
            lambda: len(refit(con, settings.anomaly, train_until=default_train_until(con)).trained),
        ),
        ("models_score", lambda: score_tasks(con) + flag_anomalies(con, settings.anomaly)),
        (
            "publish",
            lambda: (
                rank_findings(con),
                len(export_findings_parquet(con, settings.findings_path / "parquet")),
                export_findings_ocsf(
                    con,
                    settings.findings_path / "findings.ocsf.jsonl",
                    product_version=product_version(),
                ),
                publish_with_settings(con, settings),
            )[2],
        ),
    ]
    for name, step in steps:
        if name == "models_refit" and not refit_models:
            continue
        with _stage(result, name) as holder:
            holder["rows"] = step()
    con.close()


def incremental(days: int, per_day: int, workdir: Path, seed: int = 42) -> BenchResult:
    """The daily run after ``days`` days of history: simulate days + 1 days, load and model the
    history, then time the last day's run (ingest it, recompute, score without refit, publish)."""
    from chainwatch.harness.simulate import simulate

    logs = workdir / "logs"
    simulate(logs, seed=seed, agents=100, days=days + 1, actions=per_day * (days + 1))
    files = input_files(logs)
    newest_day = sorted({_day_of(f) for f in files})[-1]
    history = [f for f in files if _day_of(f) != newest_day]
    new = [f for f in files if _day_of(f) == newest_day]
    db = workdir / "wh" / "chainwatch.duckdb"
    print(f"history: {days} day(s), {len(history)} files; building it", flush=True)
    run_pipeline(history, db, BenchResult(per_day * days, 0, 0))
    result = BenchResult(per_day, sum(p.stat().st_size for p in new), 0)
    print(f"daily run over {days} day(s) of history:", flush=True)
    run_pipeline(new, db, result, refit_models=False)
    return result


def _day_of(path: Path) -> str:
    match = re.search(r"\d{4}-\d{2}-\d{2}", path.name)
    return match.group(0) if match else ""


def bench(actions: int, workdir: Path, seed: int = 42) -> BenchResult:
    from chainwatch.harness.simulate import simulate

    agents = max(40, min(2000, actions // 5000))
    days = max(2, min(30, actions // 300_000))
    logs = workdir / "logs"
    print(f"simulating {actions:,} actions ({agents} agents, {days} days) into {logs}", flush=True)
    started = time.perf_counter()
    simulate(logs, seed=seed, agents=agents, days=days, actions=actions)
    simulate_seconds = time.perf_counter() - started
    files = input_files(logs)
    result = BenchResult(actions, sum(p.stat().st_size for p in files), 0)
    result.simulate_seconds = simulate_seconds
    result.floor_seconds, result.records = parse_floor(files)
    print(
        f"  parse floor: {result.records:,} records, {result.input_bytes / 2**20:,.0f} MiB "
        f"in {result.floor_seconds:.2f} s",
        flush=True,
    )
    run_pipeline(logs, workdir / "wh" / "chainwatch.duckdb", result)
    return result


def content_capture(tasks: int, workdir: Path, seed: int = 42, repeats: int = 3) -> str:
    """Ingest the same assistant traces with and without captured content; a markdown section."""
    from chainwatch.harness.simulate.assistants import simulate_assistants
    from detectors.core.settings import load_settings
    from detectors.core.warehouse import connect
    from detectors.ingest.pipeline import ingest_paths

    rows = {}
    for content in (False, True):
        logs = workdir / ("content" if content else "plain")
        simulate_assistants(logs, seed=seed, tasks=tasks, content=content)
        files = sorted((logs / "otlp").glob("*.jsonl"))
        size = sum(p.stat().st_size for p in files)
        best, peak, spans, entities = float("inf"), 0, 0, 0
        for attempt in range(repeats):
            db = workdir / f"wh-{content}-{attempt}" / "chainwatch.duckdb"
            con = connect(db)
            with _PeakRss() as rss:
                started = time.perf_counter()
                spans = ingest_paths(con, files, load_settings(db_path=db)).total("records")
                best = min(best, time.perf_counter() - started)
            entities = con.execute("SELECT count(*) FROM content_entities").fetchone()[0]
            con.close()
            peak = max(peak, rss.peak)
        rows[content] = (size, spans, best, peak, entities)
    plain, captured = rows[False], rows[True]
    ratio = captured[2] / plain[2]
    lines = [
        f"### Content capture: {tasks:,} assistant tasks, ingest with and without content",
        "",
        "| traces | MiB | spans | ingest (s, best of 3) | spans/s | peak RSS (GiB) | content_entities rows |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, (size, spans, seconds, peak, entities) in (
        ("without content", plain),
        ("with content", captured),
    ):
        lines.append(
            f"| {label} | {size / 2**20:.1f} | {spans:,} | {seconds:.2f} | {spans / seconds:,.0f} | "
            f"{peak / 2**30:.2f} | {entities:,} |"
        )
    lines += ["", f"Target: with content ≤ 1.5× without: **{ratio:.2f}×**.", ""]
    return "\n".join(lines)


def markdown(result: BenchResult) -> str:
    """The result as a markdown section."""
    total = result.pipeline_seconds
    lines = [
        f"### {result.actions:,} actions ({result.records:,} JSON lines / CloudTrail records, "
        f"{result.input_bytes / 2**20:,.0f} MiB)",
        "",
        "| stage | seconds | actions / s | peak RSS (GiB) | rows |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in result.stages:
        lines.append(
            f"| {s.name} | {s.seconds:.2f} | {result.actions / s.seconds:,.0f} | "
            f"{s.peak_rss / 2**30:.2f} | {'' if s.rows is None else f'{s.rows:,}'} |"
        )
    lines += [
        f"| **end to end** | **{total:.2f}** | **{result.actions / total:,.0f}** | "
        f"**{result.peak_rss / 2**30:.2f}** | |",
        f"| parse floor (DuckDB read_json count) | {result.floor_seconds:.2f} | "
        f"{result.actions / result.floor_seconds:,.0f} | | |",
        "",
        f"End to end / parse floor: **{total / result.floor_seconds:.1f}×** (target ≤ 3×). "
        f"Simulating the input took {result.simulate_seconds:.0f} s (not counted).",
        "",
    ]
    return "\n".join(lines)


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    packages = ", ".join(
        f"{p} {version(p)}" for p in ("duckdb", "polars", "pyarrow", "scikit-learn", "dagster")
    )
    limit = os.environ.get(MEMORY_LIMIT_ENV) or "DuckDB default"
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores · {mem:.0f} GiB · "
        f"Python {platform.python_version()} · {packages} · memory_limit {limit}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, action="append", help="size(s) to run")
    parser.add_argument("--keep", type=Path, help="keep the data in this folder")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--incremental",
        nargs=2,
        type=int,
        metavar=("SHORT_DAYS", "LONG_DAYS"),
        help="time the daily run after SHORT_DAYS and after LONG_DAYS of history instead",
    )
    parser.add_argument("--per-day", type=int, default=30_000, help="actions per day (incremental)")
    parser.add_argument(
        "--content-tasks",
        type=int,
        default=2000,
        help="assistant tasks for the content-capture row (0: skip it)",
    )
    parser.add_argument(
        "--memory-limit",
        default="3GB",
        help="DuckDB memory limit of the warehouse connection ($CHAINWATCH_MEMORY_LIMIT; "
        "'none' for DuckDB's default of 80%% of RAM)",
    )
    args = parser.parse_args(argv)
    if args.memory_limit.lower() == "none":
        os.environ.pop(MEMORY_LIMIT_ENV, None)
    else:
        os.environ[MEMORY_LIMIT_ENV] = args.memory_limit
    if args.incremental:
        _incremental_main(args)
        return
    sizes = args.actions or [1_000_000]
    sections = [f"## Run of {machine()}", ""]
    for n in sizes:
        work = args.keep / str(n) if args.keep else Path(tempfile.mkdtemp(prefix="cw-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            result = bench(n, work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        section = markdown(result)
        print(section, flush=True)
        sections.append(section)
    if args.content_tasks > 0:
        with tempfile.TemporaryDirectory(prefix="cw-content-") as tmp:
            section = content_capture(args.content_tasks, Path(tmp))
        print(section, flush=True)
        sections.append(section)
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if not args.no_results:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write("\n".join(sections) + "\n")


def _incremental_main(args) -> None:
    rows = []
    for days in args.incremental:
        with tempfile.TemporaryDirectory(prefix="cw-incr-") as tmp:
            result = incremental(days, args.per_day, Path(tmp))
        rows.append((days, result))
    short, long = rows[0][1], rows[1][1]
    lines = [
        f"### Daily run after {rows[0][0]} vs {rows[1][0]} days of history "
        f"({args.per_day:,} actions a day)",
        "",
        "| stage | " + " | ".join(f"{d} days (s)" for d, _ in rows) + " | ratio |",
        "|---|---:|---:|---:|",
    ]
    for a, b in zip(short.stages, long.stages, strict=True):
        lines.append(
            f"| {a.name} | {a.seconds:.2f} | {b.seconds:.2f} | {b.seconds / a.seconds:.1f}× |"
        )
    ratio = long.pipeline_seconds / short.pipeline_seconds
    lines += [
        f"| **daily run** | **{short.pipeline_seconds:.2f}** | **{long.pipeline_seconds:.2f}** | "
        f"**{ratio:.1f}×** |",
        "",
        f"Target: the run over the {rows[1][0] // max(rows[0][0], 1)}× longer history costs ≤ 1.5× "
        f"the shorter one: **{ratio:.1f}×**.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_results:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(f"## Run of {machine()}\n\n" + text + "\n")


if __name__ == "__main__":
    main()
