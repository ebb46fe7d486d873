"""Not production code: the fleet simulator and the evaluation harness (a regression harness for the rules)."""
