"""Reports from a stored run: counts math, Markdown, JSON, JUnit XML, step summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import partial

import pytest
from support.factories import task_spec

from dtf_core import model
from dtf_core.reporting import (
    build_summary,
    render_json,
    render_junit,
    render_markdown,
    split_nodeid,
    write_reports,
)
from dtf_core.reporting.format import humanize
from dtf_core.store import Store

T = model.TestResult
F = model.TaskFinal


_spec = partial(task_spec, root="/s", timeout=5.0, retries=1)


def _att(task_id: str, n: int, outcome: str, **kw: object) -> model.AttemptResult:
    kw.setdefault("worker", "tcp://10.0.0.1:1")
    kw.setdefault("started_at", 1000.0 + n)
    return model.AttemptResult("r1", task_id, n, outcome, **kw)  # type: ignore[arg-type]


@pytest.fixture
def store(db_path):
    """One run with every kind of ending (expected counts in test_counts_math)."""
    s = Store(db_path)
    s.create_run("r1", "demo", "/s/suite.toml", {}, 1000.0)
    s.add_tasks(
        "r1",
        [
            _spec("unit", "pytest"), _spec("slow", "pytest"), _spec("crash", "pytest"),
            _spec("gpu", "pytest", requires={"GPU": 1.0}),
            _spec("bench[n=1]", "benchmark", "bench", params={"n": 1}),
            _spec("bench[n=2]", "benchmark", "bench", params={"n": 2}),
            _spec("lint", "command"), _spec("cmd-err", "command"), _spec("flaky-cmd", "command"),
        ],
    )  # fmt: skip
    s.record_workers(
        "r1",
        [{"address": "tcp://10.0.0.1:1", "name": "cpu-0", "host": "node1",
          "resources": {"CPU": 2}, "hardware": {"cpu": "EPYC"}}],
    )  # fmt: skip
    s.add_attempt(
        _att("unit", 1, "failed", category="test-failure", stdout_tail="first",
             tests=[T("tests/test_a.py::test_ok", "passed", 0.1),
                    T("tests/test_a.py::TestK::test_flip", "failed", 0.2, "assert 1\nmore"),
                    T("tests/test_a.py::test_bad", "failed", 0.3, "nope"),
                    T("tests/test_a.py::test_err", "error", 0.0, "fixture"),
                    T("tests/test_a.py::test_skip", "skipped", 0.0, "why"),
                    T("tests/test_a.py::test_xf", "xfailed", 0.0),
                    T("tests/test_a.py::test_xp", "xpassed", 0.0)])
    )  # fmt: skip
    s.add_attempt(
        _att("unit", 2, "failed", category="test-failure", stdout_tail="out\x00put",
             tests=[T("tests/test_a.py::TestK::test_flip", "passed", 0.2),
                    T("tests/test_a.py::test_bad", "failed", 0.3, "nope | again"),
                    T("tests/test_a.py::test_err", "error", 0.0, "fixture")])
    )  # fmt: skip
    s.add_attempt(_att("slow", 1, "timed_out", category="timeout", message="timed out"))
    s.add_attempt(
        _att("crash", 1, "error", category="worker-lost", message="worker died",
             tests=[T("tests/test_c.py::test_1", "passed"), T("tests/test_c.py::test_2", "passed")])
    )  # fmt: skip
    s.add_attempt(_att("bench[n=1]", 1, "passed", hardware="cpu-a", samples=[1e-3] * 20))
    s.add_attempt(_att("bench[n=2]", 1, "passed", hardware="gpu-b", samples=[2.0, 3.0], unit="ops"))
    s.add_attempt(_att("lint", 1, "failed", category="test-failure", message="exited 1"))
    s.add_attempt(_att("cmd-err", 1, "failed", category="bad-spec", message="not found"))
    s.add_attempt(_att("flaky-cmd", 1, "error", category="worker-lost"))
    s.add_attempt(_att("flaky-cmd", 2, "passed"))
    finals = [
        F("unit", "failed", "test-failure", "tests failed", 2, True, 5.0, "tcp://10.0.0.1:1"),
        F("slow", "timed_out", "timeout", "timed out", 1, False, 9.0, "tcp://10.0.0.1:1"),
        F("crash", "failed", "worker-lost", "worker died", 1, False, 1.0, "tcp://10.0.0.1:1"),
        F("gpu", "unschedulable", "unschedulable", "no worker has GPU", 0),
        F("bench[n=1]", "passed", None, "", 1, False, 0.5, "tcp://10.0.0.1:1"),
        F("bench[n=2]", "passed", None, "", 1, False, 0.4, "tcp://10.0.0.1:1"),
        F("lint", "failed", "test-failure", "exited 1", 1, False, 0.2),
        F("cmd-err", "failed", "bad-spec", "not found", 1, False, 0.1),
        F("flaky-cmd", "passed", None, "", 2, True, 0.3),
    ]
    for f in finals:
        s.finish_task("r1", f)
    s.finish_run("r1", "failed", 1020.0)
    yield s
    s.close()


def test_counts_math(store):
    summary = build_summary(store, "r1")
    assert summary["counts"] == {
        "passed": 7,  # unit: ok, flip; crash: 2; two benches; flaky-cmd
        "failed": 2,  # unit::test_bad, lint
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
        "errors": 3,  # unit::test_err, crash (worker lost after its tests), cmd-err (bad-spec)
        "timeouts": 1,
        "unschedulable": 1,
        "cancelled": 0,
        "flaky": 2,  # test_flip, flaky-cmd
        "tasks": {"failed": 4, "passed": 3, "timed_out": 1, "unschedulable": 1},
    }
    assert summary["status"] == "failed"
    assert summary["duration_s"] == 20.0
    nodeids = {(f["task_id"], f["nodeid"]) for f in summary["failures"]}
    assert nodeids == {
        ("unit", "tests/test_a.py::test_bad"), ("unit", "tests/test_a.py::test_err"),
        ("slow", None), ("crash", None), ("gpu", None), ("lint", None), ("cmd-err", None),
    }  # fmt: skip
    assert [f["nodeid"] for f in summary["flaky"]] == [None, "tests/test_a.py::TestK::test_flip"]
    assert summary["slowest"][0]["task_id"] == "slow"
    benches = {b["task_id"]: b for b in summary["benchmarks"]}
    assert benches["bench[n=1]"]["median"] == pytest.approx(1e-3)
    assert benches["bench[n=1]"]["n"] == 20 and benches["bench[n=1]"]["params"] == {"n": 1}
    assert benches["bench[n=2]"]["hardware"] == "gpu-b" and benches["bench[n=2]"]["unit"] == "ops"


def test_status_passed_and_cancelled(tmp_path):
    with Store(tmp_path / "x.duckdb") as s:
        s.create_run("ok", "demo", "/s", {}, 1.0)
        s.add_tasks("ok", [_spec("a", "command"), _spec("b", "command")])
        s.finish_task("ok", F("a", "passed"))
        s.finish_task("ok", F("b", "skipped"))
        s.finish_run("ok", "passed", 2.0)
        assert build_summary(s, "ok")["status"] == "passed"
        s.create_run("c", "demo", "/s", {}, 3.0)
        s.add_tasks("c", [_spec("a", "command")])
        s.finish_run("c", "cancelled", 4.0)
        summary = build_summary(s, "c")
        assert summary["status"] == "cancelled"
        assert summary["counts"]["tasks"] == {"pending": 1}
        assert sum(summary["counts"][k] for k in ("passed", "failed", "cancelled")) == 0
        ET.fromstring(render_junit(summary))  # a pending task still renders


def test_markdown_sections(store):
    md = render_markdown(build_summary(store, "r1"))
    assert md.startswith("# dtf: demo: FAILED")
    for section in ("## Counts", "## Failures", "## Flaky", "## Slowest tasks",
                    "## Benchmarks", "### cpu-a", "### gpu-b", "## Workers"):  # fmt: skip
        assert section in md
    assert "| test-failure | tests/test_a.py::test_bad | nope \\| again |" in md
    assert "1 ms" in md and "2.5 ops" in md
    assert "node1" in md and "CPU=2" in md
    assert "more" not in md  # messages: first line only


def test_humanize():
    assert humanize(0.00123, "s") == "1.23 ms"
    assert humanize(2.5e-7, "s") == "250 ns"
    assert humanize(3.0, "s") == "3 s"
    assert humanize(0.0, "s") == "0 ns"
    assert humanize(1.5e-6, "s", ref=1e-3) == "0.0015 ms"
    assert humanize(1234.5, "ops") == "1234 ops" or humanize(1234.5, "ops") == "1235 ops"
    assert humanize(None, "s") == "n/a"


def test_split_nodeid():
    assert split_nodeid("tests/a/test_x.py::TestC::test_y[1]") == (
        "tests.a.test_x.TestC",
        "test_y[1]",
    )
    assert split_nodeid("test_x.py::test_y") == ("test_x", "test_y")
    assert split_nodeid("tests/test_x.py") == ("tests.test_x", "tests/test_x.py")


def test_junit_counts_and_shape(store):
    root = ET.fromstring(render_junit(build_summary(store, "r1")))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert len(suites) == 9
    unit = suites["unit"]
    assert (unit.get("tests"), unit.get("failures"), unit.get("errors"), unit.get("skipped")) == (
        "7", "1", "1", "2",  # skipped + xfailed
    )  # fmt: skip
    assert unit.get("hostname") == "node1" and unit.get("timestamp") == "1970-01-01T00:16:41"
    flip = unit.find("testcase[@name='test_flip']")
    assert flip is not None and flip.get("classname") == "tests.test_a.TestK" and len(flip) == 0
    bad = unit.find("testcase[@name='test_bad']/failure")
    assert bad is not None and bad.get("message") == "nope | again"
    assert unit.findtext("system-out") == "out\ufffdput"  # the last attempt's; NUL is no XML
    crash = suites["crash"]  # 2 passed tests + the worker loss
    assert (crash.get("tests"), crash.get("errors")) == ("3", "1")
    assert suites["slow"].find("testcase/error").get("type") == "timeout"
    assert suites["bench[n=1]"].find("testcase").get("classname") == "dtf.benchmark"
    assert suites["lint"].find("testcase/failure") is not None
    totals = {
        k: sum(int(s.get(k)) for s in suites.values())
        for k in ("tests", "failures", "errors", "skipped")
    }
    assert totals == {k: int(root.get(k)) for k in totals}
    assert totals == {"tests": 17, "failures": 2, "errors": 5, "skipped": 2}
    for s in suites.values():  # the Ant schema's required children and numeric attributes
        tags = [c.tag for c in s]
        assert tags[0] == "properties" and tags[-2:] == ["system-out", "system-err"]
        float(s.get("time"))
        for case in s.findall("testcase"):
            float(case.get("time"))


def test_json_round_trips(store):
    data = json.loads(render_json(build_summary(store, "r1")))
    assert data["run_id"] == "r1" and data["counts"]["failed"] == 2
    assert {"tasks", "failures", "flaky", "slowest", "benchmarks", "workers"} <= set(data)


def test_write_reports_and_step_summary(store, tmp_path, monkeypatch):
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    out = tmp_path / "out"
    write_reports(store, "r1", markdown=out / "r.md", junit=out / "r.xml", json_path=out / "r.json")
    md = (out / "r.md").read_text()
    assert step.read_text().startswith("earlier step\n# dtf: demo: FAILED")
    assert md in step.read_text()
    ET.parse(out / "r.xml")
    assert json.loads((out / "r.json").read_text())["suite"] == "demo"
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    write_reports(store, "r1", markdown=out / "again.md")
    assert step.read_text().count("# dtf: demo") == 1
