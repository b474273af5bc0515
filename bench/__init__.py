"""Benchmarks: our service against the seed's design (`make bench`, `python -m bench.run`)."""
