"""What a CI system reads from a run: GitHub annotations (``::error`` per
failed test, ``::warning`` per regressed benchmark) and step outputs, and the
regression gate's verdict with the commit range to blame.

Pure functions of the run summary / analysis records (the CLI prints them);
:func:`emit_github` is the one place that touches the environment.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from dtf_core.errors import exit_code

# "path/to/file.py:12: AssertionError" (--tb=long/short) or
# "path/to/file.py:12: in test_x" (--tb=short): a frame's location line.
_FRAME = re.compile(r"^(?P<path>[^\s:][^:\n]*\.py):(?P<line>\d+):", re.MULTILINE)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _failures(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    # ``dtf-core test`` replaces ``failures`` with node ids and keeps the dicts here.
    entries = summary.get("failure_details") or summary.get("failures") or []
    return [f for f in entries if isinstance(f, dict)]


def _test_line(path: str, name: str, root: str | None) -> int | None:
    """Line of ``def name`` in ``root/path`` when the file is there."""
    if root is None:
        return None
    try:
        text = (Path(root) / path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    func = re.escape(name.split("[", 1)[0])
    m = re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{func}[ \t]*\(", text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else None


def failure_location(failure: Mapping[str, Any], root: str | None = None) -> tuple[str, int]:
    """``(file, line)`` of a failed test: the innermost frame of its traceback
    in the test's own file (the failing assertion), else the innermost frame at
    all, else the test's ``def`` line (read from ``root`` when given), else 1."""
    nodeid = str(failure.get("nodeid") or "")
    test_file = nodeid.split("::", 1)[0]
    frames = [
        (m["path"], int(m["line"])) for m in _FRAME.finditer(str(failure.get("details") or ""))
    ]
    own = [f for f in frames if test_file and Path(f[0]).as_posix().endswith(test_file)]
    if own:
        return own[-1]
    if frames:
        return frames[-1]
    name = nodeid.rsplit("::", 1)[-1]
    return test_file or str(failure.get("task_id") or ""), _test_line(test_file, name, root) or 1


def github_annotations(summary: Mapping[str, Any], root: str | None = None) -> list[str]:
    """One ``::error`` workflow command per failed test (or failed task)."""
    out = []
    for f in _failures(summary):
        path, line = failure_location(f, root)
        title = f.get("nodeid") or f.get("task_id") or "dtf"
        message = f.get("message") or f.get("outcome") or f.get("category") or "failed"
        out.append(
            f"::error file={_escape_prop(path)},line={line},title={_escape_prop(str(title))}"
            f"::{_escape_data(str(message))}"
        )
    return out


