"""Run vs baseline: scipy agreement, verdicts, direction, BH control, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from dtf_core import cli
from dtf_core.analysis import compare, direction, importers
from dtf_core.analysis.stats import benjamini_hochberg, median_ci, median_ci_ranks
from dtf_core.store import Store, StoreReader


def samples_frame(
    rows: list[tuple[str, str, str, float, np.ndarray]], hw: str = "cpu"
) -> pd.DataFrame:
    """(run_id, benchmark, unit, timestamp, values) -> the table import format."""
    recs = [
        {
            "benchmark": b,
            "params": '{"n": 1}',
            "hardware": hw,
            "run_id": run,
            "timestamp": ts,
            "commit": f"c-{run}",
            "value": float(v),
            "unit": unit,
        }
        for run, b, unit, ts, values in rows
        for v in values
    ]
    return pd.DataFrame(recs)


def make_db(path, rows) -> str:
    with Store(path) as s:
        s.import_samples(importers.normalize(samples_frame(rows), "test"), suite="t", source="test")
    return str(path)


RNG = np.random.default_rng(42)


def lognorm(n: int, scale: float) -> np.ndarray:
    return scale * RNG.lognormal(0.0, 0.05, n)


@pytest.fixture
def db(tmp_path):
    rows = [
        ("base", "slower", "s", 1000.0, lognorm(30, 1.0)),
        ("run", "slower", "s", 2000.0, lognorm(30, 1.2)),
        ("base", "faster", "s", 1000.0, lognorm(30, 1.0)),
        ("run", "faster", "s", 2000.0, lognorm(30, 0.8)),
        ("base", "tiny-move", "s", 1000.0, lognorm(400, 1.0)),
        ("run", "tiny-move", "s", 2000.0, lognorm(400, 1.02)),
        ("base", "throughput", "ops/s", 1000.0, lognorm(30, 100.0)),
        ("run", "throughput", "ops/s", 2000.0, lognorm(30, 80.0)),
        ("base", "few", "s", 1000.0, lognorm(3, 1.0)),
        ("run", "few", "s", 2000.0, lognorm(3, 2.0)),
        ("run", "new-only", "s", 2000.0, lognorm(10, 1.0)),
    ]
    return make_db(tmp_path / "h.duckdb", rows)


def by_name(rows: list[compare.Comparison]) -> dict[str, compare.Comparison]:
    return {c.benchmark: c for c in rows}


def test_verdicts_are_direction_aware_with_floor_and_small_samples(db):
    with StoreReader(db) as s:
        got = by_name(compare.compare_runs(s, "base", "run"))
    assert got["slower"].verdict == "regressed"
    assert got["faster"].verdict == "improved"
    assert got["throughput"].verdict == "regressed"  # ops/s fell: higher is better
    assert got["throughput"].higher_is_better
    # 2 % slower with 400 samples a side: significant, but under the 5 % floor.
    assert got["tiny-move"].q_value is not None and got["tiny-move"].q_value < 0.05
    assert got["tiny-move"].verdict == "unchanged"
    assert got["few"].verdict == "insufficient data"  # 3 vs 3: p >= 0.1 whatever happens
    assert got["new-only"].verdict == "insufficient data"
    assert got["new-only"].n_baseline == 0


def test_pvalues_match_scipy_and_bh(db):
    with StoreReader(db) as s:
        frame = s.samples_of_runs(["base", "run"])
        rows = compare.compare_runs(s, "base", "run")
        welch = by_name(
            compare.compare_runs(s, "base", "run", compare.CompareOptions(test="welch"))
        )
    ps = []
    for c in rows:
        g = frame[frame.benchmark == c.benchmark]
        b = g[g.run_id == "base"].value.to_numpy()
        r = g[g.run_id == "run"].value.to_numpy()
        if c.p_value is None:
            continue
        assert c.p_value == pytest.approx(sps.mannwhitneyu(r, b).pvalue, rel=1e-12)
        assert c.baseline == pytest.approx(np.median(b))
        assert c.run_ci == median_ci(r)
        w = welch[c.benchmark]
        assert w.p_value == pytest.approx(sps.ttest_ind(r, b, equal_var=False).pvalue, rel=1e-12)
        assert w.change == pytest.approx(r.mean() / b.mean() - 1)
        ps.append((c.benchmark, c.p_value, c.q_value))
    qs = sps.false_discovery_control([p for _, p, _ in ps], method="bh")
    assert [q for _, _, q in ps] == pytest.approx(list(qs))


def test_benjamini_hochberg_keeps_false_discoveries_under_alpha():
    rng = np.random.default_rng(7)
    alpha, fdp = 0.1, []
    for _ in range(300):
        null = rng.uniform(size=180)
        real = sps.norm.sf(rng.normal(3.0, 1.0, size=20))  # one-sided p of true effects
        q = benjamini_hochberg(np.concatenate([null, real]))
        rejected = q <= alpha
        fdp.append(rejected[:180].sum() / max(rejected.sum(), 1))
    # BH guarantees E[FDP] <= alpha * m0 / m = 0.09.
    assert np.mean(fdp) <= alpha * 180 / 200 + 0.01
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5])
    q = benjamini_hochberg(p)
    assert np.isnan(q[1])
    finite = [0, 2, 3, 4]
    assert q[finite] == pytest.approx(sps.false_discovery_control(p[finite]))


def test_median_ci_ranks_agree_with_median_ci():
    ns = np.arange(1, 400)
    lo, hi = median_ci_ranks(ns)
    for n, a, b in zip(ns, lo, hi, strict=True):
        x = np.arange(n, dtype=float)
        assert median_ci(x) == (a, b)


@pytest.mark.parametrize(
    ("unit", "flag", "expected"),
    [
        ("s", None, False),
        ("ms", None, False),
        ("ops/s", None, True),
        ("items / sec", None, True),
        ("GB/s", None, True),
        ("fps", None, True),
        ("bytes", None, False),
        ("", None, False),
        ("s", True, True),
        ("ops/s", False, False),
        ("req per second", None, True),
    ],
)
def test_direction_rule(unit, flag, expected):
    assert direction.higher_is_better(unit, flag) is expected


def test_cli_compare_fail_on_regression_and_json(db):
    runner = CliRunner()
    res = runner.invoke(cli.main, ["compare", "--db", db, "--baseline", "base", "--run", "run"])
    assert res.exit_code == 0, res.output
    assert "| regressed | slower |" in res.output
    res = runner.invoke(
        cli.main,
        [
            "compare",
            "--db",
            db,
            "--baseline",
            "base",
            "--run",
            "run",
            "--fail-on-regression",
            "--json",
        ],
    )
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["counts"]["regressed"] == 2
    gate = res.stderr.splitlines()  # one line per regression, the commits to blame
    assert len(gate) == 2 and all(" vs baseline run base in " in line for line in gate)
    # The reverse comparison swaps regressions and improvements.
    res = runner.invoke(
        cli.main, ["compare", "--db", db, "--baseline", "run", "--run", "base", "--json"]
    )
    rev = {c["benchmark"]: c["verdict"] for c in json.loads(res.output)["comparisons"]}
    assert rev["slower"] == rev["throughput"] == "improved"
    assert rev["faster"] == "regressed"


def test_cli_compare_unknown_run_is_one_line_exit_2(db):
    res = CliRunner().invoke(
        cli.main, ["compare", "--db", db, "--baseline", "nope", "--run", "run"]
    )
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0
    assert "no run 'nope'" in res.output
