"""What a CI reads beside the reports, from a run summary: the pull-request comment body,
GitLab's OpenMetrics file, GitHub's ``::warning`` lines and step outputs; badges as shields.io
endpoint JSON and self-contained SVG."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET

import pytest
from support.history_seed import seeded_db

from dtf_core.cli.badge import KINDS as CLI_KINDS
from dtf_core.reporting import badge, ci
from dtf_core.reporting.openmetrics import render_openmetrics
from dtf_core.reporting.prcomment import MARKER, render_pr_comment, sparkline
from dtf_core.reporting.write import metrics_path
from dtf_core.store import StoreReader

REGRESSED = {
    "benchmark": "matmul", "params": {"n": 64}, "hardware": "cpu", "unit": "s",
    "baseline": 0.010, "run": 0.0125, "change": 0.25, "q_value": 0.001, "verdict": "regressed",
}  # fmt: skip
UNCHANGED = {**REGRESSED, "params": {"n": 128}, "run": 0.0101, "change": 0.01,
             "verdict": "unchanged"}  # fmt: skip


def summary(failures: int = 1, **extra):
    return {
        "run_id": "r-2",
        "suite": "demo",
        "status": "failed" if failures else "passed",
        "duration_s": 3.25,
        "counts": {"passed": 5, "failed": failures, "skipped": 1, "errors": 0},
        "failures": [
            {
                "task_id": "pytest-1",
                "nodeid": f"tests/test_a.py::test_{i}",
                "outcome": "failed",
                "category": "test-failure",
                "message": f"assert {i} | 2 == 3\nlong traceback",
            }
            for i in range(failures)
        ],
        "benchmarks": [
            {
                "benchmark": "matmul",
                "params": {"n": 64},
                "hardware": "cpu",
                "unit": "s",
                "median": 0.0125123,
            },
            {"benchmark": 'we"ird', "params": {}, "hardware": "", "unit": "s", "median": 1.0},
        ],
        "analysis": {
            "baseline": "r-1",
            "comparison": {"rows": [UNCHANGED, REGRESSED]},
            "recent": [
                {
                    "benchmark": "matmul",
                    "params": {"n": 64},
                    "hardware": "cpu",
                    "values": [0.01, 0.0101, 0.0099, 0.0125],
                },
            ],
        },
        "metadata": {"ci": {"provider": "github", "job_url": "https://ci.example/job/1"}},
        **extra,
    }


def test_sparkline():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3, 3, 3]) == "▄▄▄"
    assert sparkline([1.0, float("nan"), None, 2.0]) == "▁█"
    assert sparkline([]) == ""


def test_pr_comment_has_counts_failures_and_regressions_with_a_sparkline():
    text = render_pr_comment(summary())
    lines = text.splitlines()
    assert lines[0] == MARKER
    assert lines[1] == "### ❌ dtf: demo: FAILED"
    assert "Run `r-2`: 5 passed, 1 failed, 1 skipped." in text
    assert "**Failures (1)**" in text
    # The node id and the message's first line, its pipe escaped; the traceback stays out.
    assert "| `tests/test_a.py::test_0` | assert 0 \\| 2 == 3 |" in lines
    assert "long traceback" not in text
    assert "**Regressions against run `r-1` (1)**" in text
    (row,) = [ln for ln in lines if ln.startswith("| `matmul")]
    assert row == "| `matmul[n=64] on cpu` | +25.0% | 10 ms -> 12.5 ms | ▁▂▁█ |"
    assert "n=128" not in text  # unchanged benchmarks are not a reviewer's business here
    assert "[The full report is in the job](https://ci.example/job/1)." in text


def test_pr_comment_when_all_is_well_and_when_a_lot_failed():
    calm = summary(failures=0)
    calm["analysis"]["comparison"]["rows"] = [UNCHANGED]
    text = render_pr_comment(calm)
    assert "### ✅ dtf: demo: PASSED" in text and "Failures" not in text
    assert "No benchmark regressed against run `r-1`." in text
    many = render_pr_comment(summary(failures=25))
    assert "**Failures (25)**" in many and "| … and 5 more |  |" in many
    assert many.count("tests/test_a.py::test_") == 20


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def test_openmetrics_is_valid_text_that_gitlab_can_compare():
    text = render_openmetrics(summary())
    assert text.endswith("\n# EOF\n")
    lines = text.splitlines()[:-1]
    names = []
    for line in lines:
        m = _SAMPLE.match(line)
        assert m, line
        float(m.group(3))
        names.append(m.group(1))
    # One family's samples stay together (OpenMetrics forbids interleaving).
    assert names == sorted(names)
    assert 'dtf_tests{outcome="failed"} 1' in lines
    assert "dtf_run_passed 0" in lines
    assert "dtf_benchmark_regressions 1" in lines
    med = 'dtf_benchmark_median{benchmark="matmul",hardware="cpu",params="n=64",unit="s"} 0.01251'
    assert med in lines  # 4 significant digits: noise in the 5th is no change
    assert any(line.startswith('dtf_benchmark_median{benchmark="we\\"ird"') for line in lines)
    assert render_openmetrics(summary()) == text  # stable from run to run


def test_github_gets_a_warning_per_regression_and_the_outputs(tmp_path):
    outputs = tmp_path / "out"
    out = io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs)}
    assert ci.emit_github(summary(), env, out, root=None)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("::error file=tests/test_a.py,line=1,title=tests/test_a.py%3A%3A")
    assert lines[1] == (  # "%" is escaped as GitHub's workflow commands require
        "::warning title=regression%3A matmul::matmul[n=64] on cpu +25.0 %25 "
        "(0.01 -> 0.0125 s) against run r-1"
    )
    assert outputs.read_text().splitlines() == [
        "run-id=r-2", "status=failed", "exit-code=1", "regressions=1",
    ]  # fmt: skip


def test_gitlab_jobs_get_metrics_txt_unless_told_otherwise():
    assert metrics_path(None, {"GITLAB_CI": "true"}) == "metrics.txt"
    assert metrics_path("m/x.txt", {"GITLAB_CI": "true"}) == "m/x.txt"
    assert metrics_path(None, {"GITHUB_ACTIONS": "true"}) is None


# -- badges ---------------------------------------------------------------------------


def check_endpoint(doc: dict) -> None:
    """https://shields.io/badges/endpoint-badge: the keys it requires, with their types."""
    assert doc["schemaVersion"] == 1
    assert isinstance(doc["label"], str) and doc["label"]
    assert isinstance(doc["message"], str) and doc["message"]
    assert doc["color"] in badge.COLORS


