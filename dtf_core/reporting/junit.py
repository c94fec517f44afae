"""The JUnit XML report (the Ant schema CI systems read): one ``testsuite`` per task, one
``testcase`` per test, plus one for the task itself when no test speaks for its ending."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from dtf_core.reporting.counts import task_bucket

# Characters XML 1.0 cannot carry at all (test output is full of them).
_XML_BAD = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: Any) -> str:
    return _XML_BAD.sub("\ufffd", str(text if text is not None else ""))


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """``tests/a/test_x.py::TestC::test_y[1]`` -> (``tests.a.test_x.TestC``, ``test_y[1]``)."""
    parts = nodeid.split("::")
    if len(parts) == 1:
        path = parts[0]
        return re.sub(r"\.py$", "", path).replace("/", "."), path
    module = re.sub(r"\.py$", "", parts[0]).replace("/", ".")
    return ".".join([module, *parts[1:-1]]), parts[-1]


def _junit_time(seconds: float | None) -> str:
    return f"{float(seconds or 0.0):.3f}"


def _add_result(case: ET.Element, kind: str | None, message: str, typ: str) -> None:
    if kind is None:
        return
    child = ET.SubElement(case, kind, {"message": _x(message.splitlines()[0] if message else "")})
    if kind != "skipped":
        child.set("type", typ)
        child.text = _x(message)


# Outcome -> (JUnit child element, type attribute); xpassed passes, as pytest's own XML has it.
_TEST_CHILD: dict[str, str | None] = {
    "passed": None, "xpassed": None, "failed": "failure", "error": "error",
    "skipped": "skipped", "xfailed": "skipped",
}  # fmt: skip
_BUCKET_CHILD: dict[str, str | None] = {
    "passed": None, "failed": "failure", "errors": "error", "timeouts": "error",
    "unschedulable": "error", "skipped": "skipped", "cancelled": "skipped",
}  # fmt: skip


def render_junit(summary: dict[str, Any]) -> str:
    root = ET.Element("testsuites", {"name": _x(summary["suite"])})
    totals: Counter[str] = Counter()
    for i, task in enumerate(summary["tasks"]):
        suite = ET.SubElement(root, "testsuite")
        props = ET.SubElement(suite, "properties")
        for name, value in (("kind", task["kind"]), ("status", task["status"])):
            ET.SubElement(props, "property", {"name": name, "value": _x(value or "")})
        for key, value in (task["params"] or {}).items():
            ET.SubElement(props, "property", {"name": f"param.{key}", "value": _x(value)})
        cases: list[tuple[str, str, float | None, str | None, str, str]] = []
        for t in task["tests"]:
            classname, name = split_nodeid(t["nodeid"])
            child = _TEST_CHILD.get(t["outcome"], "error")
            cases.append(
                (classname, name, t["duration_s"], child, t["message"] or "", t["outcome"])
            )
        if task["task_level"]:
            bucket = task_bucket(task["status"], task["category"])
            child = _BUCKET_CHILD.get(bucket or "", "skipped")
            message = task["message"] or ("not run" if task["status"] == "pending" else "")
            kind = task["kind"] or "task"
            typ = task["category"] or task["status"]
            cases.append((f"dtf.{kind}", task["task_id"], task["wall_s"], child, message, typ))
        n = Counter(c[3] for c in cases)
        for classname, name, secs, child, message, typ in cases:
            case = ET.SubElement(
                suite,
                "testcase",
                {"classname": _x(classname), "name": _x(name), "time": _junit_time(secs)},
            )
            _add_result(case, child, message, typ)
        ET.SubElement(suite, "system-out").text = _x(task["stdout_tail"])
        ET.SubElement(suite, "system-err").text = _x(task["stderr_tail"])
        started = task["started_at"] or summary["started_at"] or 0.0
        attrs = {
            "id": str(i),
            "package": _x(summary["suite"]),
            "name": _x(task["task_id"]),
            "tests": str(len(cases)),
            "failures": str(n["failure"]),
            "errors": str(n["error"]),
            "skipped": str(n["skipped"]),
            "time": _junit_time(task["wall_s"]),
            # The Ant schema's timestamp is an xs:dateTime without a zone: UTC.
            "timestamp": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": _x(task["hostname"] or "localhost"),
        }
        for key, value in attrs.items():
            suite.set(key, value)
        totals.update({"tests": len(cases), **{k: n[k] for k in ("failure", "error", "skipped")}})
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failure"]))
    root.set("errors", str(totals["error"]))
    root.set("skipped", str(totals["skipped"]))
    root.set("time", _junit_time(summary["duration_s"]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
