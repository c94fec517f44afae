"""Run vs baseline: one verdict per benchmark x params x hardware.

For each key present in either run:

1. A two-sample test on the raw samples: Mann-Whitney U (default; no
   normality assumption, robust to the outliers timings have) or Welch's t.
2. Benjamini-Hochberg across every testable key of the suite, so that a suite
   of 500 benchmarks does not flag 25 of them by chance at alpha = 0.05.
3. An effect-size floor (default 5 %): a significant change smaller than the
   floor is ``unchanged``; many samples make tiny changes significant, and a
   PR should not fail on a 0.3 % wobble.
4. Direction (:mod:`~dtf_core.analysis.direction`): a slower time and a lower
   throughput are both ``regressed``.

``insufficient data`` when a side has no samples, or too few for the test to
ever reach significance: Mann-Whitney's smallest two-sided p-value is
``2 / C(n1 + n2, n1)`` (3 vs 3 samples: 0.1, never below alpha = 0.05).
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from dtf_core.analysis import direction
from dtf_core.analysis.stats import benjamini_hochberg, median_ci
from dtf_core.errors import OptionError
from dtf_core.store import StoreReader

Test = Literal["mannwhitney", "welch"]
REGRESSED, IMPROVED, UNCHANGED, INSUFFICIENT = (
    "regressed", "improved", "unchanged", "insufficient data",
)  # fmt: skip
VERDICTS = (REGRESSED, IMPROVED, UNCHANGED, INSUFFICIENT)  # worst first: the order reports use


@dataclass(frozen=True)
class CompareOptions:
    test: Test = "mannwhitney"
    alpha: float = 0.05  # false discovery rate across the suite (BH)
    min_effect: float = 0.05  # relative change below this is never a verdict

    def __post_init__(self) -> None:
        if self.test not in ("mannwhitney", "welch"):
            raise OptionError(f"--test must be mannwhitney or welch, not {self.test!r}")
        if not 0 < self.alpha < 1:
            raise OptionError(f"--alpha must lie in (0, 1), got {self.alpha}")
        if not 0 <= self.min_effect < 10:
            raise OptionError(f"--min-effect is a fraction (0.05 = 5 %), got {self.min_effect}")


@dataclass
class Comparison:
    benchmark: str
    params: dict[str, Any]
    hardware: str
    unit: str
    higher_is_better: bool
    n_baseline: int
    n_run: int
    baseline: float | None  # median (Mann-Whitney) or mean (Welch)
    run: float | None
    baseline_ci: tuple[float, float] | None  # of the median
    run_ci: tuple[float, float] | None
    change: float | None  # relative: (run - baseline) / |baseline|; +-inf from a zero baseline
    p_value: float | None
    q_value: float | None  # BH-adjusted across the suite
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict_counts(rows: Sequence[Comparison]) -> dict[str, int]:
    """How many comparisons got each verdict, every verdict present, worst first."""
    n = Counter(c.verdict for c in rows)
    return {v: n[v] for v in VERDICTS}


def min_pvalue_mannwhitney(n1: int, n2: int) -> float:
    """The smallest two-sided p-value Mann-Whitney can give for these sizes."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def two_sample(base: np.ndarray, run: np.ndarray, test: Test) -> tuple[float, float]:
    """``(p_value, relative change)`` of ``run`` vs ``base``; NaN p when untestable."""
    if test == "welch":
        b_loc, r_loc = float(np.mean(base)), float(np.mean(run))
    else:
        b_loc, r_loc = float(np.median(base)), float(np.median(run))
    # Relative to |baseline| so that negative values keep the sign meaning "up";
    # a zero baseline makes any change infinitely large, in its own direction.
    if b_loc != 0:
        change = (r_loc - b_loc) / abs(b_loc)
    else:
        change = 0.0 if r_loc == b_loc else math.copysign(math.inf, r_loc - b_loc)
    if test == "welch":
        if min(len(base), len(run)) < 2:
            return math.nan, change
        if np.ptp(base) == 0 and np.ptp(run) == 0:
            return (1.0 if b_loc == r_loc else 0.0), change
        p = float(sps.ttest_ind(run, base, equal_var=False).pvalue)
    else:
        if min(len(base), len(run)) == 0:
            return math.nan, change
        if np.ptp(np.concatenate([base, run])) == 0:
            return 1.0, change  # all values equal: nothing to tell apart
        p = float(sps.mannwhitneyu(run, base, alternative="two-sided").pvalue)
    return p, change


