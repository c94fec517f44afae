"""The siblings' yardstick (run/pace.py) stays cheap per result and close to exact."""

from __future__ import annotations

import statistics

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
