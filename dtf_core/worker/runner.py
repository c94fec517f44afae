"""What executes on a worker: one attempt of a task, turned into an AttemptResult.

* :func:`execute` never raises: a dtf bug or broken environment becomes outcome
  ``error`` / category ``infrastructure`` with the message, because an exception
  crossing the Dask wire would be classified by the client without context.
* :func:`execute_batch` runs payloads one after another in the calling thread;
  the coordinator ships tiny benchmark tasks this way to amortise Dask's ~1 ms
  per-task overhead. Everything per-task is cheap: the run's callables
  (:mod:`dtf_core.codeload`, loaded fresh once per run and worker process), the
  hardware label and ``describe()`` are cached, and the hardware
  facts (``worker_info``) ride only on the *first* result of each batch (the
  coordinator records them once per worker).
* ``command`` and ``pytest`` tasks run as subprocesses in their own process
  group with the timeout enforced inside the task (:mod:`dtf_core.worker.procgroup`);
  :class:`ProcessGroupReaper` kills the group when the task's key is released
  while it runs, because Dask's ``cancel()`` does not stop a subprocess.
  In-process benchmarks have no group to kill: they stop only at their
  cooperative timeout.

Outcomes: a category of ``timeout`` -> ``timed_out``; ``test-failure`` and
``bad-spec`` -> ``failed``; other categories -> ``error`` (transient, may be
retried). A key reaped while running -> ``cancelled``. A ``spec.timeout`` <= 0
means no timeout.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from dtf_core import config, model
from dtf_core.cluster import hardware, security
from dtf_core.errors import Category, classify_exit
from dtf_core.testing import junitxml
from dtf_core.testing import stream as pyteststream
from dtf_core.worker import benchmark, health, procgroup, snapshot, wire

_RELEASED_STATES = frozenset({"cancelled", "released", "forgotten"})
# Attempts that get a system snapshot (dtf_core.worker.snapshot): not passed,
# skipped or cancelled.
_FAILED_OUTCOMES = frozenset({"failed", "timed_out", "error"})


# --------------------------------------------------------------------- public API
def execute(payload: model.TaskPayload) -> model.AttemptResult:
    """Run one attempt; never raises. The result carries ``worker_info``."""
    res = _execute(payload)
    res.worker_info = hardware.describe()
    security.sign_result(res)  # last: the signature covers every field
    return res


def execute_batch(payloads: list[model.TaskPayload]) -> list[model.AttemptResult]:
    """Run payloads one after another; ``worker_info`` only on the first result.

    Once the batch's key has been reaped (cancelled), the remaining payloads are
    not started and come back ``cancelled``.
    """
    results = []
    if payloads:  # the coordinator times stragglers from here (dtf_core.run.speculation)
        health.announce_started(payloads[0].run_id, payloads[0].key)
    for p in payloads:
        if procgroup.was_reaped(p.key):
            res = _base(p)
            _finish(res, Category.CANCELLED, "cancelled before it started")
            _stamp(res, p)
            results.append(res)
        else:
            results.append(_execute(p))
    if results:
        results[0].worker_info = hardware.describe()
    for res in results:
        security.sign_result(res)  # last: the signature covers every field
    for p in payloads:
        procgroup.forget(p.key)
    return results


def execute_batch_plain(payloads: list[model.TaskPayload]) -> list[dict[str, Any]]:
    """:func:`execute_batch` as plain data (what the coordinator submits): the
    client then needs no pickle to read results (:mod:`dtf_core.worker.wire`)."""
    return [wire.result_to_plain(r) for r in execute_batch(payloads)]


class ProcessGroupReaper(WorkerPlugin):
    """Kills the process group of a task whose key is released while it runs.

    Register with ``client.register_plugin(ProcessGroupReaper(), name="dtf-reaper")``.
    ``transition`` runs on the worker's event loop, so it only sends SIGTERM and
    leaves the SIGKILL after the grace period to a timer thread.
    """

    idempotent = True  # stateless: a second registration changes nothing

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish in _RELEASED_STATES:
            procgroup.reap(key if isinstance(key, str) else str(key))

    def teardown(self, worker: Any) -> None:
        # The worker is closing: no timer thread would outlive it, so wait here.
        for key in procgroup.registered_keys():
            procgroup.reap(key, wait=True)


# ----------------------------------------------------------------- dispatching
def _execute(payload: model.TaskPayload) -> model.AttemptResult:
    try:
        kind = model.TaskKind(payload.spec.kind)
        if kind is model.TaskKind.BENCHMARK:
            res = _run_benchmark(payload)
        else:
            res = _run_process(payload, kind)
    except Exception as exc:
        res = _base(payload)
        res.finished_at = time.time()
        res.outcome, res.category = "error", Category.INFRASTRUCTURE.value
        res.message = f"dtf runner failed: {type(exc).__name__}: {exc}"
        res.stderr_tail = traceback.format_exc()[-_tail_chars() :]
        _snapshot(res, imports=list(sys.modules), imports_from="worker process")
    _stamp(res, payload)
    return res


def _base(payload: model.TaskPayload) -> model.AttemptResult:
    return model.AttemptResult(
        run_id=payload.run_id,
        task_id=payload.spec.task_id,
        attempt=payload.attempt,
        outcome="passed",
        worker=_worker_name(),
        hardware=_label(),
        started_at=time.time(),
        unit=payload.spec.unit,
    )


def _finish(res: model.AttemptResult, category: Category | None, message: str) -> None:
    if category is None:
        res.outcome, res.category, res.message = "passed", None, message
        return
    res.category, res.message = category.value, message
    if category is Category.TIMEOUT:
        res.outcome = "timed_out"
    elif category in (Category.TEST_FAILURE, Category.BAD_SPEC):
        res.outcome = "failed"
    elif category is Category.CANCELLED:
        res.outcome = "cancelled"
    else:
        res.outcome = "error"


@functools.cache
def _label() -> str:
    return hardware.label()


def _tail_chars() -> int:
    return int(config.get("runner.output-tail", 4000))


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ValueError, ImportError):
        return socket.gethostname()


# ------------------------------------------------------------------ benchmarks
def _run_benchmark(payload: model.TaskPayload) -> model.AttemptResult:
    res = _base(payload)
    category, message = benchmark.measure(payload, res, _tail_chars())
    res.finished_at = time.time()
    _finish(res, category, message)
    # In-process: the worker's own modules are the benchmark's.
    _snapshot(res, imports=list(sys.modules), imports_from="worker process")
    return res


def _snapshot(res: model.AttemptResult, **what: Any) -> None:
    """A failed attempt carries the state of this machine (before it is signed)."""
    if res.outcome in _FAILED_OUTCOMES:
        res.context = snapshot.capture(**what)


def _stamp(res: model.AttemptResult, payload: model.TaskPayload) -> None:
    """The code fingerprint: the suite files the benchmark ran (sha256, short;
    set by :mod:`dtf_core.worker.benchmark`) and the run's git commit."""
    parts = [f"sha256:{res.code_fingerprint}"] if res.code_fingerprint else []
    if payload.code_commit:
        parts.append(f"git:{payload.code_commit[:12]}")
    res.code_fingerprint = " ".join(parts)


