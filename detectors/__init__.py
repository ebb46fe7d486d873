"""chainwatch detection logic: parsing, linking, sequences, rules and models. Never imports dagster."""
