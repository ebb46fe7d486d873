"""chainwatch command-line entry point (the logic lives in detectors/, the Dagster wiring in pipelines/)."""
