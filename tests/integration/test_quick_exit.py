"""`dtf-core` ends without the interpreter's teardown (cli/main.quick_exit), but
still runs the exit handlers, keeps the exit status, and waits for a thread at work."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from dtf_core.cli.main import console

    atexit.register(lambda: print("handler ran", flush=True))
    if "--with-thread" in sys.argv:
        sys.argv.remove("--with-thread")

        def work():
            time.sleep(0.5)
            print("thread finished", flush=True)

        threading.Thread(target=work).start()  # not a daemon: the exit must wait
    console()
    """
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )


def test_exit_handlers_run_and_the_status_is_kept() -> None:
    ok = run("--version")
    assert ok.returncode == 0, ok.stderr
    assert "dtf-core, version" in ok.stdout and "handler ran" in ok.stdout
    bad = run("validate", "no-such-suite.toml")
    assert bad.returncode == 2, bad.stderr
    assert "no-such-suite.toml" in bad.stderr and "handler ran" in bad.stdout


def test_a_thread_still_at_work_is_waited_for() -> None:
    out = run("--with-thread", "--version")
    assert out.returncode == 0, out.stderr
    assert "thread finished" in out.stdout and "handler ran" in out.stdout
