"""Reports of one run, built from the store: Markdown, JSON, HTML and JUnit XML.

:func:`build_summary` reads the store once into a JSON-ready dict; every
renderer works from that dict alone, so the renderers need no database.

How ``counts`` counts (pytest's vocabulary, one number per outcome):

* A **pytest task that produced test results** contributes the final outcome of
  each of its tests (the last attempt that ran a test overlays earlier ones):
  ``passed``, ``failed``, ``skipped``, ``xfailed``, ``xpassed``, and ``error``
  into ``errors``. If the task itself ended badly while none of its final tests
  failed (it crashed or timed out after some tests passed), it also contributes
  1 at task level, as below, so that the failure is never hidden.
* A **pytest task without test results** (timed out, crashed, unschedulable)
  and every **benchmark and command task** contribute 1 by their final status:
  ``passed``, ``skipped``, ``timed_out`` -> ``timeouts``, ``unschedulable``,
  ``cancelled``; ``failed`` -> ``failed`` for the ``test-failure`` category
  (or none), else the category's bucket (``timeout`` -> ``timeouts`` ...),
  and ``errors`` for infrastructure categories (worker-lost, resource,
  infrastructure, bad-spec, security).
* Tasks still ``pending`` (the run stopped before them) are counted only in
  ``counts["tasks"]``, the per-status count of tasks.
* ``flaky``: flaky tests (an earlier attempt failed, the final passed) plus
  flaky tasks that have no flaky test to speak for them.

``status`` is the run's own status when it is ``cancelled``; otherwise
``passed`` when every task passed or was skipped, else ``failed``.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from dtf_core.analysis.stats import summarize
from dtf_core.cluster.hardware import label
from dtf_core.store import StoreReader

COUNT_KEYS = (
    "passed", "failed", "skipped", "xfailed", "xpassed", "errors",
    "timeouts", "unschedulable", "cancelled", "flaky",
)  # fmt: skip
_TEST_BUCKET = {"error": "errors"}
_STATUS_BUCKET = {"timed_out": "timeouts"}
_CATEGORY_BUCKET = {
    None: "failed", "test-failure": "failed", "timeout": "timeouts",
    "unschedulable": "unschedulable", "cancelled": "cancelled",
}  # fmt: skip
_OK = ("passed", "skipped")
_BAD_TESTS = ("failed", "error")


def _task_bucket(status: str, category: str | None) -> str | None:
    if status == "pending":
        return None
    if status == "failed":
        return _CATEGORY_BUCKET.get(category, "errors")
    return _STATUS_BUCKET.get(status, status)


def build_summary(store: StoreReader, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    # Plain dicts: the summary adds keys to the stored rows.
    tasks: list[dict[str, Any]] = [dict(t) for t in store.tasks(run_id)]
    tests_by_task: dict[str, list[dict[str, Any]]] = {}
    for row in store.final_tests(run_id):
        tests_by_task.setdefault(row["task_id"], []).append(dict(row))
    first_start: dict[str, float | None] = {}
    last_attempt: dict[str, dict[str, Any]] = {}
    for a in store.attempts(run_id):  # ordered by task, attempt
        first_start.setdefault(a["task_id"], a["started_at"])
        last_attempt[a["task_id"]] = dict(a)
    workers = store.workers(run_id)
    hosts = {w["address"]: w["host"] for w in workers} | {w["name"]: w["host"] for w in workers}

    counts: Counter[str] = Counter(dict.fromkeys(COUNT_KEYS, 0))
    failures: list[dict[str, Any]] = []
    flaky: list[dict[str, Any]] = []
    for task in tasks:
        tid = task["task_id"]
        tests = tests_by_task.get(tid, [])
        last = last_attempt.get(tid, {})
        task["worker"] = task["worker"] or last.get("worker") or ""
        task["tests"] = tests
        task["started_at"] = first_start.get(tid)
        task["hostname"] = hosts.get(task["worker"] or "") or task["worker"] or None
        task["stdout_tail"] = last.get("stdout_tail") or ""
        task["stderr_tail"] = last.get("stderr_tail") or ""
        for t in tests:
            counts[_TEST_BUCKET.get(t["outcome"], t["outcome"])] += 1
            if t["outcome"] in _BAD_TESTS:
                failures.append(
                    {
                        "task_id": tid,
                        "nodeid": t["nodeid"],
                        "category": task["category"] or "test-failure",
                        "message": t["message"] or "",
                        "worker": t["worker"] or task["worker"],
                    }
                )
        flaky_tests = [t for t in tests if t["flaky"]]
        flaky += [{"task_id": tid, "nodeid": t["nodeid"]} for t in flaky_tests]
        if task["flaky"] and not flaky_tests:
            flaky.append({"task_id": tid, "nodeid": None, "attempts": task["attempts"]})
        # A task-level entry when no test speaks for the task's own ending.
        task["task_level"] = not tests or (
            task["status"] not in _OK
            and task["status"] != "pending"
            and not any(t["outcome"] in _BAD_TESTS for t in tests)
        )
        bucket = _task_bucket(task["status"], task["category"])
        if task["task_level"] and bucket is not None:
            counts[bucket] += 1
            if task["status"] not in _OK:
                failures.append(
                    {
                        "task_id": tid,
                        "nodeid": None,
                        "category": task["category"] or task["status"],
                        "message": task["message"] or "",
                        "worker": task["worker"],
                    }
                )
    counts["flaky"] = len(flaky)
    task_counts = Counter(t["status"] for t in tasks)

    if run["status"] == "cancelled":
        status = "cancelled"
    else:
        status = "passed" if all(t["status"] in _OK for t in tasks) else "failed"
    started, finished = run["started_at"], run["finished_at"]
    ranked = sorted((t for t in tasks if t["wall_s"]), key=lambda t: -t["wall_s"])
    return {
        "run_id": run_id,
        "suite": run["suite"],
        "status": status,
        "started_at": started,
        "finished_at": finished,
        "duration_s": finished - started if started and finished else None,
        "counts": {
            **{k: counts[k] for k in COUNT_KEYS},
            "tasks": dict(sorted(task_counts.items())),
        },
        "tasks": tasks,
        "failures": failures,
        "flaky": flaky,
        "slowest": [
            {k: t[k] for k in ("task_id", "wall_s", "status", "worker")} for t in ranked[:10]
        ],
        "benchmarks": _benchmarks(store, run_id),
        "workers": workers,
        "analysis": _analysis(store, run_id),
    }


def _analysis(store: StoreReader, run_id: str) -> dict[str, Any] | None:
    """Verdicts against the previous run, pivots, best configurations and history
    (``dtf_core.reporting.sections``); ``None`` for a run without benchmark samples."""
    # Imported here: the analysis modules import this one (for humanize).
    from dtf_core.reporting import sections

    return sections.build(store, run_id)


def _benchmarks(store: StoreReader, run_id: str) -> list[dict[str, Any]]:
    df = store.benchmark_samples(run_id)
    out = []
    for (task_id, hardware), g in df.groupby(["task_id", "hardware"], sort=True, dropna=False):
        first = g.iloc[0]
        out.append(
            {
                "task_id": task_id,
                "benchmark": first["benchmark"],
                "params": json.loads(first["params"] or "{}"),
                "hardware": hardware if isinstance(hardware, str) else "",
                "unit": first["unit"],
                **summarize(g["value"].to_numpy()),
            }
        )
    return out


# ---- JSON --------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    # JSON has no NaN/Infinity; strict parsers (jq, browsers) reject them.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def render_json(summary: dict[str, Any]) -> str:
    return json.dumps(_jsonable(summary), indent=2, default=str) + "\n"


# ---- Markdown ----------------------------------------------------------------

_SCALES = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def humanize(value: float | None, unit: str, ref: float | None = None) -> str:
    """``0.00123, "s"`` -> ``1.23 ms``; ``ref`` picks the scale (to align a CI)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit != "s":
        return f"{value:.4g} {unit}".rstrip()
    size = abs(ref if ref is not None else value)
    for factor, name in _SCALES:
        if size >= factor or factor == _SCALES[-1][0]:
            return f"{value / factor:.3g} {name}"
    raise AssertionError("unreachable")


