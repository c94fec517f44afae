"""A dtf deployment on a :class:`~support.testbed.TestBed`, started with the
real commands of docs/cluster.md: ``dtf-core scheduler`` and ``dtf-core serve``
on one host, ``dtf-core worker`` (the supervisor that relaunches ``dask
worker``) on others. Each part binds to its host's address."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtf_core.service.client import CoordinatorClient
from support.keys import make_keys
from support.procs import wait_for
from support.testbed import TestBed, call_in

PY = sys.executable
DTF = [PY, "-m", "dtf_core.cli"]
SCHED_PORT, API_PORT = 8786, 8780
# Short timeouts so that a cut host is noticed within a test's time: the
# scheduler drops a silent worker after 10 s instead of 30 s.
FAST_ENV = {"DASK_DTF__SCHEDULER__WORKER_TTL": "10s"}


@dataclass
class BedCluster:
    bed: TestBed
    head: str  # the host of scheduler and serve
    dir: Path
    tokens: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=lambda: dict(FAST_ENV))

    @property
    def scheduler(self) -> str:
        return f"tcp://{self.bed.ip(self.head)}:{SCHED_PORT}"

    @property
    def url(self) -> str:
        return f"http://{self.bed.ip(self.head)}:{API_PORT}"

    @property
    def uploads(self) -> Path:
        return self.dir / "uploads"

    @property
    def db(self) -> Path:
        return self.dir / "dtf.duckdb"

    def secrets(self) -> None:
        # One key per job (docs/security.md): serve's API key, the scheduler's worker key.
        self.keys = make_keys(self.dir)
        self.files.update(
            {
                "secret": self.keys.api,
                "worker.key": self.keys.worker,
                "result.key": self.keys.result,
            }
        )
        for role in ("viewer", "submitter"):
            self.tokens[role] = self.keys.token(role, role, ttl_s=7200)

    def worker_token(self, host: str) -> Path:
        return self.keys.worker_token_file(self.dir / f"{host}.jwt", host)

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        return self.bed.start(
            self.head,
            [*DTF, "scheduler", "--host", self.bed.ip(self.head), "--port", str(SCHED_PORT),
             "--dashboard-address", "none", "--secret-file", str(self.files["worker.key"])],
            "scheduler.log", env=self.env,
        )  # fmt: skip

    def url_of(self, host: str, port: int = API_PORT) -> str:
        return f"http://{self.bed.ip(host)}:{port}"

    def start_serve(
        self, host: str | None = None, *extra: str, port: int = API_PORT, log: str = "serve.log"
    ) -> subprocess.Popen[bytes]:
        """``dtf-core serve`` on ``host`` (default: the head) over the one database
        (the hosts share a filesystem); ``extra``: ``--standby``, say."""
        host = host or self.head
        return self.bed.start(
            host,
            [*DTF, "serve", "--scheduler", self.scheduler, "--db", str(self.db),
             "--host", self.bed.ip(host), "--port", str(port),
             "--secret-file", str(self.files["secret"]),
             "--result-key-file", str(self.files["result.key"]),
             "--workdir", str(self.uploads), *extra],
            log, env=self.env,
        )  # fmt: skip

    def start_worker(
        self, host: str, *resources: str, nthreads: int = 2, private: tuple[Path, ...] = ()
    ) -> None:
        """``dtf-core worker`` on ``host``, with its own file cache. ``private``
        directories are hidden behind an empty tmpfs on that host: it then lacks
        what the head host has there (as a real other machine would)."""
        res = [a for r in resources for a in ("--resources", r)]
        argv = [*DTF, "worker", self.scheduler, "--name", host,
                "--token-file", str(self.worker_token(host)),
                "--result-key-file", str(self.files["result.key"]),
                "--nthreads", str(nthreads), "--no-nanny", *res]  # fmt: skip
        for path in private:
            path.mkdir(parents=True, exist_ok=True)
            argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                    'mount -t tmpfs tmpfs "$0" && exec "$@"', str(path), *argv]  # fmt: skip
        cache = {"DASK_DTF__WORKER__FILE_CACHE": str(self.dir / f"cache-{host}")}
        self.bed.start(host, argv, f"worker-{host}.log", env={**self.env, **cache})

    def api(self, method: str, *args: Any, url: str | None = None) -> Any:
        """A :class:`CoordinatorClient` call made from inside the head host (to
        serve on the head, or at ``url``)."""

        def call() -> Any:
            client = CoordinatorClient(
                url or self.url, self.tokens["viewer"], timeout=10, insecure=True,
                failover_wait=0,
            )  # fmt: skip
            return getattr(client, method)(*args)

        return call_in(self.bed, self.head, call)

    def worker_names(self) -> set[str]:
        return {str(w["name"]) for w in self.api("workers")}

    def wait_workers(self, names: set[str], timeout: float = 90) -> None:
        wait_for(lambda: names <= self.worker_names(), timeout, f"workers {sorted(names)}")

    def submit(self, suite: Path, *extra: str, timeout: float = 300,
               host: str | None = None, urls: str | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        """``dtf-core submit`` on ``host`` (default: the head), in the background;
        to serve on the head, or to ``urls`` (comma-separated)."""
        return self.bed.start(
            host or self.head,
            [*DTF, "submit", str(suite), "--coordinator", urls or self.url, "--insecure", *extra],
            "submit.log", env={**self.env, "DTF_TOKEN": self.tokens["submitter"]},
        )  # fmt: skip


def up(
    bed: TestBed,
    head: str,
    workers: dict[str, list[str]],
    directory: Path,
    *,
    private_uploads: bool = False,
) -> BedCluster:
    """Scheduler and serve on ``head``; a worker on each host of ``workers``
    (host -> ``--resources`` values); returns once serve sees them all. With
    ``private_uploads`` the workers do not see serve's upload directory."""
    for h in bed.hosts:  # a fresh cluster: nothing left from an earlier test
        bed.kill_host(h)
    c = BedCluster(bed, head, directory)
    directory.mkdir(parents=True, exist_ok=True)
    c.secrets()
    c.start_scheduler()
    c.start_serve()
    for host, res in workers.items():
        c.start_worker(host, *res, private=(c.uploads,) if private_uploads else ())
    wait_for(lambda: c.api("health"), 90, "serve to answer")
    c.wait_workers(set(workers))
    return c


def attempts(db: Path) -> list[dict[str, Any]]:
    """Every attempt of every run (read-only; serve must have stopped)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute("SELECT * FROM attempts")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def env_python() -> dict[str, str]:
    return {"PATH": os.path.dirname(PY) + os.pathsep + os.environ.get("PATH", "")}
