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

import os
from collections.abc import Generator
from typing import Any

import pytest

from dtf_core.junitxml import NODEID_PROPERTY, OUTCOME_PROPERTY


def pytest_configure(config: pytest.Config) -> None:
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
    if report.when == "teardown":
        # The teardown report copied item.user_properties before we got here.
        report.user_properties.extend(props)
