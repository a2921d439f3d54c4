"""Summary statistics of measurements: one definition of a percentile for the whole project."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it.

    With the ``n`` values sorted ascending, it is the ``ceil(share * n)``-th (1-based), and the smallest
    for ``share`` 0. It is always one of the values (no interpolation): the p50 of 1..4 is 2, of 1..5 is
    3; the p99 of 1..100 is 99, of 1..1000 is 990; the p100 is the largest.
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("the percentile of no values is undefined")
    if not 0 <= share <= 1:
        raise ValueError(f"share must be within 0..1, got {share}")
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
