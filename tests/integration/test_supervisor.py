"""The worker supervisor: real child processes relaunched with backoff, stopped on refusal."""

from __future__ import annotations

import io
import sys

from dtf_core.cluster import supervisor
from dtf_core.cluster.scheduler_preload import REFUSED


def test_supervisor_relaunches_with_backoff_and_stops_on_refusal() -> None:
    waits: list[float] = []
    out = io.StringIO()
    sup = supervisor.Supervisor(
        [sys.executable, "-c", "pass"], base=0.01, cap=0.04, stable_after=60.0,
        max_starts=4, out=out, sleep=waits.append,
    )  # fmt: skip
    assert sup.run() == 0
    assert sup.starts == 4
    assert "starting it again in 0.0s" in out.getvalue()
    line = f"ERROR - Unable to connect to scheduler: {REFUSED}: token expired"
    refused = supervisor.Supervisor(
        [sys.executable, "-c", f"import sys; print({line!r}, file=sys.stderr); sys.exit(1)"],
        base=0.01, max_starts=5, out=io.StringIO(), sleep=lambda s: None,
    )  # fmt: skip
    assert refused.run() == supervisor.EXIT_REFUSED
    assert refused.starts == 1
