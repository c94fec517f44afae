"""The count buckets of a run report, and which bucket a task's own ending falls in.

Shared by the summary (which counts) and the JUnit writer (which turns a bucket into a
``failure``, ``error`` or ``skipped`` element); the rules are described in
:mod:`dtf_core.reporting.summary`.
"""

from __future__ import annotations

COUNT_KEYS = (
    "passed", "failed", "skipped", "xfailed", "xpassed", "errors",
    "timeouts", "unschedulable", "cancelled", "flaky",
)  # fmt: skip
# Task statuses that count as a success of the run.
OK = ("passed", "skipped")
# Test outcomes that count as a failure.
BAD_TESTS = ("failed", "error")
# A test outcome's bucket is the outcome itself, except:
TEST_BUCKET = {"error": "errors"}
_STATUS_BUCKET = {"timed_out": "timeouts"}
_CATEGORY_BUCKET = {
    None: "failed", "test-failure": "failed", "timeout": "timeouts",
    "unschedulable": "unschedulable", "cancelled": "cancelled",
}  # fmt: skip


def task_bucket(status: str, category: str | None) -> str | None:
    """The bucket of a task counted at task level; ``None`` for a task that never ran."""
    if status == "pending":
        return None
    if status == "failed":
        return _CATEGORY_BUCKET.get(category, "errors")
    return _STATUS_BUCKET.get(status, status)
