"""Benchmarks: `python -m bench.NAME --json` prints one JSON object."""
