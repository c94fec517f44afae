"""The siblings' yardstick (run/pace.py) stays cheap per result and close to exact."""

from __future__ import annotations

import random
import statistics

from dtf_core.run import pace
from dtf_core.run.pace import Pace


def test_small_sibling_sets_are_exact_after_every_result() -> None:
    p = Pace()
    walls = [1.0, 1.1, 0.9, 1.2, 1.05]
    for i, wall in enumerate(walls):
        p.note(f"t[{i}]", "t", f"w{i % 2}", wall)
        got = p.expected("new", "t")
        want = statistics.median(walls[: i + 1]) if i >= 1 else None
        assert got == want, (i, got, want)
    # Leaving out a worker's own durations still counts.
    assert p.expected("new", "t", elsewhere="w0") == statistics.median([1.1, 1.2])


def test_many_siblings_are_not_recomputed_per_result(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = 0
    real = pace._alike

    def counting(durations: list[float]) -> bool:
        nonlocal calls
        calls += 1
        return real(durations)

    monkeypatch.setattr(pace, "_alike", counting)
    rng = random.Random(7)
    p = Pace()
    walls = []
    for i in range(3000):
        wall = rng.uniform(0.9, 1.1)
        walls.append(wall)
        p.note(f"t[{i}]", "t", f"w{i % 2}", wall)
        got = p.expected(f"t[{i + 1}]", "t", elsewhere=f"w{i % 2}")
    # Quadratic before: one median over all siblings for every result.
    assert calls < 150, calls
    # The last result came from w1: the yardstick is w0's durations, a little behind.
    assert got is not None
    assert abs(got - statistics.median(walls[0::2])) < 0.05
