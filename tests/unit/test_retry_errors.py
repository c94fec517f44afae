"""The retry policy and the failure classifier: pure functions, exact answers."""

from __future__ import annotations

import random
import signal
from functools import partial
from types import SimpleNamespace

import pytest
from support.factories import task_spec

from dtf_core.errors import Category, classify_exception, classify_exit
from dtf_core.run.retry import RetryPolicy

_spec = partial(task_spec, root="/", timeout=1.0, retries=2, command=["true"])


@pytest.mark.parametrize(
    ("category", "transient_used", "reruns_used", "expected"),
    [
        ("worker-lost", 0, 0, True),
        ("worker-lost", 2, 0, False),  # budget of 2 spent
        ("infrastructure", 1, 0, True),
        ("resource", 0, 0, True),
        ("test-failure", 0, 0, False),  # real failures are not hidden by default
        ("timeout", 0, 0, False),
        ("unschedulable", 0, 0, False),
        ("bad-spec", 0, 0, False),
        ("cancelled", 0, 0, False),
        (None, 0, 0, False),
    ],
)
def test_should_retry_by_category(category, transient_used, reruns_used, expected) -> None:
    assert RetryPolicy().should_retry(_spec(), category, transient_used, reruns_used) is expected


def test_rerun_failures_budget() -> None:
    policy, spec = RetryPolicy(), _spec(rerun_failures=2)
    assert policy.should_retry(spec, "test-failure", 0, 0)
    assert policy.should_retry(spec, "timeout", 0, 1)
    assert not policy.should_retry(spec, "test-failure", 0, 2)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    exact = RetryPolicy(backoff_base=0.5, backoff_max=4.0, jitter=0.0)
    assert [exact.delay(a) for a in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    jittered = RetryPolicy(backoff_base=1.0, backoff_max=100.0, jitter=0.5)
    rng = random.Random(7)
    delays = [jittered.delay(3, rng) for _ in range(500)]
    assert min(delays) >= 2.0 and max(delays) <= 6.0
    assert len({round(d, 6) for d in delays}) > 400  # really spread, not one value


def test_policy_reads_dask_config() -> None:
    import dask.config

    with dask.config.set({"dtf.retry.backoff-base": "2s", "dtf.retry.transient": ["resource"]}):
        policy = RetryPolicy.from_config()
    assert policy.backoff_base == 2.0
    assert not policy.should_retry(_spec(), "worker-lost", 0, 0)


class KilledWorker(Exception):
    pass


class NoValidWorkerError(Exception):
    pass


class FutureCancelledError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (KilledWorker("('key', <WorkerState 'tcp://127.0.0.1:1'>)"), Category.WORKER_LOST),
        (NoValidWorkerError("no worker"), Category.UNSCHEDULABLE),
        (
            FutureCancelledError("key cancelled for reason: scheduler-connection-lost"),
            Category.INFRASTRUCTURE,
        ),
        (FutureCancelledError("key cancelled for reason: unknown"), Category.CANCELLED),
        (MemoryError(), Category.RESOURCE),
        (OSError(24, "Too many open files"), Category.RESOURCE),
        (ModuleNotFoundError("No module named 'cupy'"), Category.INFRASTRUCTURE),
        (ValueError("boom"), Category.INFRASTRUCTURE),
    ],
)
def test_classify_exception(exc: BaseException, category: Category) -> None:
    assert classify_exception(exc)[0] is category


def test_classify_real_dask_exceptions() -> None:
    # The names above stand in for Dask's classes; check the real ones match by name.
    from distributed.client import FutureCancelledError as RealCancelled
    from distributed.scheduler import KilledWorker as RealKilled

    assert (
        classify_exception(RealKilled("k", SimpleNamespace(address="tcp://127.0.0.1:1"), 0))[0]
        is Category.WORKER_LOST
    )
    assert (
        classify_exception(RealCancelled("k", "scheduler-connection-lost"))[0]
        is Category.INFRASTRUCTURE
    )


@pytest.mark.parametrize(
    ("kind", "code", "stderr", "timed_out", "category"),
    [
        ("command", 0, "", False, None),
        ("command", 3, "", False, Category.TEST_FAILURE),
        ("command", 127, "", False, Category.BAD_SPEC),
        ("command", -signal.SIGKILL, "", False, Category.RESOURCE),
        ("command", -signal.SIGSEGV, "", False, Category.TEST_FAILURE),
        ("command", 1, "MemoryError", False, Category.RESOURCE),
        ("command", 1, "OSError: [Errno 28] No space left on device", False, Category.RESOURCE),
        ("command", None, "", True, Category.TIMEOUT),
        ("pytest", 1, "", False, Category.TEST_FAILURE),
        ("pytest", 3, "", False, Category.INFRASTRUCTURE),
        ("pytest", 4, "", False, Category.BAD_SPEC),
    ],
)
def test_classify_exit(kind, code, stderr, timed_out, category) -> None:
    assert classify_exit(kind, code, stderr, timed_out)[0] is category