def _cell(text: Any) -> str:
    first = str(text if text is not None else "").strip().splitlines()
    return (first[0] if first else "").replace("|", "\\|")[:200]


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _when(ts: float | None) -> str:
    if not ts:
        return "n/a"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_markdown(summary: dict[str, Any]) -> str:
    s = summary
    dur = s["duration_s"]
    out = [
        f"# dtf: {s['suite']}: {s['status'].upper()}",
        "",
        f"Run `{s['run_id']}`, started {_when(s['started_at'])}"
        + (f", took {dur:.1f} s" if dur is not None else ", not finished"),
        "",
        "## Counts",
        "",
        *_table(list(COUNT_KEYS), [[s["counts"][k] for k in COUNT_KEYS]]),
        "Tasks: " + ", ".join(f"{n} {st}" for st, n in s["counts"]["tasks"].items()),
        "",
        "## Failures",
        "",
    ]
    if s["failures"]:
        rows = [
            [f["category"], f["nodeid"] or f["task_id"], f["message"], f["worker"]]
            for f in s["failures"]
        ]
        out += _table(["category", "task / test", "message", "worker"], rows)
    else:
        out += ["None.", ""]
    if s["flaky"]:
        rows = [[f["task_id"], f["nodeid"] or ""] for f in s["flaky"]]
        out += ["## Flaky", "", *_table(["task", "test"], rows)]
    if s["slowest"]:
        rows = [
            [t["task_id"], f"{t['wall_s']:.2f} s", t["status"], t["worker"]] for t in s["slowest"]
        ]
        out += ["## Slowest tasks", "", *_table(["task", "wall", "status", "worker"], rows)]
    if s["benchmarks"]:
        out += ["## Benchmarks", ""]
        by_hw: dict[str, list[dict[str, Any]]] = {}
        for b in s["benchmarks"]:
            by_hw.setdefault(b["hardware"] or "unknown hardware", []).append(b)
        for hw, benches in by_hw.items():
            rows = []
            for b in benches:
                med, unit = b["median"], b["unit"]
                ci = f"{humanize(b['ci_low'], unit, med)} to {humanize(b['ci_high'], unit, med)}"
                spread = max(b["ci_high"] - med, med - b["ci_low"]) if med is not None else None
                pct = f"±{100 * spread / abs(med):.1f}%" if spread is not None and med else ""
                params = ", ".join(f"{k}={v}" for k, v in b["params"].items())
                note = " (min to max: n < 6)" if b.get("ci_note") else ""
                rows.append([b["benchmark"], params, b["n"], humanize(med, unit), ci + note, pct])
            head = ["benchmark", "params", "n", "median", "95% CI", "±"]
            out += [f"### {hw}", "", *_table(head, rows)]
    if s["workers"]:
        rows = [
            [
                w["name"],
                w["host"],
                w["address"],
                _kv(w["resources"]),
                label(w["hardware"]) if w["hardware"] else "",
            ]
            for w in s["workers"]
        ]
        out += [
            "## Workers",
            "",
            *_table(["name", "host", "address", "resources", "hardware"], rows),
        ]
    out += _analysis_markdown(s)
    return "\n".join(out)


def _analysis_markdown(summary: dict[str, Any]) -> list[str]:
    from dtf_core.reporting import sections

    return sections.markdown(summary.get("analysis"))


def render_html(summary: dict[str, Any]) -> str:
    """One self-contained HTML file: the run, its analysis and inline SVG charts."""
    from dtf_core.reporting import html

    return html.render_html(_jsonable(summary))


def _kv(d: dict[str, Any] | None) -> str:
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in (d or {}).items()
    )


# ---- JUnit XML ---------------------------------------------------------------

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
            bucket = _task_bucket(task["status"], task["category"])
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


# ---- files -------------------------------------------------------------------


def write_reports(
    store: StoreReader,
    run_id: str,
    *,
    markdown: str | os.PathLike[str] | None = None,
    junit: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    html: str | os.PathLike[str] | None = None,
) -> None:
    """Write the reports asked for; append the Markdown to ``$GITHUB_STEP_SUMMARY`` when set."""
    summary = build_summary(store, run_id)
    md = render_markdown(summary)
    for path, text in (
        (markdown, md),
        (junit, render_junit(summary) if junit else ""),
        (json_path, render_json(summary) if json_path else ""),
        (html, render_html(summary) if html else ""),
    ):
        if path is not None:
            p = pathlib.Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
