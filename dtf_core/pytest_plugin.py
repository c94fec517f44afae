"""A pytest plugin that dtf loads into every pytest task (``-p dtf_core.pytest_plugin``).

It does two things:

* registers the ``dtf`` marker (``@pytest.mark.dtf(GPU=1)``: the resources a test
  needs, read when dtf routes tests to workers), so ``--strict-markers`` suites
  accept it;
* records the exact outcome of each test as JUnit properties, because pytest's
  JUnit XML cannot tell ``xpassed`` from ``passed``:

  - ``dtf_outcome``: one of passed/failed/skipped/xfailed/xpassed/error, with the
    meaning of pytest's terminal summary counts. A test that fails (or passes)
    in ``call`` and then errors in ``teardown`` gets *two* ``dtf_outcome``
    properties (e.g. ``failed`` then ``error``), because pytest counts it twice
    ("1 failed, 1 error"); :func:`dtf_core.junitxml.parse_junit` turns them into
    two results with the same node id.
  - ``dtf_nodeid``: the node id written relative to pytest's invocation
    directory (dtf's cwd for the task), so that it can be passed back on the
    command line to rerun just that test. It equals pytest's own node id
    whenever rootdir == cwd (the usual case).

The properties are appended to ``item.user_properties`` during setup/call (pytest
copies those into the teardown report) and to the teardown report itself, since
junitxml writes ``report.user_properties`` when it sees the teardown report.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Generator
from typing import Any

import pytest

from dtf_core.junitxml import NODEID_PROPERTY, OUTCOME_PROPERTY


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("dtf_collect", None):
        config.pluginmanager.register(_CollectProblems(config), "dtf-collect-problems")
    config.addinivalue_line(
        "markers", "dtf(**resources): resources a test needs, e.g. dtf(GPU=1, MEM_GB=8)"
    )


def _outcome(report: pytest.TestReport) -> str | None:
    """The terminal-summary category of one phase report (None: nothing to count)."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "xpassed" if xfail else "passed"
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        return "failed"  # includes strict XPASS, which pytest reports as failed
    # setup / teardown
    if report.failed:
        return "error"
    if report.skipped and report.when == "setup":
        return "xfailed" if xfail else "skipped"
    return None


def _rerunnable_nodeid(item: pytest.Item) -> str:
    nodeid = item.nodeid
    try:
        rel = os.path.relpath(str(item.path), str(item.config.invocation_params.dir))
    except (ValueError, AttributeError):
        return nodeid
    rel = rel.replace(os.sep, "/")
    _, sep, rest = nodeid.partition("::")
    return f"{rel}::{rest}" if sep else rel


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, Any, None]:
    result = yield
    report: pytest.TestReport = result.get_result()
    outcome = _outcome(report)
    props: list[tuple[str, object]] = []
    if report.when == "setup":
        props.append((NODEID_PROPERTY, _rerunnable_nodeid(item)))
    if outcome is not None:
        props.append((OUTCOME_PROPERTY, outcome))
    item.user_properties.extend(props)
    _stream_result(item, report, outcome)
    if report.when == "teardown":
        # The teardown report copied item.user_properties before we got here.
        report.user_properties.extend(props)


# --------------------------------------------------------------- dtf options
# Three options that only dtf passes; without them the plugin does nothing more.
#
# --dtf-collect=FILE   with --collect-only: one JSON line per test (node id, file,
#                      resources from @pytest.mark.dtf) for dtf's test splitter.
# --dtf-stream=FILE    one JSON line when each test starts and when it ends,
#                      flushed at once: if the process dies (a crash, a per-test
#                      timeout) dtf still knows what ran, what was running, and
#                      what never started; the runner also tails it for progress.
# --dtf-test-timeout=S a watchdog thread: a test running longer than S seconds is
#                      recorded as timed out and the whole process group is
#                      killed (the test's own children included); dtf resumes the
#                      tests that had not started in a fresh process.


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dtf", "dtf (distributed test framework) internals")
    group.addoption("--dtf-collect", default=None, help="write collected tests as JSON lines")
    group.addoption("--dtf-stream", default=None, help="stream test starts/ends as JSON lines")
    group.addoption("--dtf-test-timeout", type=float, default=None, help="per-test timeout (s)")


