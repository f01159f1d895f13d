"""What to run: the validated sweep spec, its cells, and the plan that joins it with its trainable."""
