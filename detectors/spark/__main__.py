"""Run the Spark engine from a lake: ``python -m detectors.spark --lake L --out O``, or under
spark-submit (``spark-submit ... $(python -c 'import detectors.spark.__main__ as m; print(m.__file__)') --lake ...``).

Without ``--master`` the master comes from spark-submit or the cluster's defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from detectors.rules.engine import RULES_DIR, load_rules
from detectors.settings import load_settings
from detectors.spark.engine import run_on_spark, spark_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detectors.spark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--lake", required=True, help="lake path or URI (s3a://..., hdfs://..., a folder)"
    )
    parser.add_argument("--out", required=True, help="where derived tables, scores and findings go")
    parser.add_argument("--master", help="master URL (default: spark-submit's / the cluster's)")
    parser.add_argument(
        "--config", help="chainwatch settings YAML (rule parameters, anomaly settings)"
    )
    parser.add_argument("--no-models", action="store_true", help="rules only: no anomaly scoring")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(args.config)
    spark = spark_session(args.master)
    report = run_on_spark(
        spark,
        args.lake,
        args.out,
        load_rules(RULES_DIR, settings.rule_parameters),
        anomaly=None if args.no_models else settings.anomaly,
    )
    json.dump(
        {
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
