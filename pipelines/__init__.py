"""Dagster wiring for chainwatch: assets, checks, jobs, schedules, sensors and resources only."""
