"""Benchmarks for asyncstack: ``python -m bench`` (or ``make bench``) writes ``bench/results.json``.

Importing the package sets the environment Lambda and Powertools read at import time, so it
runs before any ``shared`` or ``functions`` module is imported (see ``bench.environment``).
"""

from bench.environment import configure

configure()
