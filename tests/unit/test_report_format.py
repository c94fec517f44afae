"""The shared formatters of reports, analysis commands and console, and the direction of the
imports around them (reporting above analysis, nothing above reporting)."""

from __future__ import annotations

import ast
import math
import pathlib

import pytest

from dtf_core.reporting.format import cell, humanize, params_label, pct, pval, table, when

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (1_767_225_600.0, "2026-01-01 00:00 UTC"),
        (1_767_225_659.9, "2026-01-01 00:00 UTC"),  # minutes, truncated like a clock
        (1_767_269_100.0, "2026-01-01 12:05 UTC"),
        (None, "n/a"),
        (0.0, "n/a"),  # never set: the store keeps 0 / NULL for "not yet"
        (math.nan, "n/a"),
        (math.inf, "n/a"),
    ],
)
def test_when_is_one_format_in_utc(ts: float | None, text: str) -> None:
    assert when(ts) == text


def test_humanize_scales_seconds_to_the_value_or_to_a_reference() -> None:
    assert humanize(0.00123, "s") == "1.23 ms"
    assert humanize(1.5e-6, "s", ref=1e-3) == "0.0015 ms"
    assert humanize(42.0, "GB/s") == "42 GB/s"
    assert humanize(math.nan, "s") == "n/a"


def test_pct_pval_params() -> None:
    assert pct(0.052) == "+5.2%" and pct(0.052, signed=False) == "5.2%"
    assert pct(None) == "n/a" and pct(math.inf) == "+inf" and pct(-math.inf) == "-inf"
    assert pval(0.0123) == "0.012" and pval(1e-9) == "<1e-4" and pval(None) == "n/a"
    assert params_label({"n": 64, "dtype": "f32"}) == "n=64, dtype=f32"
    assert params_label(None) == ""


def test_table_cells_hold_one_line() -> None:
    assert cell("  first | line\nsecond line") == "first \\| line"
    assert cell(None) == "" and cell("") == "" and cell(0) == "0"
    assert len(cell("x" * 500)) == 200
    assert table(["a", "b"], [[1, None]]) == ["| a | b |", "|---|---|", "| 1 |  |", ""]


def _imports(package: str) -> set[tuple[str, str]]:
    """(module file, imported dtf module) for every import in ``package``, in functions too."""
    found = set()
    for path in (ROOT / "dtf_core" / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found |= {(path.name, n) for n in names if n.startswith("dtf_core")}
    return found


def test_analysis_is_below_reporting_and_reporting_below_run_service_cli() -> None:
    up = [(f, n) for f, n in _imports("analysis") if n.startswith("dtf_core.reporting")]
    assert up == []
    above = ("dtf_core.run", "dtf_core.service", "dtf_core.cli", "dtf_core.worker")
    up = [(f, n) for f, n in _imports("reporting") if n.startswith(above)]
    assert up == []
