"""Benchmarks: a realistic PostgreSQL data set and the latency of the hot read paths (see bench/RESULTS.md)."""
