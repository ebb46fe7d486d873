"""The Spark engine: the same SQL translated by sqlglot, the same models, over a Parquet lake."""
