"""Benchmarks: each prints its measurements and the ratio against a baseline measured in the same run."""
