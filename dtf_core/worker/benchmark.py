"""In-process benchmarks: time ``fn(**params)`` on the worker.

The callable comes from the run's own copy of the suite code
(:mod:`dtf_core.codeload`): a long-lived worker runs what was on disk when the
run first needed it, never a module an earlier run left in ``sys.modules``.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable
from typing import Any

import psutil

from dtf_core import codeload, model
from dtf_core.errors import Category


def measure(
    payload: model.TaskPayload, res: model.AttemptResult, tail_chars: int
) -> tuple[Category | None, str]:
    """Fill ``res`` with samples; the category (None: passed) and message.

    ``warmup`` calls are discarded, then ``repeat`` samples. A sample is the
    call's ``time.perf_counter`` duration in seconds, unless ``spec.unit`` is
    not ``"s"`` and the function returns a number: then that number is the
    sample (custom metrics such as throughput). With a custom unit a function
    that returns no number fails the attempt (bad-spec) rather than mixing
    seconds into, say, ops/s. The timeout is cooperative: checked after each
    call, it ends the attempt ``timed_out`` keeping the samples taken.
    """
    spec = payload.spec
    function = spec.function or ""
    try:
        fn, space = codeload.load_callable(payload.run_id, spec.root, function)
    except Exception as exc:
        res.stderr_tail = traceback.format_exc()[-tail_chars:]
        return Category.INFRASTRUCTURE, f"import failed on the worker: {exc}"
    try:
        return _samples(fn, spec, res, tail_chars)
    finally:
        # After the calls: imports the function made on its first call count too.
        res.code_fingerprint = space.fingerprint(function.partition(":")[0])


def _samples(
    call: Callable[..., Any], spec: model.TaskSpec, res: model.AttemptResult, tail: int
) -> tuple[Category | None, str]:
    params = spec.params
    custom = spec.unit != "s"
    deadline = spec.timeout if spec.timeout and spec.timeout > 0 else float("inf")
    samples = res.samples
    t_begin = time.perf_counter()
    cpu0 = time.thread_time()
    category: Category | None = None
    message = ""
    try:
        for _ in range(spec.warmup):
            call(**params)
            if time.perf_counter() - t_begin > deadline:
                category, message = Category.TIMEOUT, "timed out during warmup"
                break
        else:
            for _ in range(spec.repeat):
                t0 = time.perf_counter()
                value = call(**params)
                t1 = time.perf_counter()
                if custom:
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        category = Category.BAD_SPEC
                        message = (
                            f"unit is {spec.unit!r} but the function returned "
                            f"{type(value).__name__}, not a number"
                        )
                        break
                    samples.append(float(value))
                else:
                    samples.append(t1 - t0)
                if t1 - t_begin > deadline:
                    category = Category.TIMEOUT
                    message = f"timed out after {len(samples)} of {spec.repeat} samples"
                    break
    except Exception as exc:
        category, message = Category.TEST_FAILURE, f"{type(exc).__name__}: {exc}"
        res.stderr_tail = traceback.format_exc()[-tail:]
    res.wall_s = time.perf_counter() - t_begin
    res.cpu_s = time.thread_time() - cpu0
    res.peak_rss_bytes = _self_process().memory_info().rss
    return category, message


@functools.cache
def _self_process() -> psutil.Process:
    return psutil.Process()