class _Stream:
    def __init__(self, path: str, timeout: float | None) -> None:
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as pytest
        self._lock = threading.Lock()
        self.timeout = timeout
        self.current: tuple[str, float] | None = None
        if timeout:
            threading.Thread(target=self._watch, daemon=True, name="dtf-test-timeout").start()

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def _watch(self) -> None:
        assert self.timeout is not None
        while True:
            time.sleep(min(0.1, self.timeout / 10))
            current = self.current
            if current and time.monotonic() - current[1] > self.timeout:
                self.write({"event": "timeout", "nodeid": current[0], "after": self.timeout})
                # The test may be stuck in C code or in a child: only killing the
                # group stops it. The runner reads the stream to carry on.
                # Only when we lead our group (dtf starts us in a new session):
                # never take an interactive shell's group down with us.
                if os.getpgrp() == os.getpid():
                    os.killpg(os.getpgrp(), signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)


_stream_key = pytest.StashKey[_Stream]()


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    path = session.config.getoption("dtf_stream")
    if path:
        session.config.stash[_stream_key] = _Stream(
            path, session.config.getoption("dtf_test_timeout")
        )


_collect_problems_key = pytest.StashKey[list[str]]()


class _CollectProblems:
    """Modules skipped (``importorskip``) or broken at collection have no items,
    yet pytest counts each as one skipped / error: dtf must run them too.
    Registered only with ``--dtf-collect`` (collect reports carry no config)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        file = report.nodeid.partition("::")[0]
        if not (report.skipped or report.failed) or not file.endswith(".py"):
            return
        full = self.config.rootpath / file
        invocation = self.config.invocation_params.dir
        rel = os.path.relpath(str(full), str(invocation)).replace(os.sep, "/")
        self.config.stash.setdefault(_collect_problems_key, []).append(rel)


def pytest_collection_finish(session: pytest.Session) -> None:
    path = session.config.getoption("dtf_collect")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as fh:
        for file in session.config.stash.get(_collect_problems_key, []):
            record = {"nodeid": file, "file": file, "resources": {}}
            fh.write(json.dumps(record) + "\n")
        for item in session.items:
            resources: dict[str, float] = {}
            for mark in item.iter_markers("dtf"):
                for k, v in mark.kwargs.items():
                    resources[k] = max(float(v), resources.get(k, 0.0))
            record = {
                "nodeid": _rerunnable_nodeid(item),
                "file": _rerunnable_nodeid(item).partition("::")[0],
                "resources": resources,
            }
            fh.write(json.dumps(record) + "\n")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    stream = item.config.stash.get(_stream_key, None)
    if stream is not None:
        nodeid = _rerunnable_nodeid(item)
        stream.current = (nodeid, time.monotonic())
        stream.write({"event": "start", "nodeid": nodeid})


def _stream_result(item: pytest.Item, report: pytest.TestReport, outcome: str | None) -> None:
    stream = item.config.stash.get(_stream_key, None)
    if stream is None:
        return
    nodeid = _rerunnable_nodeid(item)
    if outcome is not None:
        message = ""
        if report.failed or outcome in ("skipped", "xfailed"):
            text = str(getattr(report, "longreprtext", "") or "").strip()
            message = text.splitlines()[-1][:500] if text else ""
        stream.write(
            {"event": "result", "nodeid": nodeid, "when": report.when, "outcome": outcome,
             "duration": report.duration, "message": message}
        )  # fmt: skip
    if report.when == "teardown":
        stream.current = None
        stream.write({"event": "end", "nodeid": nodeid})
