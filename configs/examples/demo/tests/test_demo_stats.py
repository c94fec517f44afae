import math

import pytest
from demo.stats import mean, median, percent_change, stdev


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_mean_of_nothing():
    with pytest.raises(ValueError):
        mean([])


@pytest.mark.parametrize(("values", "expected"), [([3, 1, 2], 2.0), ([4, 1, 3, 2], 2.5)])
def test_median(values, expected):
    assert median(values) == expected


def test_stdev():
    assert math.isclose(stdev([2, 4, 4, 4, 5, 5, 7, 9]), 2.138089935299395)


def test_percent_change():
    assert percent_change(100, 110) == pytest.approx(10.0)
    assert percent_change(-50, -25) == pytest.approx(50.0)


@pytest.mark.xfail(
    reason="percent change from zero is undefined", raises=ZeroDivisionError, strict=True
)
def test_percent_change_from_zero():
    assert percent_change(0, 1) == math.inf
