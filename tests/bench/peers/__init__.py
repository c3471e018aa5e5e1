"""Apiary beside other job queues; run with `python -m tests.bench.peers`."""
