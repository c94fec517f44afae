"""The worker health rules, table-style: no Dask, no database."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dtf_core.run.health import (
    DEGRADED,
    HEALTHY,
    QUARANTINED,
    HealthPolicy,
    Observation,
    WorkerFacts,
    judge,
    pace,
    slowness,
)
from dtf_core.run.pace import Pace

POLICY = HealthPolicy(recover_after=30.0)


def obs(*ratios: float, running: bool = False) -> list[Observation]:
    return [Observation(f"t{i}", r, r * 0.5, 0.5, running) for i, r in enumerate(ratios)]


def facts(name: str = "w", ratios: tuple[float, ...] = (), **kw: object) -> WorkerFacts:
    return WorkerFacts(name, obs(*ratios), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "f", "state", "words"),
    [
        (HEALTHY, facts(ratios=(1.0, 1.1, 0.9)), HEALTHY, ""),
        # one finished task 4x slower proves little (a heavier sibling) ...
        (HEALTHY, facts(ratios=(4.0,)), HEALTHY, ""),
        # ... two do
        (HEALTHY, facts(ratios=(4.0, 5.0)), DEGRADED, "slow: 4.5x its peers"),
        # one still running far past its peers is live evidence
        (HEALTHY, WorkerFacts("w", obs(8.0, running=True)), DEGRADED, "has run 4.0 s"),
        # slow enough for long enough: quarantined
        (HEALTHY, facts(ratios=(12.0, 20.0, 15.0)), QUARANTINED, "slow: 15.0x"),
        (HEALTHY, facts(infra_streak=3, last_infra="No space left"), QUARANTINED,
         "3 infrastructure failures in a row (last: No space left)"),
        (HEALTHY, facts(infra_streak=2), DEGRADED, "2 infrastructure failures"),
        (HEALTHY, facts(heartbeat_age=12.0), DEGRADED, "no heartbeat for 12 s"),
        (HEALTHY, facts(sample={"mem_pct": 97.0}), DEGRADED, "memory 97% used"),
        (HEALTHY, facts(sample={"disk_free_bytes": 10_000_000}), DEGRADED, "disk free"),
        (HEALTHY, facts(sample={"gpus": [{"temp_c": 95.0}]}), DEGRADED, "GPU 0 at 95"),
        # always 4x slower than the others: that is how this machine is
        (HEALTHY, facts(ratios=(4.0, 4.2), baseline=4.0), HEALTHY, ""),
        # quarantine holds whatever the facts: only probation releases
        (QUARANTINED, facts(ratios=(1.0, 1.0)), QUARANTINED, "before"),
    ],
)  # fmt: skip
def test_judge(current: str, f: WorkerFacts, state: str, words: str) -> None:
    v = judge(current, f, {}, POLICY, now=100.0, reason="before")
    assert v.state == state
    assert words in v.reason


def test_peers_set_the_bar() -> None:
    # Everyone 4x slower than history today (a loaded box): nobody is singled out.
    peers = {"a": math.log(4.0), "b": math.log(4.2), "c": math.log(3.9)}
    f = facts("a", ratios=(4.0, 4.1))
    assert judge(HEALTHY, f, peers, POLICY, now=0.0).state == HEALTHY
    # ... but 4x slower than the others is slow.
    peers = {"a": math.log(4.0), "b": 0.0, "c": 0.05, "d": -0.05}
    s = slowness(f, peers, POLICY)
    assert s is not None and s.factor == pytest.approx(4.0, rel=0.05)
    assert judge(HEALTHY, f, peers, POLICY, now=0.0).state == DEGRADED


def test_wide_peers_widen_the_bar() -> None:
    # Peers spread over 1x..5x: 4x is within 3 MADs, not an outlier.
    peers = {"b": 0.0, "c": math.log(2.0), "d": math.log(5.0), "e": math.log(3.0)}
    assert judge(HEALTHY, facts("a", ratios=(4.0, 4.0)), peers, POLICY, now=0.0).state == HEALTHY


def test_recovery_needs_calm_for_a_while() -> None:
    f = facts(ratios=(1.0, 1.1))
    v = judge(DEGRADED, f, {}, POLICY, now=100.0, reason="slow: 4x")
    assert (v.state, v.calm_since) == (DEGRADED, 100.0)
    v = judge(DEGRADED, f, {}, POLICY, now=120.0, calm_since=v.calm_since, reason="slow: 4x")
    assert v.state == DEGRADED
    v = judge(DEGRADED, f, {}, POLICY, now=131.0, calm_since=100.0, reason="slow: 4x")
    assert v.state == HEALTHY and "was: slow: 4x" in v.reason
    # Between recover-factor and slow-factor: still degraded, and the clock does not run.
    v = judge(DEGRADED, facts(ratios=(2.0, 2.0)), {}, POLICY, now=200.0, calm_since=100.0)
    assert (v.state, v.calm_since) == (DEGRADED, None)


def test_pace_is_a_median_of_logs() -> None:
    assert pace([]) is None
    assert math.exp(pace(obs(1.0, 4.0, 16.0)) or 0) == pytest.approx(4.0)


def test_expected_time_comes_from_the_same_task_or_alike_siblings() -> None:
    history = pd.DataFrame(
        {"task_id": ["a", "a", "a"], "worker": ["w1", "w1", "w2"], "wall_s": [2.0, 2.2, 9.0]}
    )
    p = Pace(history)
    assert p.expected("a", "a", elsewhere="w2") == pytest.approx(2.1)  # not its own
    assert p.expected("a", "a", elsewhere="w9") == pytest.approx(2.2)
    assert p.expected("b", "b") is None
    # Matrix siblings in this run, on other workers, when alike.
    p.note("m[i=0]", "m", "w1", 0.50)
    assert p.expected("m[i=5]", "m", elsewhere="w2") is None  # one is not a yardstick
    p.note("m[i=1]", "m", "w1", 0.55)
    assert p.expected("m[i=5]", "m", elsewhere="w2") == pytest.approx(0.525)
    assert p.expected("m[i=5]", "m", elsewhere="w1") is None  # its own do not count
    # Siblings over sizes are not alike: no yardstick.
    p.note("s[n=1]", "s", "w1", 0.01)
    p.note("s[n=1000]", "s", "w1", 5.0)
    assert p.expected("s[n=10]", "s", elsewhere="w2") is None
    # The same task in this run (a copy, a retry) first.
    p.note("m[i=5]", "m", "w3", 0.7)
    assert p.expected("m[i=5]", "m", elsewhere="w2") == pytest.approx(0.7)


def test_policy_from_config() -> None:
    p = HealthPolicy.from_config()
    assert p.slow_factor == 3.0 and p.infra_streak == 3 and p.disk_min_free == 1e9
