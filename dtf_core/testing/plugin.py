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
    ("1 failed, 1 error"); :func:`dtf_core.testing.junitxml.parse_junit` turns them into
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
import sys
import threading
import time
from collections.abc import Collection, Generator, Mapping
from typing import Any

import pytest

from dtf_core.testing import gcfreeze
from dtf_core.testing.junitxml import NODEID_PROPERTY, OUTCOME_PROPERTY


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("dtf_collect", None) or config.getoption("dtf_stream", None):
        config.pluginmanager.register(_CollectProblems(config), "dtf-collect-problems")
        config.pluginmanager.register(_CollectTimes(config), "dtf-collect-times")
    if config.getoption("dtf_list_files", None):
        config.pluginmanager.register(_ListFiles(config), "dtf-list-files")
    if config.getoption("dtf_select", None):
        config.pluginmanager.register(_Select(config), "dtf-select")
    if config.getoption("dtf_yield_file", None):
        config.pluginmanager.register(_YieldOnRequest(config), "dtf-yield")
    if config.getoption("dtf_imports", None):
        config.pluginmanager.register(_Imports(config), "dtf-imports")
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
# --dtf-list-files=F   with --collect-only: one JSON line per file pytest would
#                      collect, in its order, without importing any test module
#                      (a first run splits by file and lets each chunk collect).
# --dtf-stream=FILE    one JSON line when each test starts and when it ends,
#                      flushed at once: if the process dies (a crash, a per-test
#                      timeout) dtf still knows what ran, what was running, and
#                      what never started; the runner also tails it for progress.
#                      The first line lists what this process collected.
# --dtf-yield-file=F   when F exists (dtf creates it because a worker is idle),
#                      give away half of the tests not started, after the
#                      test that is running (the stream says which), and go on
#                      with the other half in this same process.
# --dtf-test-timeout=S a watchdog thread: a test running longer than S seconds is
#                      recorded as timed out and the whole process group is
#                      killed (the test's own children included); dtf resumes the
#                      tests that had not started in a fresh process.
# --dtf-imports=FILE   when a test fails, and when a failed session ends: the
#                      top-level names in sys.modules as a JSON list, for the
#                      failure's system snapshot (dtf_core.worker.snapshot).
#
# And one ini option a suite may set: ``dtf_gc_freeze`` (default true): in a
# pytest that dtf runs (--dtf-stream), what collection made is frozen out of
# the garbage collector's reach, file by file (dtf_core/testing/gcfreeze.py
# says why and when not).


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dtf", "dtf (distributed test framework) internals")
    group.addoption("--dtf-collect", default=None, help="write collected tests as JSON lines")
    group.addoption("--dtf-list-files", default=None, help="write the files to collect")
    group.addoption("--dtf-stream", default=None, help="stream test starts/ends as JSON lines")
    group.addoption("--dtf-yield-file", default=None, help="stop between tests when F exists")
    group.addoption("--dtf-test-timeout", type=float, default=None, help="per-test timeout (s)")
    group.addoption(
        "--dtf-select", default=None, help="JSON file: this chunk's share of split files"
    )
    group.addoption(
        "--dtf-imports", default=None, help="on failure: write the imported module names"
    )
    parser.addini(
        "dtf_gc_freeze",
        type="bool",
        default=True,
        help="dtf: gc.freeze() what collection made before the tests run (default true)",
    )


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


