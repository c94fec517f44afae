"""Retry policy: whether a failed attempt runs again, and after how long.

Pure functions over plain values (no clock, no randomness source of its own)
so the coordinator and the tests can reason about them exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dtf_core import config
from dtf_core.backoff import backoff
from dtf_core.errors import Category
from dtf_core.model import TaskSpec


@dataclass(frozen=True)
class RetryPolicy:
    backoff_base: float = 0.2
    backoff_max: float = 30.0
    jitter: float = 0.5  # fraction of the delay, +-
    transient: frozenset[str] = frozenset({"worker-lost", "infrastructure", "resource", "security"})

    @classmethod
    def from_config(cls) -> RetryPolicy:
        return cls(
            backoff_base=config.seconds("retry.backoff-base"),
            backoff_max=config.seconds("retry.backoff-max"),
            jitter=float(config.get("retry.jitter")),
            transient=frozenset(config.get("retry.transient")),
        )

    def should_retry(
        self, spec: TaskSpec, category: str | None, transient_used: int, reruns_used: int
    ) -> bool:
        """Decide from the category of the attempt that just failed.

        Transient categories draw on ``spec.retries``; genuine failures
        (test-failure, timeout) draw on ``spec.rerun_failures`` so a real bug is
        not hidden by default. Unschedulable, bad-spec and cancelled never retry:
        running again cannot change their outcome.
        """
        if category is None:
            return False
        if category in self.transient:
            return transient_used < spec.retries
        if category in (Category.TEST_FAILURE.value, Category.TIMEOUT.value):
            return reruns_used < spec.rerun_failures
        return False

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` >= 1).

        Exponential, capped, with symmetric jitter (:func:`dtf_core.backoff.backoff`)
        so that many tasks failing at once (a lost worker) do not come back in one burst.
        """
        return backoff(attempt - 1, self.backoff_base, self.backoff_max, self.jitter, rng)
