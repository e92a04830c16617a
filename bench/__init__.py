"""Benchmarks for nng-consensus. Run one with ``python -m bench.<name>`` (e.g. ``bench.pair_rtt``)."""
