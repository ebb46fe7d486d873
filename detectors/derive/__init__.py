"""Tables derived from the canonical ones: task sequences, credential lifecycles, task features."""
