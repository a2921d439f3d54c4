"""The one percentile of the project (localcloud/stats.py): nearest rank, checked by hand."""

from __future__ import annotations

import pytest

from localcloud.stats import percentile

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [
        ([1, 2, 3, 4], 0.5, 2),  # ceil(0.5 x 4) = 2nd: half the values are at or below it
        ([1, 2, 3, 4, 5], 0.5, 3),  # ceil(2.5) = 3rd, the median
        (list(range(1, 101)), 0.99, 99),  # ceil(99) = 99th
        (list(range(1, 1001)), 0.99, 990),  # ceil(990) = 990th
        (list(range(1, 201)), 0.99, 198),  # ceil(198) = 198th (int(0.99 x 200) would be the 199th)
        (list(range(1, 11)), 0.95, 10),  # ceil(9.5) = 10th
        ([7.5], 0.99, 7.5),  # one value is every percentile
        ([3, 1, 2], 0.0, 1),  # p0 is the smallest
        ([3, 1, 2], 1.0, 3),  # p100 is the largest
    ],
)
def test_the_percentile_is_the_nearest_rank(values: list[float], share: float, expected: float) -> None:
    assert percentile(values, share) == expected


def test_the_percentile_is_one_of_the_values_and_takes_any_iterable() -> None:
    # Given unsorted values in a generator
    values = (v / 10 for v in (9, 1, 5, 3, 7, 2))
    # Then the p50 is the 3rd smallest of 6, not an interpolation between the 3rd and the 4th
    assert percentile(values, 0.5) == 0.3


@pytest.mark.parametrize(("values", "share"), [([], 0.5), ([1.0], -0.1), ([1.0], 1.5)])
def test_no_values_or_a_share_outside_0_1_is_refused(values: list[float], share: float) -> None:
    with pytest.raises(ValueError, match=r"undefined|within 0\.\.1"):
        percentile(values, share)
