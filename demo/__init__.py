"""The example stack's demo: one scenario per async pattern (``python -m demo run``), and a chaos run
with faults injected (``python -m demo chaos``), both on the local cloud (``localcloud``)."""
