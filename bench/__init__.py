"""Benchmarks: fabric against raw pyzmq, each measurement in fresh processes (see bench/README.md)."""
