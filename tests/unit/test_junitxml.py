"""JUnit XML parsing: pytest's (with and without dtf's plugin) and other tools'."""

from __future__ import annotations

from pathlib import Path

from dtf_core.testing.junitxml import parse_junit

GENERIC = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="com.example.FooTest" tests="5">
    <testcase classname="com.example.FooTest" name="testOk" time="0.5"/>
    <testcase classname="com.example.FooTest" name="testBad" time="0.1">
      <failure message="expected 1 but was 2" type="AssertionError">stack</failure>
    </testcase>
    <testcase classname="com.example.FooTest" name="testCrash">
      <error type="NullPointerException">java.lang.NullPointerException
        at Foo.bar</error>
    </testcase>
    <testcase classname="com.example.FooTest" name="testLater">
      <skipped message="disabled"/>
    </testcase>
    <testsuite name="nested">
      <testcase name="bare" time="oops"/>
    </testsuite>
  </testsuite>
</testsuites>
"""


def rows(results: list) -> list[tuple[str, str, str]]:
    return [(r.nodeid, r.outcome, r.message) for r in results]


def test_generic_junit() -> None:
    results = parse_junit(GENERIC)
    assert rows(results) == [
        ("com.example.FooTest::testOk", "passed", ""),
        ("com.example.FooTest::testBad", "failed", "expected 1 but was 2"),
        ("com.example.FooTest::testCrash", "error", "java.lang.NullPointerException"),
        ("com.example.FooTest::testLater", "skipped", "disabled"),
        ("bare", "passed", ""),
    ]
    assert results[0].duration_s == 0.5 and results[4].duration_s == 0.0


def test_path_text_and_bytes_agree(tmp_path: Path) -> None:
    f = tmp_path / "j.xml"
    f.write_text(GENERIC)
    assert parse_junit(f) == parse_junit(str(f)) == parse_junit(GENERIC.encode())


PYTEST_XUNIT1_PLAIN = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" tests="6">
<testcase classname="" name="pkg.test_bad" file="pkg/test_bad.py" time="0.000">
  <error message="collection failure">ImportError</error></testcase>
<testcase classname="pkg.test_x" name="test_a[1.5]" file="pkg/test_x.py" line="3" time="0.1"/>
<testcase classname="pkg.test_x.TestC.TestInner" name="test_n" file="pkg/test_x.py" time="0"/>
<testcase classname="pkg.test_x" name="test_xf" file="pkg/test_x.py" time="0">
  <skipped type="pytest.xfail" message="known"/></testcase>
<testcase classname="pkg.test_x" name="test_f" file="pkg/test_x.py" time="0">
  <failure message="assert 0">...</failure></testcase>
<testcase classname="pkg.test_x" name="test_f" file="pkg/test_x.py" time="0">
  <error message="failed on teardown with &quot;boom&quot;">...</error></testcase>
</testsuite></testsuites>
"""


def test_pytest_xml_without_plugin() -> None:
    assert [(r.nodeid, r.outcome) for r in parse_junit(PYTEST_XUNIT1_PLAIN)] == [
        ("pkg/test_bad.py", "error"),
        ("pkg/test_x.py::test_a[1.5]", "passed"),
        ("pkg/test_x.py::TestC::TestInner::test_n", "passed"),
        ("pkg/test_x.py::test_xf", "xfailed"),
        ("pkg/test_x.py::test_f", "failed"),  # pytest's split record of a call failure
        ("pkg/test_x.py::test_f", "error"),  # ... and of the teardown error
    ]


def test_pytest_xunit2_without_file_attribute() -> None:
    xml = """<testsuites><testsuite name="pytest">
    <testcase classname="pkg.test_x.TestC" name="test_m"/>
    <testcase classname="pkg.test_x" name="test_f"/>
    </testsuite></testsuites>"""
    assert [r.nodeid for r in parse_junit(xml)] == [
        "pkg/test_x.py::TestC::test_m",
        "pkg/test_x.py::test_f",
    ]


PYTEST_WITH_PLUGIN_SPLIT = """<testsuites><testsuite name="pytest">
<testcase classname="t" name="test_f" file="t.py" time="0.2">
  <properties><property name="dtf_nodeid" value="t.py::test_f"/></properties>
  <failure message="assert 0">...</failure></testcase>
<testcase classname="t" name="test_f" file="t.py" time="0.2">
  <properties><property name="dtf_nodeid" value="t.py::test_f"/>
    <property name="dtf_outcome" value="failed"/><property name="dtf_outcome" value="error"/>
  </properties>
  <error message="failed on teardown">...</error></testcase>
<testcase classname="t" name="test_xp" file="t.py">
  <properties><property name="dtf_nodeid" value="sub/t.py::test_xp"/>
    <property name="dtf_outcome" value="xpassed"/></properties></testcase>
</testsuite></testsuites>"""


def test_plugin_outcomes_and_split_records() -> None:
    assert rows(parse_junit(PYTEST_WITH_PLUGIN_SPLIT)) == [
        ("t.py::test_f", "failed", "assert 0"),  # message lent by the duplicate record
        ("t.py::test_f", "error", "failed on teardown"),
        ("sub/t.py::test_xp", "xpassed", ""),
    ]
