"""Benchmarks: each script prints a table of figures against their targets."""
