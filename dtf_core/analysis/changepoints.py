"""Level shifts in a benchmark's history: binary segmentation with a rank scan.

Why this method (docs/analysis.md has the measurements):

* **Rank-based.** Each candidate split ``k`` of a segment is scored by the
  standardised Mann-Whitney statistic of ``x[:k]`` vs ``x[k:]``, computed for
  every ``k`` at once from cumulative sums of ranks: O(n log n) per segment,
  and a 100x outlier moves a rank by one, so heavy tails cannot fake a shift.
* **Analytic p-value for the maximum.** The largest of n - 2m correlated
  statistics is not normal; its tail is the Miller-Siegmund (1982)
  approximation for a maximally selected standardised statistic (the one
  behind R's ``maxstat``). It is slightly conservative on finite series, so the
  measured false-alarm rate stays under ``alpha``. No permutations: E-divisive
  with permutation tests costs O(n^2) x permutations per series, hours for
  200 x 5,000 runs; this costs milliseconds.
* **Standardised, not Pettitt's raw U.** Pettitt's statistic cannot see a
  shift in the last few dozen of 5,000 runs, which is exactly where a fresh
  regression sits; the standardised scan sees 10 runs (``min_size`` 5).
* **Pruned.** After splitting, every change point is re-tested on the
  segments on either side of it (its neighbours may have moved), and the
  weakest that fails ``alpha`` or the effect floor is dropped, until all
  pass. The floor keeps a long, quiet history from reporting statistically
  real 0.5 % wobbles.
* **Adaptive floor.** A fixed 5 % floor misses a 3 % slowdown on a series
  that moves 1 % from run to run, and a lower fixed floor lets wobbles of a
  noisy series through. So the floor is ``noise_factor`` times the series' own
  run-to-run noise (:func:`run_noise`), but at least ``abs_floor``;
  ``min_shift`` set replaces it with a fixed floor
  (``scripts/bench/changepoints.py`` measures both).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dtf_core.analysis import direction
from dtf_core.analysis.history import History
from dtf_core.errors import OptionError

_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class ChangePointOptions:
    alpha: float = 0.001  # per test; the whole history of a series shares it (see docs)
    min_size: int = 5  # runs on each side of a shift
    # Fixed relative floor of a shift; None: adaptive, max(abs_floor, noise_factor * noise).
    min_shift: float | None = None
    noise_factor: float = 1.5  # multiples of the series' run-to-run noise a shift must reach
    abs_floor: float = 0.01  # never report a shift below this, however quiet the series
    max_changes: int = 30  # per series

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise OptionError(f"--alpha must lie in (0, 1), got {self.alpha}")
        if self.min_size < 2:
            raise OptionError(f"--min-size must be at least 2, got {self.min_size}")
        if self.min_shift is not None and self.min_shift < 0:
            raise OptionError(f"--min-shift is a fraction >= 0, got {self.min_shift}")
        if self.noise_factor < 0 or self.abs_floor < 0:
            raise OptionError(
                f"--noise-factor and the absolute floor must be >= 0, got "
                f"{self.noise_factor} and {self.abs_floor}"
            )

    def floor(self, x: np.ndarray) -> float:
        """The smallest relative shift of series ``x`` that is reported."""
        if self.min_shift is not None:
            return self.min_shift
        return max(self.abs_floor, self.noise_factor * run_noise(x))


@dataclass
class ChangePoint:
    index: int  # first point of the new level
    before: float  # median of the segment before
    after: float  # median of the segment after
    change: float  # (after - before) / |before|
    p_value: float
    extra: dict[str, Any] = field(default_factory=dict)


def run_noise(x: np.ndarray) -> float:
    """Run-to-run noise of ``x`` relative to its median: the robust standard
    deviation of one run, from the MAD of successive differences / sqrt 2.

    Differences, not the values: a level shift moves one difference, not half
    the series, and an outlier run moves two, so neither inflates the MAD.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 3:
        return 0.0
    med = float(np.median(x))
    if med == 0:
        return 0.0
    d = np.diff(x)
    mad = float(np.median(np.abs(d - np.median(d)))) * 1.482602218505602
    return mad / math.sqrt(2.0) / abs(med)


