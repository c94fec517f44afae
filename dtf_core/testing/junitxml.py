"""Read JUnit XML (pytest's, or any other tool's) into :class:`model.TestResult` rows.

Outcomes
    * A ``<testcase>`` with ``dtf_outcome`` properties (written by
      :mod:`dtf_core.pytest_plugin`) yields one result per property, exactly as
      pytest's terminal summary counts it: a test that fails in ``call`` and errors
      in ``teardown`` gives two results with the same node id, ``failed`` and
      ``error``.
    * pytest writes such a test as *two* ``<testcase>`` elements (the call failure
      and the teardown error). In dtf-instrumented XML the element without
      ``dtf_outcome`` is a duplicate of one that has them; it is dropped and only
      lends its failure message.
    * Any other ``<testcase>``: ``<failure>`` -> failed, ``<error>`` -> error,
      ``<skipped type="pytest.xfail">`` -> xfailed, other ``<skipped>`` -> skipped,
      no child -> passed (one result per failure/error child, so a case holding
      both counts as both). Without the plugin, xpassed reads as passed.

Node ids, first rule that applies
    1. the ``dtf_nodeid`` property (rerunnable from the task's cwd);
    2. pytest's xunit1 ``file`` attribute ending in ``.py``: the module's dotted
       path (``file`` minus ``.py``, ``/`` -> ``.``) is stripped from ``classname``
       and the remaining parts are the classes: ``path/to/test_x.py::TestC::test_y``.
       A collection error (``classname=""``) is the file itself;
    3. pytest XML without ``file`` (xunit2, testsuite name ``pytest``): the first
       ``classname`` part after the first that starts with an upper-case letter
       begins the classes; the parts before it are the module path + ``.py``;
    4. anything else: ``file::classname::name`` with empty parts left out.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from dtf_core import model

# Written by dtf_core.pytest_plugin (defined here so readers need not import pytest).
OUTCOME_PROPERTY = "dtf_outcome"
NODEID_PROPERTY = "dtf_nodeid"
_MESSAGE_LIMIT = 1000
_DETAILS_LIMIT = 8000  # a traceback's end says most: longer ones keep their tail
# Which child element explains which outcome.
_CHILD_FOR = {
    "failed": "failure",
    "error": "error",
    "skipped": "skipped",
    "xfailed": "skipped",
    "xpassed": "failure",
}


@dataclass
class _Case:
    nodeid: str
    duration: float
    outcomes: list[str]  # from dtf_outcome properties; empty when absent
    has_nodeid_prop: bool
    # tag -> (type, message, details: the element's text, a traceback for failures)
    children: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)


def parse_junit(path_or_text: str | bytes | os.PathLike[str]) -> list[model.TestResult]:
    """Parse a JUnit XML file (path) or document (text starting with ``<``)."""
    root = _load(path_or_text)
    suites = [root, *root.iter("testsuite")]
    pytest_xml = any(s.get("name") == "pytest" for s in suites)
    cases = [_read_case(tc, pytest_xml) for tc in root.iter("testcase")]

    instrumented = {c.nodeid for c in cases if c.outcomes}
    donors: dict[str, list[_Case]] = {}
    for c in cases:
        if not c.outcomes and c.has_nodeid_prop and c.nodeid in instrumented:
            donors.setdefault(c.nodeid, []).append(c)

    results: list[model.TestResult] = []
    for c in cases:
        if c.outcomes:
            for outcome in c.outcomes:
                msg, details = _message_for(c, outcome)
                if not msg:
                    msg, details = next(
                        (m for d in donors.get(c.nodeid, []) if (m := _message_for(d, outcome))[0]),
                        ("", ""),
                    )
                results.append(model.TestResult(c.nodeid, outcome, c.duration, msg, details))
        elif c.nodeid in donors and c in donors[c.nodeid]:
            continue
        else:
            results.extend(_generic_results(c))
    return results


def counts(results: list[model.TestResult]) -> dict[str, int]:
    """Outcome -> number of results, in pytest's summary order, zeros left out."""
    out: dict[str, int] = {}
    for name in model.TEST_OUTCOMES:
        n = sum(1 for r in results if r.outcome == name)
        if n:
            out[name] = n
    return out


def _load(src: str | bytes | os.PathLike[str]) -> ET.Element:
    if isinstance(src, bytes):
        return ET.fromstring(src)
    if isinstance(src, str) and src.lstrip().startswith("<"):
        return ET.fromstring(src)
    return ET.parse(os.fspath(src)).getroot()


def _read_case(tc: ET.Element, pytest_xml: bool) -> _Case:
    outcomes: list[str] = []
    nodeid_prop = None
    for prop in tc.iter("property"):
        name, value = prop.get("name"), prop.get("value", "")
        if name == OUTCOME_PROPERTY and value in model.TEST_OUTCOMES:
            outcomes.append(value)
        elif name == NODEID_PROPERTY and value:
            nodeid_prop = value
    children: dict[str, list[tuple[str, str, str]]] = {}
    for child in tc:
        if child.tag in ("failure", "error", "skipped"):
            text = (child.text or "").strip("\n").rstrip()
            msg = child.get("message") or text.split("\n", 1)[0]
            details = text[-_DETAILS_LIMIT:] if child.tag != "skipped" else ""
            children.setdefault(child.tag, []).append(
                (child.get("type", ""), msg[:_MESSAGE_LIMIT], details)
            )
    nodeid = nodeid_prop or _nodeid(
        tc.get("classname", ""), tc.get("name", ""), tc.get("file", ""), pytest_xml
    )
    try:
        duration = float(tc.get("time", "0") or 0)
    except ValueError:
        duration = 0.0
    return _Case(nodeid, duration, outcomes, nodeid_prop is not None, children)


def _nodeid(classname: str, name: str, file: str, pytest_xml: bool) -> str:
    if file.endswith(".py"):
        module = file[:-3].replace("/", ".").replace("\\", ".")
        if not classname:
            return file if name in ("", module) else f"{file}::{name}"
        if classname == module:
            return f"{file}::{name}"
        if classname.startswith(module + "."):
            classes = classname[len(module) + 1 :].split(".")
            return "::".join([file, *classes, name])
    elif pytest_xml and not file and classname:
        parts = classname.split(".")
        first_class = next(
            (i for i, p in enumerate(parts) if i > 0 and p[:1].isupper()), len(parts)
        )
        path = "/".join(parts[:first_class]) + ".py"
        return "::".join([path, *parts[first_class:], name])
    return "::".join(p for p in (file, classname, name) if p)


def _message_for(c: _Case, outcome: str) -> tuple[str, str]:
    """(message, details) of the child element that explains ``outcome``."""
    entries = c.children.get(_CHILD_FOR.get(outcome, ""), [])
    return (entries[0][1], entries[0][2]) if entries else ("", "")


def _generic_results(c: _Case) -> list[model.TestResult]:
    out: list[model.TestResult] = []
    for _, msg, details in c.children.get("failure", []):
        out.append(model.TestResult(c.nodeid, "failed", c.duration, msg, details))
    for _, msg, details in c.children.get("error", []):
        out.append(model.TestResult(c.nodeid, "error", c.duration, msg, details))
    if not out:
        skipped = c.children.get("skipped", [])
        if skipped:
            typ, msg, _ = skipped[0]
            outcome = "xfailed" if typ == "pytest.xfail" else "skipped"
            out.append(model.TestResult(c.nodeid, outcome, c.duration, msg))
        else:
            out.append(model.TestResult(c.nodeid, "passed", c.duration, ""))
    return out
