"""The embedded cluster starts while `dtf-core run` opens its database (cluster.Starting):
when the database cannot be opened, the error is the store's (exit 3, one line) and no
worker process is left behind. This checks the outcome a user sees; it does not single out
``Starting.close`` (distributed's workers also end once their nanny's process is gone)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from dtf_core.store import Store


def _session(sid: int) -> list[str]:
    out = subprocess.run(["ps", "-e", "-o", "sid=,pid=,args="], capture_output=True, text=True)
    return [ln for ln in out.stdout.splitlines() if ln.split()[0] == str(sid)]


def test_a_locked_database_closes_the_cluster_that_was_starting(tmp_path: Path) -> None:
    suite = tmp_path / "one.toml"
    suite.write_text(
        '[suite]\nname = "one"\n[[task]]\nname = "c"\nkind = "command"\ncommand = ["true"]\n'
    )
    db = tmp_path / "held.duckdb"
    with Store(db):  # this process holds the file: the run cannot open it
        run = subprocess.Popen(
            [sys.executable, "-m", "dtf_core.cli", "run", str(suite), "--db", str(db),
             "--lock-timeout", "0.5", "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            start_new_session=True,
        )  # fmt: skip
        _, err = run.communicate(timeout=180)
    assert run.returncode == 3, err
    assert "Traceback" not in err and "locked" in err, err
    deadline = time.monotonic() + 10  # a nanny's child may take a moment to be reaped
    while _session(run.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session(run.pid) == []
