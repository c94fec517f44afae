"""``-x`` / ``--maxfail N`` for a whole run: when to stop.

pytest's ``--maxfail`` inside one chunk stops only that chunk; across a run
the coordinator counts. Failures are counted as they stream in from running
chunks (so a run stops while its chunks are still busy, as pytest would) and
as tasks end; a task's count is the larger of the two, so a failure streamed
and then stored counts once.
"""

from __future__ import annotations

from collections.abc import Mapping

BAD_STATUSES = ("failed", "timed_out")


class FailureLimit:
    """Counts failing tests (and failed tasks without tests) against a limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit if limit and limit > 0 else None
        self._streamed: dict[str, int] = {}
        self._final: dict[str, int] = {}

    def note_stream(self, task_id: str, counts: Mapping[str, int]) -> None:
        """Per-test counts a running chunk streamed (increments)."""
        bad = int(counts.get("failed", 0)) + int(counts.get("error", 0))
        if bad:
            self._streamed[task_id] = self._streamed.get(task_id, 0) + bad

    def note_final(self, task_id: str, status: str, bad_tests: int) -> None:
        """A task ended: its failing tests, or 1 for a failed task without any."""
        if bad_tests:
            self._final[task_id] = bad_tests
        elif status in BAD_STATUSES:
            self._final[task_id] = 1

    def streamed(self) -> set[str]:
        """Tasks that streamed failing tests (their results must be kept)."""
        return set(self._streamed)

    def count(self) -> int:
        tasks = self._streamed.keys() | self._final.keys()
        return sum(max(self._streamed.get(t, 0), self._final.get(t, 0)) for t in tasks)

    def reached(self) -> bool:
        return self.limit is not None and self.count() >= self.limit
