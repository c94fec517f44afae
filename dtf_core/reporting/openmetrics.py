"""A run as OpenMetrics text: GitLab's ``artifacts:reports:metrics`` file.

GitLab shows, in a merge request, each metric whose value differs from the
target branch's latest report (it compares the values as strings). So the
lines are stable: the same name and labels for the same thing in every run,
sorted, and values rounded to 4 significant digits, so that noise in the
fifth digit does not list every benchmark as changed.

::

    dtf_tests{outcome="failed"} 1
    dtf_benchmark_median{benchmark="matmul",hardware="cpu",params="n=64",unit="s"} 0.01234
    # EOF
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from dtf_core.reporting.ci import run_regressions
from dtf_core.reporting.counts import COUNT_KEYS
from dtf_core.reporting.format import params_label


def _label_value(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _line(name: str, value: float, **labels: Any) -> str:
    inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items()))
    number = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{name}{{{inner}}} {number}" if inner else f"{name} {number}"


def render_openmetrics(summary: Mapping[str, Any]) -> str:
    counts = summary.get("counts") or {}
    lines = [_line("dtf_tests", int(counts.get(k) or 0), outcome=k) for k in COUNT_KEYS]
    lines.append(_line("dtf_run_passed", int(summary.get("status") == "passed")))
    if summary.get("duration_s") is not None:
        lines.append(_line("dtf_run_duration_seconds", float(summary["duration_s"])))
    for b in summary.get("benchmarks") or []:
        median = b.get("median")
        if median is None or not math.isfinite(float(median)):
            continue
        lines.append(
            _line(
                "dtf_benchmark_median",
                float(median),
                benchmark=b.get("benchmark"),
                params=params_label(b.get("params")),
                hardware=b.get("hardware") or "",
                unit=b.get("unit") or "s",
            )
        )
    lines.append(_line("dtf_benchmark_regressions", len(run_regressions(summary))))
    return "\n".join(sorted(lines)) + "\n# EOF\n"
