"""The run's ETA, kept up to date as tasks finish.

Every finished task announces an ETA (``TaskFinished.eta_s``). Summing the
estimates over all tasks each time made a run with history (``dtf-core test``
passes an estimate per task) quadratic in its size: 10,000 tasks meant 10^8
dictionary lookups in the run loop (docs/benchmarks.md, Scale). Here the sums
are kept and each finished task moves its share once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dtf_core.run.state import TaskState

__all__ = ["Eta"]


class Eta:
    """Seconds left by the estimates (from history), scaled by how the finished
    ones went, over the worker threads; None without estimates."""

    def __init__(self, states: Mapping[str, TaskState], estimates: Mapping[str, float]) -> None:
        self._estimates = estimates
        self._left = self._done_est = self._done_real = 0.0
        if estimates:
            for task_id, st in states.items():
                est = estimates.get(task_id, 0.0)
                if st.final is None:
                    self._left += est
                else:
                    self._done_est += est
                    self._done_real += st.wall_s

    def finished(self, st: TaskState, slots: Callable[[], int]) -> float | None:
        """``st`` just became final (once per task): the ETA now."""
        if self._estimates:
            est = self._estimates.get(st.spec.task_id, 0.0)
            self._left -= est
            self._done_est += est
            self._done_real += st.wall_s
        return self.seconds(slots)

    def seconds(self, slots: Callable[[], int]) -> float | None:
        """``slots()`` (worker threads) is asked only when there are estimates:
        counting them walks every worker."""
        if not self._estimates:
            return None
        done_est, done_real = self._done_est, self._done_real
        scale = done_real / done_est if done_est > 0 and done_real > 0 else 1.0
        return max(0.0, self._left) * scale / (slots() or 1)
