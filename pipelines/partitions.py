"""Partitions are UTC days of event time."""

import warnings

from dagster import BackfillPolicy, BetaWarning, DailyPartitionsDefinition

# Single-run backfills are marked beta in Dagster; we rely on them deliberately.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

DAILY = DailyPartitionsDefinition(start_date="2015-01-01", end_offset=1, timezone="UTC")
# A backfill over many days runs as one run: ingest is set-based over all the days' files.
SINGLE_RUN = BackfillPolicy.single_run()
