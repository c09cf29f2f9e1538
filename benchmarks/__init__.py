"""Benchmark scripts (`python benchmarks/<name>.py --help`): each prints a markdown table and
writes JSON under benchmarks/results/; `common.py` holds what they share."""
