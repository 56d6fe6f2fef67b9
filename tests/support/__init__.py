"""Helpers shared by the tests and the benchmarks: speech, WER, service processes."""
