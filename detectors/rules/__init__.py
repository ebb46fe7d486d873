"""Detection rules: one unit per rule (YAML metadata, SQL or declarative logic, test cases)."""