# -------------------------------------------------------- commands and pytest
def _run_process(payload: model.TaskPayload, kind: model.TaskKind) -> model.AttemptResult:
    spec = payload.spec
    res = _base(payload)
    cwd = spec.cwd or spec.root
    # The worker's credentials stay out of the task's reach (docs/security.md).
    env = {k: v for k, v in os.environ.items() if not security.is_credential_env(k)}
    env.update(spec.env)
    env.update(
        DTF_RUN_ID=payload.run_id,
        DTF_TASK_ID=spec.task_id,
        DTF_ATTEMPT=str(payload.attempt),
        DTF_WORKER=res.worker,
    )
    tmp = tempfile.mkdtemp(prefix="dtf-task-")
    tail: pyteststream.Tail | None = None
    imports: list[str] | None = None
    try:
        if kind is model.TaskKind.PYTEST:
            junit = Path(tmp) / "junit.xml"
            stream = Path(tmp) / "stream.jsonl"
            nodeids = payload.only_nodeids or spec.nodeids
            targets = nodeids or [spec.path or "."]
            argv = [
                sys.executable, "-m", "pytest", *_pytest_targets(targets, Path(tmp)),
                *spec.pytest_args, "-p", "no:cacheprovider", "-p", "dtf_core.testing.plugin",
                f"--junitxml={junit}", "-q", "-o", "junit_family=xunit1",
                f"--dtf-stream={stream}",
            ]  # fmt: skip
            if spec.test_timeout:
                argv.append(f"--dtf-test-timeout={spec.test_timeout}")
            argv.append(f"--dtf-yield-file={Path(tmp) / 'yield'}")
            argv.append(f"--dtf-imports={Path(tmp) / 'imports.json'}")
            if spec.select and not payload.only_nodeids:
                # Only with the planned targets: a rerun names exact node ids.
                select = Path(tmp) / "select.json"
                select.write_text(json.dumps(spec.select), encoding="utf-8")
                argv.append(f"--dtf-select={select}")
            with _yield_lock:
                _yield_dirs[payload.key] = Path(tmp)
            _ensure_importable(env)
            tail = pyteststream.Tail(stream, _progress_publisher(payload))
            tail.start()
        else:
            argv = list(spec.command or [])
            if argv and argv[0] == "python":
                argv[0] = sys.executable
        try:
            run = procgroup.run(argv, cwd, env, spec.timeout, payload.key, Path(tmp))
        finally:
            if tail is not None:
                tail.stop()
        res.started_at, res.finished_at = run.started_at, run.finished_at
        res.wall_s, res.cpu_s, res.peak_rss_bytes = run.wall_s, run.cpu_s, run.peak_rss
        res.exit_code, res.stdout_tail, res.stderr_tail = run.exit_code, run.stdout, run.stderr
        if kind is model.TaskKind.PYTEST and junit.exists():
            try:
                res.tests = junitxml.parse_junit(junit)
            except Exception as exc:  # a truncated file from a killed pytest
                res.stderr_tail += f"\n[dtf] could not read pytest's JUnit XML: {exc}"
        if kind is model.TaskKind.PYTEST and stream.exists():
            state = pyteststream.read(stream)
            if any("::" not in t for t in targets):
                # Given files: hand back what pytest found in them (split by test next time).
                res.collected = state.collected
            res.given = list(state.given)
        if kind is model.TaskKind.PYTEST and stream.exists() and state.yielded:
            # Stopped between tests because a worker was idle: what never
            # started goes elsewhere; this attempt is judged by what it ran.
            res.remaining = pyteststream.not_started(state)
            res.yielded = True
            bad = any(t.outcome in ("failed", "error") for t in res.tests)
            res.exit_code = 1 if bad else 0
        elif kind is model.TaskKind.PYTEST and not res.tests and stream.exists():
            # No XML: pytest died (a crash, a per-test or task timeout). The
            # stream says what finished, what was running and what never ran.
            res.tests, res.remaining = pyteststream.salvage(
                state, list(nodeids), run.exit_code, run.timed_out
            )
            crashed = not run.timed_out and run.exit_code is not None and run.exit_code < 0
            if res.tests and (crashed or state.timed_out):
                # The test that killed the process is recorded as failed; the
                # attempt is a test failure, not a lost worker or a task timeout.
                res.exit_code = 1
        if kind is model.TaskKind.PYTEST:
            imports = snapshot.read_imports(Path(tmp) / "imports.json")
    finally:
        with _yield_lock:
            _yield_dirs.pop(payload.key, None)
        shutil.rmtree(tmp, ignore_errors=True)

    if procgroup.was_reaped(payload.key):
        _finish(res, Category.CANCELLED, "cancelled while running")
    elif run.spawn_error:
        _finish(res, *classify_exit(kind.value, run.exit_code, run.stderr))
        res.message = f"{res.message}: {run.spawn_error}"
    elif kind is model.TaskKind.PYTEST and run.exit_code == 5 and not run.timed_out:
        res.outcome, res.category, res.message = "skipped", None, "no tests collected"
    else:
        category, message = classify_exit(kind.value, run.exit_code, run.stderr, run.timed_out)
        if res.tests and category is not Category.TIMEOUT:
            summary = ", ".join(f"{n} {k}" for k, n in junitxml.counts(res.tests).items())
            message = f"{message} ({summary})" if message else summary
        _finish(res, category, message)
    if kind is model.TaskKind.PYTEST:
        what = {"imports": imports, "imports_from": "pytest process"}
    else:  # a command's imports are unknowable: name the program it ran
        what = {"command": shutil.which(argv[0], path=env.get("PATH")) or argv[0] if argv else ""}
    _snapshot(res, env=env, disk_path=cwd, **what)
    return res


