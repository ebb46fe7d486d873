"""Findings: anomaly hits beside rule hits, ranking, triage, listings, exports, the analyst database."""
