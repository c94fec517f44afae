"""Change points and trends: known answers, false-alarm rate, scipy agreement, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as sps
from support.history_seed import seeded_db

from dtf_core import cli
from dtf_core.analysis import changepoints as cp
from dtf_core.analysis import importers
from dtf_core.analysis import trends as tr
from dtf_core.analysis.history import load_history, parse_span
from dtf_core.store import Store, StoreReader


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    db, truth = seeded_db(
        tmp_path_factory.mktemp("seed") / "h.duckdb",
        benchmarks=40,
        runs=600,
        samples=3,
        hardware=2,
        seed=3,
        shift_share=0.3,
    )
    return str(db), truth


# ---- change points on arrays with known answers ---------------------------------


@pytest.mark.parametrize("noise", ["normal", "t3"])
def test_known_shift_found_at_its_index(noise):
    rng = np.random.default_rng(11)
    e = rng.normal(0, 0.02, 300) if noise == "normal" else 0.02 * rng.standard_t(3, 300)
    x = 1.0 + e
    x[180:] *= 1.10
    found = cp.detect(x)
    assert len(found) == 1
    # A heavy-tailed draw next to the shift can sit nearer the new level than the old.
    assert abs(found[0].index - 180) <= (0 if noise == "normal" else 1)
    assert found[0].change == pytest.approx(0.10, abs=0.02)
    assert found[0].p_value < 1e-6


def test_two_shifts_and_a_late_one():
    rng = np.random.default_rng(5)
    x = rng.normal(1.0, 0.02, 1000)
    x[300:] += 0.15
    x[650:] -= 0.30
    x[990:] += 0.2  # 10 runs at the very end of 1,000
    assert [c.index for c in cp.detect(x)] == [300, 650, 990]


def test_effect_floor_hides_small_real_shifts():
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 0.01, 2000)
    x[1000:] *= 1.02
    (found,) = cp.detect(x, cp.ChangePointOptions(min_shift=0.0))
    assert abs(found.index - 1000) <= 3  # a 2-sigma step: located within a few runs
    assert cp.detect(x, cp.ChangePointOptions(min_shift=0.05)) == []  # a fixed 5 % floor
    # the default floor is 1.5 x the run-to-run noise: a 2-sigma step passes, 1 sigma does not
    assert [c.index for c in cp.detect(x)] == [found.index]
    y = rng.normal(1.0, 0.01, 2000)
    y[1000:] *= 1.01
    assert len(cp.detect(y, cp.ChangePointOptions(min_shift=0.0))) == 1
    assert cp.detect(y) == []


def test_noise_with_heavy_outliers_stays_under_the_false_alarm_rate():
    # Student t(2) noise plus 2 % outliers 3x-10x: no shift anywhere. Without the
    # effect floor, series with any alarm must stay within alpha (documented).
    rng = np.random.default_rng(9)
    for alpha in (0.05, 0.001):
        opts = cp.ChangePointOptions(alpha=alpha, min_shift=0.0)
        alarms = 0
        for _ in range(600):
            x = 1.0 + 0.03 * rng.standard_t(2, 200)
            out = rng.uniform(size=200) < 0.02
            x[out] *= rng.uniform(3, 10, out.sum())
            alarms += bool(cp.detect(x, opts))
        # Binomial(600, alpha) upper tail at 99.9 %: alpha 0.05 -> 47, 0.001 -> 4.
        assert alarms <= sps.binom.ppf(0.999, 600, alpha), (alpha, alarms)


def test_scan_is_the_standardised_mann_whitney_statistic():
    rng = np.random.default_rng(1)
    x = np.round(rng.lognormal(size=80), 1)  # rounding makes ties
    z = cp.scan(x, 5)
    for k in (5, 17, 40, 75):
        ref = sps.mannwhitneyu(x[:k], x[k:], method="asymptotic", use_continuity=False)
        assert 2 * sps.norm.sf(abs(z[k])) == pytest.approx(ref.pvalue, rel=1e-9)
    ranks, tie = cp.ranks_and_ties(x)
    assert ranks == pytest.approx(sps.rankdata(x))
    _, counts = np.unique(x, return_counts=True)
    assert tie == pytest.approx(float(np.sum(counts**3 - counts)))


# ---- trends ----------------------------------------------------------------------


def test_theil_sen_matches_scipy_and_sampling_is_close():
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 100, 150))
    x = 0.3 * t + rng.standard_t(2, 150)
    ref = sps.theilslopes(x, t)
    assert tr.theil_sen(t, x) == pytest.approx(
        (ref.slope, ref.intercept, ref.low_slope, ref.high_slope)
    )
    t = np.sort(rng.uniform(0, 100, 1500))
    x = 0.3 * t + rng.standard_t(2, 1500) * 5
    ref = sps.theilslopes(x, t)
    slope, _, low, high = tr.theil_sen(t, x, exact_limit=200)
    width = ref.high_slope - ref.low_slope
    assert abs(slope - ref.slope) < 0.2 * width
    assert abs(low - ref.low_slope) < 0.3 * width
    assert abs(high - ref.high_slope) < 0.3 * width


def test_mann_kendall_agrees_with_the_textbook_statistic():
    rng = np.random.default_rng(8)
    t = np.arange(60.0)
    x = 0.02 * t + rng.normal(size=60)
    s = sum(np.sign(x[j] - x[i]) for i in range(60) for j in range(i + 1, 60))
    tau, _ = tr.mann_kendall(t, x)
    assert tau == pytest.approx(s / (60 * 59 / 2))


def test_robust_z_flags_the_outlier_not_the_level_shift():
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 0.01, 200)
    x[100:] += 0.5
    x[50] = 1.3
    z = tr.robust_z(x, [100])
    assert list(np.flatnonzero(np.abs(z) > 3.5)) == [50]


# ---- through the store --------------------------------------------------------------


def test_seeded_shifts_are_found_at_their_runs(seeded):
    db, truth = seeded
    with StoreReader(db) as s:
        hist = load_history(s)
    changes = cp.find_changes(hist)
    key = lambda d: (d["benchmark"], json.dumps(d["params"], sort_keys=True), d["hardware"])  # noqa: E731
    at = {(key(c), c["run_id"]) for c in changes}
    hits = sum((key(t), t["run_id"]) in at for t in truth)
    assert len(truth) >= 10
    assert hits >= 0.9 * len(truth)
    shifted = {key(t) for t in truth}
    spurious = [c for c in changes if key(c) not in shifted]
    assert len(spurious) <= 2  # seeded drifts may legitimately show as a shift
    for c in changes:
        assert c["kind"] == (
            "regression" if (c["change"] > 0) != c["higher_is_better"] else "improvement"
        )


def test_trend_verdicts_follow_direction(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        ts = 1_700_000_000 + i * 86400.0
        rows.append((f"r{i:03d}", "slowing", "s", ts, 1.0 + 0.01 * i + rng.normal(0, 0.01, 3)))
        rows.append((f"r{i:03d}", "throughput", "ops/s", ts, 100 + i + rng.normal(0, 1, 3)))
        rows.append((f"r{i:03d}", "flat", "s", ts, 1.0 + rng.normal(0, 0.01, 3)))
    recs = [
        {"benchmark": b, "params": "{}", "hardware": "cpu", "run_id": run, "timestamp": ts,
         "commit": run, "value": float(v), "unit": unit}
        for run, b, unit, ts, values in rows
        for v in values
    ]  # fmt: skip
    db = tmp_path / "t.duckdb"
    with Store(db) as s:
        s.import_samples(importers.normalize(pd.DataFrame(recs), "t"), suite="t", source="t")
    with StoreReader(db) as s:
        got = {r["benchmark"]: r for r in tr.find_trends(load_history(s))}
    assert got["slowing"]["verdict"] == "worsening"
    assert got["throughput"]["verdict"] == "improving"
    assert got["flat"]["verdict"] == "stable"
    f = got["slowing"]["forecast"]
    assert f["low"] < 1.0 + 0.01 * 66 < f["high"]  # the line, 7 days after the last run
    assert got["slowing"]["rel_slope_per_day"] == pytest.approx(0.01 / 1.3, rel=0.2)


def test_cli_regressions_and_trends(seeded):
    db, _ = seeded
    runner = CliRunner()
    res = runner.invoke(cli.main, ["regressions", "--db", db, "--json", "--all"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["changes"] and {"run_id", "commit", "change", "p_value"} <= set(doc["changes"][0])
    res = runner.invoke(cli.main, ["regressions", "--db", db, "--benchmark", "matmul*"])
    assert res.exit_code == 0 and "# Level shifts" in res.output
    res = runner.invoke(cli.main, ["trends", "--db", db, "--since", "30d", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["trends"] and all(t["last_at"] >= t["first_at"] for t in doc["trends"])
    res = runner.invoke(cli.main, ["trends", "--db", db, "--since", "a month"])
    assert res.exit_code == 2 and "--since 'a month'" in res.output


def test_parse_span():
    assert parse_span("30d") == 30 * 86400
    assert parse_span("1.5h") == 5400