# Dask key -> temporary directory of the pytest chunk running for it, so that
# the coordinator can ask it to yield the tests it has not started.
_yield_dirs: dict[str, Path] = {}
_yield_lock = threading.Lock()


def request_yield(key: str) -> bool:
    """Ask the pytest chunk running for ``key`` in this worker process to stop
    after its current test (run through ``Client.run``); False if none is."""
    with _yield_lock:
        tmp = _yield_dirs.get(key)
    if tmp is None:
        return False
    try:
        (tmp / "yield").touch()
    except OSError:  # the chunk has just ended
        return False
    return True


def _pytest_targets(targets: list[str], tmp: Path) -> list[str]:
    """Many node ids go through an ``@file`` (pytest >= 8.2) to stay far from
    the kernel's argv limit."""
    if len(targets) <= 64:
        return targets
    argfile = tmp / "targets.txt"
    argfile.write_text("\n".join(targets) + "\n", encoding="utf-8")
    return [f"@{argfile}"]


def _progress_publisher(payload: model.TaskPayload) -> pyteststream.Publish:
    """Send per-test counts (and, once, how many tests the chunk collected) to
    the client as Dask events (topic ``dtf-tests``); a no-op outside a worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ValueError, ImportError):
        return lambda counts, collected, gave: None

    def publish(
        counts: dict[str, int], collected: int | None, gave: dict[str, list[str]] | None
    ) -> None:
        msg: dict[str, Any] = {
            "run_id": payload.run_id, "task_id": payload.spec.task_id,
            "attempt": payload.attempt, "counts": counts,
        }  # fmt: skip
        if collected is not None:
            msg["collected"] = collected
        if gave is not None:
            msg.update(gave)
        worker.log_event("dtf-tests", msg)

    return publish


@functools.cache
def _dtf_installed() -> bool:
    try:
        importlib.metadata.distribution("dtf")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _ensure_importable(env: dict[str, str]) -> None:
    """pytest in the child loads ``-p dtf_core.pytest_plugin``: when dtf is not an
    installed distribution (a worker started from a checkout), put the checkout at
    the *end* of PYTHONPATH so it cannot shadow the suite's own modules."""
    if _dtf_installed():
        return
    root = str(Path(__file__).resolve().parent.parent)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        env["PYTHONPATH"] = os.pathsep.join([*parts, root])
