"""Benchmarks of the engine: speed and accuracy runs and the report rendered from their results."""
