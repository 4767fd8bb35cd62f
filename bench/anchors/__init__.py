"""Comparison anchors for bench/bench_all.py, each run as its own process."""