class _ListFiles:
    """Records each file pytest would collect and reports it as holding nothing:
    the test module is never imported, so listing a suite costs pytest's
    start-up and its conftest files only. Directory traversal, ``--ignore``,
    ``collect_ignore`` and ``python_files`` are pytest's own."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.files: list[str] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        if not isinstance(collector, pytest.File):
            return None
        rel = os.path.relpath(str(collector.path), str(self.config.invocation_params.dir))
        rel = rel.replace(os.sep, "/")
        if rel not in self.files:
            self.files.append(rel)
        return pytest.CollectReport(collector.nodeid, "passed", None, [])

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        with open(self.config.getoption("dtf_list_files"), "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"file": f}) + "\n" for f in self.files)


def in_share(
    keep: Mapping[str, Collection[str]], drop: Mapping[str, Collection[str]], nodeid: str
) -> bool:
    """Whether a collected test belongs to this chunk (see :class:`_Select`)."""
    file = nodeid.partition("::")[0]
    if file in keep:
        return nodeid in keep[file]
    return nodeid not in drop.get(file, ())


class _Select:
    """Keeps a chunk to its share of the files it shares with other chunks
    (see :func:`dtf_core.testing.split.assign`): for a file under ``keep``
    only the listed tests run; for a file under ``drop`` everything collected
    runs except the listed tests (those belong to other chunks). Applied after
    every other plugin's selection (``-k``, ``-m``), on what pytest collected
    now, so a test that appeared since the chunks were planned runs in the
    file's owner chunk and one that vanished is not asked for."""

    def __init__(self, config: pytest.Config) -> None:
        with open(str(config.getoption("dtf_select")), encoding="utf-8") as fh:
            raw = json.load(fh)
        self.keep = {f: set(ids) for f, ids in (raw.get("keep") or {}).items()}
        self.drop = {f: set(ids) for f, ids in (raw.get("drop") or {}).items()}

    def wanted(self, nodeid: str) -> bool:
        return in_share(self.keep, self.drop, nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        selected: list[pytest.Item] = []
        deselected: list[pytest.Item] = []
        for item in items:
            (selected if self.wanted(_rerunnable_nodeid(item)) else deselected).append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = selected


class _YieldOnRequest:
    """Gives away half of the tests not yet started once the yield file exists
    (an idle worker asked): they are cut off the end of ``session.items`` and
    named in the stream (``gave``), and this process goes on with the rest
    without restarting, its imports and fixtures warm. A file, not a signal:
    it cannot kill a process that has not yet set up a handler. The file is
    removed, so the same process can be asked again later."""

    def __init__(self, config: pytest.Config) -> None:
        self.path = str(config.getoption("dtf_yield_file"))
        self.session: pytest.Session | None = None
        self.index: dict[str, int] = {}

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.index = {item.nodeid: n for n, item in enumerate(session.items)}

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        session = self.session
        if session is None or session.shouldstop or not os.path.exists(self.path):
            return
        try:
            os.unlink(self.path)
        except OSError:
            return
        stream = session.config.stash.get(_stream_key, None)
        at = self.index.get(nodeid)
        if stream is None or at is None:
            return
        ahead = session.items[at + 1 :]
        if len(ahead) < 2:
            return
        # The next item stays: pytest tore the current one down knowing it.
        keep = (len(ahead) + 1) // 2
        given = ahead[keep:]
        del session.items[at + 1 + keep :]
        stream.write(
            {"event": "gave", "nodeid": nodeid, "nodeids": [_rerunnable_nodeid(i) for i in given]}
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    path = session.config.getoption("dtf_stream")
    if path:
        session.config.stash[_stream_key] = _Stream(
            path, session.config.getoption("dtf_test_timeout")
        )


_collect_problems_key = pytest.StashKey[list[tuple[str, str, str]]]()


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
        problem = "error" if report.failed else "skipped"
        text = str(report.longreprtext or "").strip()
        why = text.splitlines()[-1][:500] if text else ""
        self.config.stash.setdefault(_collect_problems_key, []).append((rel, problem, why))


_collect_times_key = pytest.StashKey[dict[str, float]]()


class _CollectTimes:
    """Seconds each test file took to collect (importing the module, making
    its items): a chunk pays them before its first test, and history of test
    durations alone cannot see them (networkx: a quarter of the suite's CPU
    time), so the next run packs chunks by both. Registered with the options
    that record a collection."""

    def __init__(self, config: pytest.Config) -> None:
        self.times = config.stash.setdefault(_collect_times_key, {})
        self.invocation = str(config.invocation_params.dir)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, None]:
        if not isinstance(collector, pytest.File):
            yield
            return
        t0 = time.perf_counter()
        yield
        rel = os.path.relpath(str(collector.path), self.invocation).replace(os.sep, "/")
        self.times[rel] = self.times.get(rel, 0.0) + time.perf_counter() - t0


def _collected(session: pytest.Session) -> list[dict[str, Any]]:
    """What this session collected, as dtf's splitter and runner read it."""
    records: list[dict[str, Any]] = [
        {"nodeid": file, "file": file, "resources": {}, "problem": problem, "message": why}
        for file, problem, why in session.config.stash.get(_collect_problems_key, [])
    ]
    recorded: dict[str, float] | None = session.config.stash.get(_collect_times_key, None)
    times = dict(recorded or {})
    for item in session.items:
        resources: dict[str, float] = {}
        for mark in item.iter_markers("dtf"):
            for k, v in mark.kwargs.items():
                resources[k] = max(float(v), resources.get(k, 0.0))
        nodeid = _rerunnable_nodeid(item)
        file = nodeid.partition("::")[0]
        record: dict[str, Any] = {"nodeid": nodeid, "file": file, "resources": resources}
        if file in times:  # on the file's first item only (split.plan reads it per file)
            record["collect_s"] = round(times.pop(file), 4)
        records.append(record)
    return records


def pytest_collection_finish(session: pytest.Session) -> None:
    path = session.config.getoption("dtf_collect")
    stream = session.config.stash.get(_stream_key, None)
    if not path and stream is None:
        return
    records = _collected(session)
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
    if stream is not None:
        stream.write({"event": "collected", "items": records})
        gcfreeze.prepare(session)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    gcfreeze.before(item)
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


class _Imports:
    """``--dtf-imports``: registered only when dtf asks for it."""

    def __init__(self, config: pytest.Config) -> None:
        self.path = str(config.getoption("dtf_imports"))
        self.written = False

    def write(self) -> None:
        names = sorted({m.partition(".")[0] for m in list(sys.modules) if not m.startswith("_")})
        with open(self.path, "w", encoding="utf-8") as fh:
            json.dump(names, fh)
        self.written = True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # At the first failure too: a later crash or timeout never reaches sessionfinish.
        if report.failed and not self.written:
            self.write()

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus not in (0, 5):  # passed, or nothing collected: no snapshot is taken
            self.write()