def run_regressions(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The benchmarks of this run that regressed against its baseline run
    (``analysis.comparison``, as ``dtf-core compare`` judges them), worst first:
    ``benchmark``, ``params``, ``hardware``, ``unit``, ``before``, ``after``,
    ``change``, ``q_value``, ``baseline`` (the run compared with)."""
    analysis = summary.get("analysis") or {}
    rows = (analysis.get("comparison") or {}).get("rows") or []
    out = [
        {
            **{k: r.get(k) for k in ("benchmark", "params", "hardware", "unit", "change")},
            "before": r.get("baseline"),
            "after": r.get("run"),
            "q_value": r.get("q_value"),
            "baseline": analysis.get("baseline"),
        }
        for r in rows
        if r.get("verdict") == "regressed"
    ]
    return sorted(out, key=lambda r: -abs(r["change"] or 0.0))


def regression_text(r: Mapping[str, Any]) -> str:
    """``matmul[n=64] on cpu +7.1 % (1.02 -> 1.093 s) against run r-41``."""
    change, before, after = r.get("change"), r.get("before"), r.get("after")
    moved = f"{100 * change:+.1f} %" if change is not None and math.isfinite(change) else "?"
    unit = f" {r['unit']}" if r.get("unit") else ""
    levels = f" ({before:.4g} -> {after:.4g}{unit})" if None not in (before, after) else ""
    return f"{series_label(r)} {moved}{levels} against run {r.get('baseline')}"


def github_warnings(summary: Mapping[str, Any]) -> list[str]:
    """One ``::warning`` workflow command per benchmark that regressed against the baseline."""
    return [
        f"::warning title={_escape_prop('regression: ' + str(r['benchmark']))}"
        f"::{_escape_data(regression_text(r))}"
        for r in run_regressions(summary)
    ]


def github_outputs(summary: Mapping[str, Any]) -> dict[str, str]:
    """Step outputs (``steps.<id>.outputs.run-id`` / ``.status`` / ``.exit-code`` /
    ``.regressions``): what a later step decides on without parsing reports."""
    status = str(summary.get("status", ""))
    return {
        "run-id": str(summary.get("run_id", "")),
        "status": status,
        "exit-code": str(exit_code(status)),
        "regressions": str(len(run_regressions(summary))),
    }


def emit_github(
    summary: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    root: str | None = ".",
) -> bool:
    """On GitHub Actions: print the annotations to ``out`` and append the
    outputs to ``$GITHUB_OUTPUT``. Elsewhere nothing. True when it did."""
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS") != "true":
        return False
    stream = out or sys.stdout
    for line in github_annotations(summary, root) + github_warnings(summary):
        print(line, file=stream)
    target = env.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            for key, value in github_outputs(summary).items():
                fh.write(f"{key}={value}\n")
    return True


# -- the regression gate ------------------------------------------------------


def _series_key(record: Mapping[str, Any]) -> str:
    return json.dumps(
        [record.get("benchmark"), record.get("params"), record.get("hardware")], sort_keys=True
    )


def open_regressions(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Regressions from ``changepoints.find_changes`` still in force: the newest
    shift of their series. A slowdown that a later shift undid does not fail
    every build after it."""
    newest: dict[str, dict[str, Any]] = {}
    for c in sorted(changes, key=lambda c: -float(c["started_at"])):
        newest.setdefault(_series_key(c), c)
    return [c for c in newest.values() if c["kind"] == "regression"]


def culprit_range(change: Mapping[str, Any]) -> str:
    """``git log`` range of the commits that may have caused a shift: after the
    last run at the old level, up to the first run at the new one."""
    before, after = change.get("previous_commit"), change.get("commit")
    if before and after and before != after:
        return f"{before[:12]}..{after[:12]}"
    if after:
        return f"{after[:12]} (runs {change.get('previous_run_id')}..{change.get('run_id')})"
    return f"runs {change.get('previous_run_id')}..{change.get('run_id')} (no commit recorded)"


def series_label(record: Mapping[str, Any]) -> str:
    params = record.get("params") or {}
    args = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    hw = record.get("hardware")
    return (
        f"{record.get('benchmark')}" + (f"[{args}]" if args else "") + (f" on {hw}" if hw else "")
    )


def regression_gate(changes: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """``(exit code, lines)`` for ``regressions --fail-on-regression``: 1 and
    one line per open regression (benchmark, change, culprit range), else 0."""
    lines = [
        f"regression: {series_label(c)} {100 * c['change']:+.1f} % "
        f"({c['before']:.4g} -> {c['after']:.4g} {c.get('unit') or ''}, p={c['p_value']:.1g}) "
        f"in {culprit_range(c)}"
        for c in open_regressions(changes)
    ]
    return (1 if lines else 0), lines


def trend_gate(rows: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """``(exit code, lines)`` for ``trends --fail-on-regression``: 1 when a
    series is ``worsening``; names its last shift's commit when there is one."""
    lines = []
    for r in rows:
        if r.get("verdict") != "worsening":
            continue
        moved = r.get("change_over_window") or 0.0
        last = r.get("last_change") or {}
        where = f", last shift at commit {last['commit'][:12]}" if last.get("commit") else ""
        lines.append(f"worsening: {series_label(r)} {100 * moved:+.1f} % over the window{where}")
    return (1 if lines else 0), lines


def comparison_gate(
    rows: list[dict[str, Any]], baseline: Mapping[str, Any], run: str, commit: str | None
) -> tuple[int, list[str]]:
    """``(exit code, lines)`` for ``compare --fail-on-regression``: 1 and one
    line per regressed benchmark, with the commits between the baseline and the
    run to blame, else 0."""
    where = culprit_range(
        {"previous_commit": baseline.get("commit"), "commit": commit,
         "previous_run_id": baseline.get("run_id"), "run_id": run}
    )  # fmt: skip
    lines = [
        f"regression: {series_label(c)} {100 * c['change']:+.1f} % "
        f"({c['baseline']:.4g} -> {c['run']:.4g} {c.get('unit') or ''}, q={c['q_value']:.1g}) "
        f"vs baseline run {baseline.get('run_id')} in {where}"
        for c in rows
        if c.get("verdict") == "regressed"
    ]
    return (1 if lines else 0), lines
