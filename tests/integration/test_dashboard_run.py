"""`dtf-core run --dashboard`: Dask's dashboard of the embedded cluster answers
HTTP while the run goes on (a task of the run asks it), and the run's output
and its report name the link."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.procs import free_port

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
def test_the_dashboard_answers_during_the_run_and_the_report_names_it(tmp_path: Path) -> None:
    port = free_port()
    probe = (
        "import urllib.request; "
        f"r = urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=20); "
        "assert r.status == 200 and r.read() == b'ok'"
    )
    (tmp_path / "s.toml").write_text(
        f'[suite]\nname = "dash"\n[[task]]\nname = "probe"\nkind = "command"\n'
        f'command = [{sys.executable!r}, "-c", {probe!r}]\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dtf_core.cli", "run", str(tmp_path / "s.toml"), "--workers", "1",
         "--dashboard", f"127.0.0.1:{port}", "--db", str(tmp_path / "d.duckdb"),
         "--markdown", str(tmp_path / "r.md")],
        capture_output=True, text=True, timeout=170, cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    link = f"http://127.0.0.1:{port}/status"
    assert f"Dask dashboard: {link}" in out
    assert f"Dask dashboard: <{link}>" in (tmp_path / "r.md").read_text()