def check_svg(text: str, label: str, message: str) -> None:
    root = ET.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert int(root.get("width", "0")) > 0 and root.get("height") == "20"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == [label, label, message, message]
    # Self-contained: no link, image, font or style from elsewhere.
    assert "href" not in text and "@import" not in text and "<image" not in text
    assert text.replace('xmlns="http://www.w3.org/2000/svg"', "").count("http") == 0


def test_the_cli_offers_the_kinds_there_are():
    assert CLI_KINDS == badge.KINDS


@pytest.mark.parametrize(
    ("rate", "color"),
    [(1.0, "brightgreen"), (0.97, "green"), (0.9, "yellowgreen"), (0.8, "yellow"),
     (0.5, "orange"), (0.2, "red")],
)  # fmt: skip
def test_passrate_colour(rate, color):
    assert badge.passrate_color(rate) == color


def test_endpoint_and_svg_of_a_badge():
    b = badge.Badge("tests", "99.9% (<999>/1000)", "green")
    check_endpoint(json.loads(badge.render_badge(b, "json")))
    check_svg(badge.render_badge(b, "svg"), "tests", "99.9% (<999>/1000)")  # escaped, parsed back
    with pytest.raises(Exception, match="not one of"):
        badge.render_badge(b, "png")


@pytest.fixture(scope="module")
def histories(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("badge")
    shifted, truth = seeded_db(tmp / "shifted.duckdb", benchmarks=6, runs=160, samples=3,
                               hardware=1, seed=7, shift_share=1.0)  # fmt: skip
    quiet, _ = seeded_db(tmp / "quiet.duckdb", benchmarks=6, runs=160, samples=3, hardware=1,
                         seed=7, shift_share=0.0)  # fmt: skip
    return shifted, truth, quiet


def test_perf_badge_counts_open_regressions(histories):
    shifted, truth, quiet = histories
    slower = [t for t in truth if t["change"] > 0]  # every seeded unit here is seconds
    assert slower, "the seed must inject at least one slowdown"
    with StoreReader(shifted) as s:
        b = badge.make_badge(s, "perf", "seed")
    check_endpoint(b.endpoint())
    n = int(b.message.split()[0])
    assert b.message == f"{n} regression{'' if n == 1 else 's'}"
    assert 1 <= n <= len(slower) and b.color == "red"
    with StoreReader(quiet) as s:
        calm = badge.make_badge(s, "perf")
    assert (calm.message, calm.color) == ("0 regressions", "brightgreen")


def test_badges_of_an_unknown_suite_or_kind_are_bad_input(histories):
    from dtf_core.errors import BadInputError

    with StoreReader(histories[2]) as s:
        with pytest.raises(BadInputError, match="no runs of suite 'nope'"):
            badge.make_badge(s, "status", "nope")
        with pytest.raises(BadInputError, match="not one of status, passrate, perf"):
            badge.make_badge(s, "coverage")