def compare_frames(samples: Any, baseline: str, run: str, opts: CompareOptions) -> list[Comparison]:
    """Compare the samples (``Store.samples_of_runs`` frame) of ``run`` with ``baseline``."""
    out: list[Comparison] = []
    pvals: list[float] = []
    for (bench, params, hw), g in samples.groupby(
        ["benchmark", "params", "hardware"], sort=True, dropna=False
    ):
        b = g.loc[g["run_id"] == baseline, "value"].to_numpy(np.float64)
        r = g.loc[g["run_id"] == run, "value"].to_numpy(np.float64)
        unit = str(g["unit"].mode().iloc[0])
        hib = direction.higher_is_better(unit, _flag(g["higher_is_better"]))
        testable = len(b) > 0 and len(r) > 0
        if opts.test == "mannwhitney" and testable:
            testable = min_pvalue_mannwhitney(len(b), len(r)) <= opts.alpha
        elif testable:
            testable = min(len(b), len(r)) >= 2
        p, change = two_sample(b, r, opts.test) if len(b) and len(r) else (math.nan, math.nan)
        if not testable:
            p = math.nan
        out.append(
            Comparison(
                benchmark=str(bench),
                params=json.loads(params or "{}"),
                hardware=str(hw),
                unit=unit,
                higher_is_better=hib,
                n_baseline=len(b),
                n_run=len(r),
                baseline=_loc(b, opts.test),
                run=_loc(r, opts.test),
                baseline_ci=median_ci(b) if len(b) else None,
                run_ci=median_ci(r) if len(r) else None,
                change=None if math.isnan(change) else change,
                p_value=p if math.isfinite(p) else None,
                q_value=None,
                verdict=INSUFFICIENT,
            )
        )
        pvals.append(p)
    qvals = benjamini_hochberg(pvals)
    for c, q in zip(out, qvals, strict=True):
        if not math.isfinite(q):
            continue
        c.q_value = float(q)
        c.verdict = verdict(c.change, float(q), c.higher_is_better, opts)
    return out


def verdict(change: float | None, q: float, higher_better: bool, opts: CompareOptions) -> str:
    if change is None:
        return UNCHANGED
    bad = direction.worse(change, higher_better)
    if q > opts.alpha or abs(change) < opts.min_effect:
        return UNCHANGED
    return REGRESSED if bad > 0 else IMPROVED


def compare_runs(
    store: StoreReader, baseline: str, run: str, opts: CompareOptions | None = None
) -> list[Comparison]:
    """Verdicts for every benchmark key of ``run`` and ``baseline`` (both must exist)."""
    store.get_run(baseline)  # RunNotFoundError names the missing one
    store.get_run(run)
    if baseline == run:
        raise OptionError("--baseline and --run name the same run; compare two different runs")
    frame = store.samples_of_runs([baseline, run])
    return compare_frames(frame, baseline, run, opts or CompareOptions())


def matching(rows: list[Comparison], benchmark: str | None) -> list[Comparison]:
    """The comparisons whose benchmark matches the glob ``benchmark`` (all for None)."""
    if not benchmark:
        return rows
    return [c for c in rows if fnmatch.fnmatchcase(c.benchmark, benchmark)]


def _loc(x: np.ndarray, test: Test) -> float | None:
    if not len(x):
        return None
    return float(np.mean(x) if test == "welch" else np.median(x))


def _flag(col: Any) -> bool | None:
    """The first real boolean in a column of optional flags."""
    for v in col:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
    return None
