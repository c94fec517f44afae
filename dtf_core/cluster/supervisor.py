"""``dtf-core worker``: detect the hardware, start ``dask worker``, and start it
again whenever it exits.

Dask workers never reconnect: when the scheduler goes away every worker exits
(rc 0) and a restarted scheduler gets none back (DESIGN.md). The supervisor
relaunches its one child with exponential backoff (``dtf.worker`` settings);
a worker that ran for ``stable-after`` starts the backoff from the base again.
It stops for good when the scheduler *refused* the worker (bad or expired
token): trying again cannot help, and hammering the scheduler would not either.

Credentials: the supervisor reads the token and result key files and hands
them to each child over a pipe (:mod:`dtf_core.cluster.handover`): the worker's
command line and environment name none of them, and with ``--task-user`` the
child (and so every task) runs as an unprivileged user that cannot read them.

Signals: SIGTERM / SIGINT are passed to the child, by its pid only, and the
loop ends once it has exited.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from dtf_core import config
from dtf_core.backoff import backoff
from dtf_core.cluster import handover, hardware, security
from dtf_core.cluster.scheduler_preload import REFUSED

EXIT_REFUSED = 2


def derive_resources(info: dict[str, Any] | None = None, disk_path: str = ".") -> dict[str, float]:
    """Dask resources of a whole host: CPU, MEM_GB, DISK_GB (free), GPU (count)."""
    info = hardware.describe() if info is None else info
    res: dict[str, float] = {
        "CPU": float(info["logical_cores"]),
        "MEM_GB": float(math.floor(int(info["memory_bytes"]) / 2**30)),
    }
    with contextlib.suppress(OSError):  # no such path: no disk resource, not an error
        res["DISK_GB"] = float(math.floor(shutil.disk_usage(disk_path).free / 2**30))
    gpus = info.get("gpus") or []
    if gpus:
        res["GPU"] = float(len(gpus))
    return res


def worker_argv(
    scheduler: str,
    *,
    name: str,
    nthreads: int,
    resources: dict[str, float],
    nanny: bool = True,
    tls: dict[str, str] | None = None,
    local_directory: str | None = None,
) -> list[str]:
    """The ``dask worker`` command line. It names no credential: they come over
    a pipe (:class:`Supervisor`); under a nanny, the nanny's preload takes them
    and passes them on to each worker process it starts."""
    argv = [
        sys.executable, "-m", "distributed.cli.dask_worker", scheduler,
        "--name", name, "--nthreads", str(nthreads),
        "--resources", " ".join(f"{k}={v:g}" for k, v in sorted(resources.items())),
        "--no-dashboard", "--nanny" if nanny else "--no-nanny",
    ]  # fmt: skip
    for flag, value in (tls or {}).items():
        argv += [flag, value]
    if local_directory:
        argv += ["--local-directory", local_directory]
    if nanny:
        argv += ["--preload-nanny", "dtf_core.worker_preload"]
    return [*argv, "--preload", "dtf_core.worker_preload"]


@dataclass
class Supervisor:
    argv: list[str]
    credentials: bytes | None = None  # handover.encode(token, result key)
    task_user: handover.TaskUser | None = None
    home: str | None = None  # the child's working directory and $HOME (with task_user)
    base: float = field(default_factory=lambda: config.seconds("worker.backoff-base"))
    cap: float = field(default_factory=lambda: config.seconds("worker.backoff-max"))
    stable_after: float = field(default_factory=lambda: config.seconds("worker.stable-after"))
    max_starts: int | None = None  # tests; None = forever
    out: IO[str] = field(default_factory=lambda: sys.stderr)
    sleep: Callable[[float], None] = time.sleep
    starts: int = 0
    _child: subprocess.Popen[str] | None = None
    _stopping: bool = False
    _refused: str = ""

    def stop(self, *_: object) -> None:
        self._stopping = True
        child = self._child
        if child is not None and child.poll() is None:
            os.kill(child.pid, signal.SIGTERM)  # our own child, by pid

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> int:
        failures = 0  # relaunches since the worker last ran long enough to count as up
        rc = 0
        while not self._stopping and (self.max_starts is None or self.starts < self.max_starts):
            self.starts += 1
            began = time.monotonic()
            rc = self._run_once()
            if self._refused:
                self._say(f"{self._refused}; not restarting (fix the token, then start again)")
                return EXIT_REFUSED
            if self._stopping:
                break
            if time.monotonic() - began >= self.stable_after:
                failures = 0
            delay = backoff(failures, self.base, self.cap)
            failures += 1
            self._say(f"dask worker exited (rc {rc}); starting it again in {delay:.1f}s")
            self._wait(delay)
        return 0 if self._stopping else rc

    def _run_once(self) -> int:
        env = {k: v for k, v in os.environ.items() if not security.is_credential_env(k)}
        fds: tuple[int, ...] = ()
        if self.credentials is not None:
            fds = (handover.pipe_holding(self.credentials),)
            env[handover.FD_ENV] = str(fds[0])
        argv, user = self.argv, dict[str, Any]()
        if self.task_user is not None:
            argv, user = self.task_user.wrap(self.argv, str(self.home))
            env.update(HOME=str(self.home), USER=self.task_user.name, LOGNAME=self.task_user.name)
        try:
            self._child = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                bufsize=1, env=env, pass_fds=fds, **user,
            )  # fmt: skip
        finally:
            for fd in fds:  # the child has its copy; ours would leak into the next one
                os.close(fd)
        assert self._child.stderr is not None
        # Forward the worker's log, watching it for the scheduler's refusal.
        pump = threading.Thread(target=self._pump, args=(self._child.stderr,), daemon=True)
        pump.start()
        rc = self._child.wait()
        pump.join(timeout=5)
        return rc

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.out.write(line)
            if REFUSED in line and "Unable to connect" in line:
                self._refused = line.split("Unable to connect to scheduler: ", 1)[-1].strip()
        self.out.flush()

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < end:
            self.sleep(min(0.2, max(0.0, end - time.monotonic())))

    def _say(self, text: str) -> None:
        self.out.write(f"dtf-core worker: {text}\n")
        self.out.flush()
