"""Worker health states and the rules that move a worker between them: pure functions.

``healthy`` -> ``degraded`` -> ``quarantined``, each with the reason as a sentence.

* **Slow**: each task a worker ran (or is running, past its expected time: a
  lower bound) gives a ratio, its duration over the same task's elsewhere
  (:mod:`dtf_core.run.pace`). A worker's pace is the median of the logs of its
  last ratios, or the ratio of a task it is running now if that is worse; it
  is slow by how much that exceeds its peers' (their median,
  with 3 scaled MADs of slack once there are three peers) and its own usual
  pace in earlier runs (a worker that is always 2x slower is not degraded for
  it). Degraded from ``slow-factor`` over two tasks (or one still running, or
  cancelled while running, that far past its peers); quarantined from
  ``quarantine-factor`` over ``min-tasks`` tasks.
* **Infrastructure failures in a row** (``infrastructure``, ``worker-lost``,
  ``resource``): two degrade, ``infra-streak`` quarantine; a pass resets.
* **Heartbeat gap**, **memory**, **disk**, **GPU heat**: degraded.

Hysteresis: a degraded worker is healthy again only once every sign has been
calm (slow below ``recover-factor``) for ``recover-after`` seconds; a
quarantined one only through probation (:mod:`dtf_core.run.monitor`): one
task that passes at its peers' pace.

The monitor gathers :class:`WorkerFacts`; :func:`judge` answers a :class:`Verdict`.
Tested table-style in ``tests/unit/test_health_rules.py``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.utils

from dtf_core import config

HEALTHY, DEGRADED, QUARANTINED = "healthy", "degraded", "quarantined"
STATES = (HEALTHY, DEGRADED, QUARANTINED)
INFRA = frozenset({"infrastructure", "worker-lost", "resource"})
GPU_HOT_C = 90.0
_MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data


@dataclass(frozen=True)
class HealthPolicy:
    slow_factor: float = 3.0
    quarantine_factor: float = 10.0
    min_tasks: int = 3
    recover_factor: float = 1.5
    recover_after: float = 30.0
    infra_streak: int = 3
    heartbeat_gap: float = 10.0
    memory_limit: float = 0.95
    disk_min_free: float = 1e9
    probation_after: float = 30.0

    @classmethod
    def from_config(cls) -> HealthPolicy:
        get = config.get
        return cls(
            slow_factor=float(get("health.slow-factor")),
            quarantine_factor=float(get("health.quarantine-factor")),
            min_tasks=int(get("health.min-tasks")),
            recover_factor=float(get("health.recover-factor")),
            recover_after=config.seconds("health.recover-after"),
            infra_streak=int(get("health.infra-streak")),
            heartbeat_gap=config.seconds("health.heartbeat-gap"),
            memory_limit=float(get("health.memory-limit")),
            disk_min_free=float(dask.utils.parse_bytes(str(get("health.disk-min-free")))),
            probation_after=config.seconds("health.probation-after"),
        )


@dataclass(frozen=True)
class Observation:
    """One task's pace on a worker: duration / expected duration elsewhere."""

    task_id: str
    ratio: float
    seconds: float  # how long it ran (so far, when ``running``)
    expected: float
    running: bool = False  # still running, or cancelled while running: a lower bound


@dataclass
class WorkerFacts:
    """What the monitor knows about one worker now."""

    name: str
    observations: Sequence[Observation] = ()
    infra_streak: int = 0
    last_infra: str = ""  # the last infrastructure failure's message
    heartbeat_age: float | None = None  # seconds since its last heartbeat
    sample: Mapping[str, Any] = field(default_factory=dict)  # worker/health.py host_sample
    baseline: float | None = None  # its usual relative speed in earlier runs


@dataclass(frozen=True)
class Slowness:
    factor: float  # how much slower than its peers and its own usual pace (1.0: on pace)
    pace: float  # its own median ratio (rel_speed), before peers and history
    tasks: int
    worst: Observation | None
    noise: float = 1.0  # the peers' spread as a factor (3 scaled MADs): no flag within it

    def beyond(self, factor: float) -> bool:
        """Slower than ``factor`` and than the peers' own spread."""
        return self.factor >= max(factor, self.noise)


@dataclass(frozen=True)
class Verdict:
    state: str
    reason: str
    calm_since: float | None = None  # when every sign went calm (degraded, recovering)


def pace(observations: Sequence[Observation]) -> float | None:
    """Median log ratio of a worker's observations; None without any."""
    logs = [math.log(max(o.ratio, 1e-9)) for o in observations]
    return statistics.median(logs) if logs else None


