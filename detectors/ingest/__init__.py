"""Parsers that turn raw log files into chainwatch's canonical DuckDB tables."""
