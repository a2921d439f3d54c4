"""Benchmarks for asyncstack: ``python -m bench`` (or ``make bench``) writes ``bench/results.json``.

Importing the package (or ``bench.cost``) changes nothing: ``python -m bench`` sets the process
environment the benchmarks need (``bench.environment.configure``) when it runs, before it imports
them.
"""