def ranks_and_ties(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Average ranks (1-based, as ``scipy.stats.rankdata``) and ``sum(t^3 - t)`` over ties."""
    n = len(x)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    avg = starts + (counts + 1) / 2.0
    ranks = np.empty(n)
    ranks[order] = np.repeat(avg, counts)
    c = counts.astype(np.float64)
    return ranks, float(np.sum(c * c * c - c))


def scan(x: np.ndarray, min_size: int) -> np.ndarray:
    """Standardised Mann-Whitney z of every split ``x[:k] | x[k:]`` (NaN where not allowed).

    ``z[k]`` > 0 means the first part ranks high, i.e. the level went down at ``k``.
    """
    n = len(x)
    z = np.full(n, np.nan)
    if n < 2 * min_size:
        return z
    ranks, tie = ranks_and_ties(x)
    k = np.arange(min_size, n - min_size + 1, dtype=np.float64)
    head = np.cumsum(ranks)[min_size - 1 : n - min_size]
    var = k * (n - k) / 12.0 * ((n + 1) - tie / (n * (n - 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        z[min_size : n - min_size + 1] = (head - k * (n + 1) / 2.0) / np.sqrt(var)
    return z


def maxstat_pvalue(b: float, n: int, min_size: int) -> float:
    """P(max_k |Z_k| >= b) under no change, for splits with ``min_size`` points a side.

    Miller & Siegmund (1982): phi(b) (b - 1/b) log(e2 (1 - e1) / (e1 (1 - e2)))
    + 4 phi(b) / b, with e1 = min_size / n and e2 = 1 - e1.
    """
    if not math.isfinite(b) or b <= 1.0:
        return 1.0
    e1 = min_size / n
    if e1 >= 0.5:
        return 1.0
    phi = math.exp(-0.5 * b * b) / _SQRT_2PI
    p = phi * (b - 1.0 / b) * math.log(((1.0 - e1) / e1) ** 2) + 4.0 * phi / b
    return min(1.0, max(p, 0.0))


def _rel(before: float, after: float) -> float:
    if before != 0:
        return (after - before) / abs(before)
    return 0.0 if after == before else math.copysign(math.inf, after - before)


def l1_cost(a: np.ndarray) -> float:
    return float(np.abs(a - np.median(a)).sum())


def refine(x: np.ndarray, k: int, min_size: int) -> int:
    """The split near ``k`` that leaves the least absolute deviation from the two medians.

    The standardised scan is flat around a clean shift (moving the split one
    run costs it almost nothing), so it may land a run early or late; the L1
    cost of the two-median fit pins the run where the level changed.
    """
    lo, hi = max(min_size, k - 2 * min_size), min(len(x) - min_size, k + 2 * min_size)
    return min(range(lo, hi + 1), key=lambda j: (l1_cost(x[:j]) + l1_cost(x[j:]), abs(j - k)))


def _split_p(x: np.ndarray, k: int, min_size: int) -> float:
    z = scan(x, min_size)
    return maxstat_pvalue(abs(float(z[k])), len(x), min_size) if math.isfinite(z[k]) else 1.0


def detect(x: np.ndarray, opts: ChangePointOptions | None = None) -> list[ChangePoint]:
    """Level shifts of one series (values in time order).

    Remembered by the series' values: a run's report asks three times for each
    series (its trend, the list of shifts, its chart) and an attached console
    asks again at every refresh; the answer depends on the values alone."""
    o = opts or ChangePointOptions()
    x = np.ascontiguousarray(x, dtype=np.float64)
    if len(x) > _REMEMBER_UP_TO:  # the memory stays bounded: 1,024 x 16 kB at most
        return list(_scan_all(x, o))
    return [dataclasses.replace(c, extra=dict(c.extra)) for c in _remembered(x.tobytes(), o)]


_REMEMBER_UP_TO = 2000


@functools.lru_cache(maxsize=1024)
def _remembered(data: bytes, o: ChangePointOptions) -> tuple[ChangePoint, ...]:
    return _scan_all(np.frombuffer(data, dtype=np.float64), o)


def _scan_all(x: np.ndarray, o: ChangePointOptions) -> tuple[ChangePoint, ...]:
    found: list[int] = []
    stack = [(0, len(x))]
    while stack and len(found) < o.max_changes:
        lo, hi = stack.pop()
        z = np.abs(scan(x[lo:hi], o.min_size))
        if not np.isfinite(z).any():
            continue
        k = int(np.nanargmax(z))
        if maxstat_pvalue(float(z[k]), hi - lo, o.min_size) < o.alpha:
            k = refine(x[lo:hi], k, o.min_size)
            found.append(lo + k)
            stack += [(lo, lo + k), (lo + k, hi)]
    return tuple(prune(x, sorted(found), o))


def prune(x: np.ndarray, cps: list[int], o: ChangePointOptions) -> list[ChangePoint]:
    """Re-test each change point between its neighbours; drop the weakest failure, repeat."""
    floor = o.floor(x)
    while True:
        bounds = [0, *cps, len(x)]
        out = []
        for i, cp in enumerate(cps):
            lo, hi = bounds[i], bounds[i + 2]
            before, after = float(np.median(x[lo:cp])), float(np.median(x[cp:hi]))
            p = _split_p(x[lo:hi], cp - lo, o.min_size)
            out.append(ChangePoint(cp, before, after, _rel(before, after), p, {"floor": floor}))
        failing = [c for c in out if c.p_value >= o.alpha or abs(c.change) < floor]
        if not failing:
            return out
        weakest = min(failing, key=lambda c: (abs(c.change) >= floor, abs(c.change)))
        cps = [cp for cp in cps if cp != weakest.index]


def find_changes(history: History, opts: ChangePointOptions | None = None) -> list[dict[str, Any]]:
    """Every level shift of every series, newest first, as JSON-ready dicts.

    Each names the first run at the new level (``run_id``, ``commit``,
    ``started_at``), the last run before it (``previous_run_id``), the medians
    on either side, the relative ``change``, its ``p_value``, the effect
    ``floor`` it passed and ``kind``: ``regression`` or ``improvement`` by the
    benchmark's direction.
    """
    o = opts or ChangePointOptions()
    out: list[dict[str, Any]] = []
    for s in history:
        for c in detect(s.x, o):
            first = history.run(int(s.rix[c.index]))
            prev = history.run(int(s.rix[c.index - 1]))
            worse = direction.worse(c.change, s.higher_is_better) > 0
            out.append(
                {
                    **s.key(),
                    **first,
                    "previous_run_id": prev["run_id"],
                    "previous_commit": prev["commit"],
                    "index": c.index,
                    "points": len(s.x),
                    **{k: v for k, v in asdict(c).items() if k not in ("index", "extra")},
                    "floor": c.extra.get("floor"),
                    "kind": "regression" if worse else "improvement",
                }
            )
    out.sort(key=lambda d: (-d["started_at"], d["benchmark"]))
    return out
