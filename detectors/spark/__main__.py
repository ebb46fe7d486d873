"""Run the Spark engine: ``python -m detectors.spark --lake L --out O [--raw R] [--refit always]``.

Under spark-submit, pass this file as the application (its path:
``python -c 'import detectors.spark.__main__ as m; print(m.__file__)'``). With ``--raw`` the
landing files there are parsed on Spark into the lake's canonical tables first; the anomaly
models are retrained on a sample of the lake before scoring when the lake has none, or always
with ``--refit always``. Without ``--master`` the
master comes from spark-submit or the cluster's defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from detectors.core.settings import load_settings
from detectors.rules.engine import RULES_DIR, load_rules
from detectors.spark.engine import run_on_spark, spark_session
from detectors.spark.ingest import ingest_to_lake


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detectors.spark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--lake", required=True, help="lake path or URI (s3a://..., hdfs://..., a folder)"
    )
    parser.add_argument("--out", required=True, help="where derived tables, scores and findings go")
    parser.add_argument(
        "--raw", help="landing files to parse on Spark into the lake's canonical tables first"
    )
    parser.add_argument("--master", help="master URL (default: spark-submit's / the cluster's)")
    parser.add_argument(
        "--config", help="chainwatch settings YAML (rule parameters, anomaly settings, hash key)"
    )
    parser.add_argument(
        "--refit",
        choices=("auto", "always", "never"),
        default="auto",
        help="retrain the anomaly models on a sample of the lake before scoring: auto = when the "
        "lake has none (default)",
    )
    parser.add_argument(
        "--refit-sample",
        type=int,
        default=1000,
        metavar="N",
        help="a refit trains on each agent's N most recent tasks of the window (default 1000)",
    )
    parser.add_argument("--no-models", action="store_true", help="rules only: no anomaly scoring")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(args.config)
    spark = spark_session(args.master)
    ingested: dict = {}
    if args.raw:
        ingest = ingest_to_lake(spark, args.raw, args.lake, settings)
        ingested = {
            "files": ingest.files,
            "file_errors": ingest.file_errors,
            "records_by_format": ingest.by_format,
            "canonical_rows": ingest.counts,
        }
    report = run_on_spark(
        spark,
        args.lake,
        args.out,
        load_rules(RULES_DIR, settings.rule_parameters),
        anomaly=None if args.no_models else settings.anomaly,
        refit=args.refit,
        refit_tasks_per_agent=args.refit_sample,
    )
    json.dump(
        {
            "ingest": ingested,
            "refit_sampled_tasks": report.refit_sampled_tasks,
            "refit_trained_groups": report.refit_trained,
            "lake_rows": report.lake_counts,
            "derived_rows": report.derived_counts,
            "scored_tasks": report.scored_tasks,
            "findings_by_rule": report.findings_by_rule,
            "outputs": report.outputs,
            "seconds": report.seconds,
        },
        sys.stdout,
        indent=2,
        sort_keys=True,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
