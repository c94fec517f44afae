"""Siblings (dtf_core.run.siblings): the same yardstick as sorting every sibling's
duration for each question, at a cost that does not grow with the matrix."""

from __future__ import annotations

import math
import random
import statistics
import time

import pytest

from dtf_core.run.pace import SIBLING_SPREAD, Pace
from dtf_core.run.siblings import Siblings


def by_sorting(by_worker: dict[str, list[float]], without: str | None) -> float | None:
    """The yardstick as pace.py computed it before: list, log, sort, per question."""
    values = [v for w, vs in by_worker.items() if w != without for v in vs]
    if len(values) < 2:
        return None
    logs = [math.log(d) for d in values]
    mid = statistics.median(logs)
    spread = 1.4826 * statistics.median(abs(x - mid) for x in logs)
    return statistics.median(values) if spread <= math.log(SIBLING_SPREAD) else None


@pytest.mark.parametrize("seed", range(12))
def test_same_answer_as_sorting_every_sibling(seed: int) -> None:
    rng = random.Random(seed)
    sib, ref = Siblings(), {}
    workers = [f"w{i}" for i in range(rng.randint(1, 5))]
    width = rng.choice([0.0, 0.05, 0.2, 0.3, 0.5, 1.5])  # alike ... a matrix over sizes
    answers = set()
    for _ in range(rng.randint(1, 60)):
        w = rng.choice(workers)
        d = rng.choice([1.0, 2.0]) if width == 0 else math.exp(rng.gauss(0, width))
        d *= 3.0 if w == "w0" and seed % 3 == 0 else 1.0  # a slow worker
        sib.add(w, d)
        ref.setdefault(w, []).append(d)
        for without in [None, "nobody", *workers]:
            want = by_sorting(ref, without)
            got = sib.yardstick(without, SIBLING_SPREAD)
            answers.add(want is None)
            if want is None:
                assert got is None, (without, sorted(ref.items()))
            else:
                assert got == want, (without, sorted(ref.items()))


def test_even_count_decided_by_the_two_middle_deviations() -> None:
    # Four values: deviations of the logs 0.2, 0.2, 0.35, 0.35 around 0 (MAD 0.275 ->
    # 0.408 scaled, above log 1.5 = 0.405) and 0.2, 0.2, 0.34, 0.34 (just under).
    for outer, alike in ((0.35, False), (0.34, True)):
        sib = Siblings()
        for x in (-outer, -0.2, 0.2, outer):
            sib.add("a", math.exp(x))
        assert (sib.yardstick(None, SIBLING_SPREAD) is not None) is alike
        ref = by_sorting({"a": [math.exp(x) for x in (-outer, -0.2, 0.2, outer)]}, None)
        assert (ref is not None) is alike


def test_pace_measures_against_siblings_on_other_workers() -> None:
    pace = Pace()
    for i in range(10):
        pace.note(f"t[{i}]", "t", "fast", 1.0 + i / 100)
    for i in range(10, 13):
        pace.note(f"t[{i}]", "t", "slow", 9.0)
    assert pace.expected("t[99]", "t", elsewhere="slow") == pytest.approx(1.045)
    assert pace.expected("t[99]", "t", elsewhere="fast") == 9.0  # only the slow one's
    for i in range(13, 16):
        pace.note(f"t[{i}]", "t", "slow", 1.0)
    assert pace.expected("t[99]", "t", elsewhere="fast") is None  # 9 s and 1 s: not alike
    assert pace.expected("t[99]", "other", elsewhere="fast") is None


def cpu_per_question(n: int, questions: int = 400) -> float:
    rng = random.Random(n)
    sib = Siblings()
    for i in range(n):
        sib.add(f"w{i % 50}", math.exp(rng.gauss(0, 0.1)))
    t0 = time.process_time()
    for i in range(questions):
        sib.yardstick(f"w{i % 50}", SIBLING_SPREAD)
    return (time.process_time() - t0) / questions


def test_a_question_costs_about_the_same_at_eight_times_the_siblings() -> None:
    # Sorting per question (the old way) costs ~9x more here; bisection ~1.3x.
    small = min(cpu_per_question(2_000) for _ in range(3))
    large = min(cpu_per_question(16_000) for _ in range(3))
    assert large < 4 * small, (small, large)
