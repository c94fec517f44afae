"""`dtf-tui run` as a person starts it: a real terminal (a pty), real worker
processes spawned while Textual owns stdio, then `q`."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from dtf_core.store import StoreReader

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_dtf_tui_run_in_a_real_terminal(tmp_path: Path) -> None:
    db = tmp_path / "tui.duckdb"
    argv = [sys.executable, "-m", "dtf_tui.app", "run",
            str(ROOT / "configs/examples/quickstart.toml"), "--db", str(db)]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes dtf-tui on the pty
        os.environ.update(TERM="xterm-256color", COLUMNS="120", LINES="32")
        os.execv(sys.executable, argv)
    out = b""
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and b"9/9" not in out:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        assert b"9/9" in out, out[-3000:].decode(errors="replace")
        os.write(fd, b"q")
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            with contextlib.suppress(OSError):
                if select.select([fd], [], [], 0.2)[0]:
                    out += os.read(fd, 65536)
        assert status is not None and os.waitstatus_to_exitcode(status) == 0, out[-2000:]
    finally:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        os.close(fd)
    assert b"Nanny failed" not in out
    with StoreReader(db) as store:
        run_id = store.latest_run_id()
        assert run_id and store.get_run(run_id)["status"] == "passed"