def slowness(
    facts: WorkerFacts, peers: Mapping[str, float], policy: HealthPolicy
) -> Slowness | None:
    """``facts``' worker against ``peers`` (other workers' :func:`pace`) and its history."""
    own = pace(facts.observations)
    if own is None:
        return None
    others = [v for k, v in peers.items() if k != facts.name]
    ref = statistics.median(others) if others else 0.0
    slack = 0.0
    if len(others) >= 3:
        mad = statistics.median(abs(v - ref) for v in others)
        slack = 3 * _MAD_SCALE * mad
    usual = math.log(facts.baseline) if facts.baseline and facts.baseline > 1 else 0.0
    worst = max(facts.observations, key=lambda o: o.ratio)
    # A task running far past its time says how the worker is now, whatever
    # its earlier tasks say: the median would wait for it to be half its tasks.
    live = [math.log(o.ratio) for o in facts.observations if o.running and o.ratio > 1]
    excess = math.exp(max([own, *live]) - ref - usual)
    return Slowness(excess, math.exp(own), len(facts.observations), worst, math.exp(slack))


def judge(
    current: str,
    facts: WorkerFacts,
    peers: Mapping[str, float],
    policy: HealthPolicy,
    *,
    now: float,
    calm_since: float | None = None,
    reason: str = "",
) -> Verdict:
    """The worker's state after this look at it (``current``, ``reason`` and
    ``calm_since`` from the last look). A quarantined worker stays so: only
    probation releases it."""
    slow = slowness(facts, peers, policy)
    if current != QUARANTINED:
        if facts.infra_streak >= policy.infra_streak:
            last = f" (last: {facts.last_infra})" if facts.last_infra else ""
            return Verdict(
                QUARANTINED, f"{facts.infra_streak} infrastructure failures in a row{last}"
            )
        if slow and slow.tasks >= policy.min_tasks and slow.beyond(policy.quarantine_factor):
            return Verdict(QUARANTINED, _slow_reason(slow))
    if current == QUARANTINED:
        return Verdict(QUARANTINED, reason)
    signs = _signs(facts, slow, policy)
    if signs:
        return Verdict(DEGRADED, "; ".join(signs))
    if current != DEGRADED:
        return Verdict(HEALTHY, "")
    if slow is not None and slow.factor >= policy.recover_factor:
        return Verdict(DEGRADED, reason)  # better, not yet well: the clock does not start
    since = now if calm_since is None else calm_since
    if now - since >= policy.recover_after:
        return Verdict(HEALTHY, f"recovered: calm for {now - since:.0f} s (was: {reason})")
    return Verdict(DEGRADED, reason, since)


def _signs(facts: WorkerFacts, slow: Slowness | None, policy: HealthPolicy) -> list[str]:
    signs = []
    # One finished task proves little (a matrix sibling may be heavier); one
    # still running far past its peers is live evidence.
    if slow and slow.beyond(policy.slow_factor) and (slow.tasks >= 2 or _running(slow)):
        signs.append(_slow_reason(slow))
    if facts.infra_streak >= 2:
        signs.append(f"{facts.infra_streak} infrastructure failures in a row")
    if facts.heartbeat_age is not None and facts.heartbeat_age >= policy.heartbeat_gap:
        signs.append(f"no heartbeat for {facts.heartbeat_age:.0f} s")
    s = facts.sample
    mem = s.get("mem_pct")
    if mem is not None and float(mem) >= 100 * policy.memory_limit:
        signs.append(f"memory {float(mem):.0f}% used")
    disk = s.get("disk_free_bytes")
    if disk is not None and float(disk) < policy.disk_min_free:
        signs.append(f"{dask.utils.format_bytes(int(disk))} disk free")
    for i, gpu in enumerate(s.get("gpus") or ()):
        temp = gpu.get("temp_c") if isinstance(gpu, Mapping) else None
        if temp is not None and float(temp) >= GPU_HOT_C:
            signs.append(f"GPU {i} at {float(temp):.0f} °C")
    return signs


def _running(slow: Slowness) -> bool:
    return slow.worst is not None and slow.worst.running


def _slow_reason(slow: Slowness) -> str:
    w = slow.worst
    assert w is not None
    what = "ran" if not w.running else "has run"
    many = f" (median of {slow.tasks} tasks)" if slow.tasks > 1 else ""
    return (
        f"slow: {slow.factor:.1f}x its peers{many}; {w.task_id} {what} {w.seconds:.1f} s, "
        f"expected {w.expected:.2f} s"
    )
