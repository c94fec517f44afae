"""The change-point floor follows each series' own run-to-run noise."""

from __future__ import annotations

import numpy as np
import pytest

from dtf_core.analysis import changepoints as cp
from dtf_core.errors import OptionError


def _series(n: int, noise: float, seed: int) -> np.ndarray:
    return 100.0 * (1.0 + noise * np.random.default_rng(seed).standard_normal(n))


def test_quiet_history_with_a_3_percent_slowdown_over_the_last_8_runs_is_found():
    x = _series(80, 0.01, 1)
    x[-8:] *= 1.03
    found = cp.detect(x)
    assert [c.index for c in found] == [72]
    assert found[0].change == pytest.approx(0.03, abs=0.01)
    # the old fixed 5 % floor let it through
    assert cp.detect(x, cp.ChangePointOptions(min_shift=0.05)) == []


@pytest.mark.parametrize("seed", range(20))
def test_pure_noise_is_not_a_regression(seed):
    x = _series(150, 0.03, 100 + seed)
    slow = np.random.default_rng(seed).random(150) < 0.08
    x[slow] *= 1.4  # outlier runs
    assert cp.detect(x) == []


def test_a_6_percent_wobble_on_a_5_percent_noise_series_is_under_the_floor():
    x = _series(200, 0.05, 7)
    x[100:] *= 1.06
    assert cp.ChangePointOptions().floor(x) > 0.06
    assert cp.detect(x) == []


def test_noise_estimate_ignores_level_shifts_and_outlier_runs():
    x = _series(400, 0.02, 3)
    base = cp.run_noise(x)
    assert base == pytest.approx(0.02, rel=0.15)
    y = x.copy()
    y[200:] *= 1.3
    y[::25] *= 2.0
    assert cp.run_noise(y) == pytest.approx(base, rel=0.25)


def test_floor_options():
    quiet = _series(100, 0.001, 4)
    assert cp.ChangePointOptions().floor(quiet) == 0.01  # the absolute floor
    assert cp.ChangePointOptions(min_shift=0.05).floor(quiet) == 0.05  # fixed, as asked
    assert cp.ChangePointOptions(noise_factor=3).floor(_series(100, 0.04, 5)) > 0.09
    with pytest.raises(OptionError, match="noise-factor"):
        cp.ChangePointOptions(noise_factor=-1)


def test_each_change_point_carries_the_floor_it_passed():
    x = _series(60, 0.01, 9)
    x[30:] *= 1.05
    (c,) = cp.detect(x)
    assert c.extra["floor"] == pytest.approx(cp.ChangePointOptions().floor(x))
