"""Benchmark harness of tokenboard (``make bench`` / ``python -m bench.run``).

One dataset of usage events is written once into the real broker; every system under test
reads that same topic from the beginning, and ``bench/RESULTS.md`` is written from the run.
See ``bench/README.md``.
"""

__all__: list[str] = []
