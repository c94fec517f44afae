"""Every ``dtf-core`` command line a generated file runs, built in this one place.

Each builder returns the arguments after the program name (``["worker", ...]``);
a target puts its own executable in front (a venv path, ``dtf-core`` in an
image). ``paths`` maps the keys of :data:`settings.FILE_NAMES` to where the file
is *as the process sees it* (a systemd credential, a mounted Secret), so the same
builder serves every target. When an option of ``dtf-core scheduler``, ``serve``
or ``worker`` changes, this module is what changes; the tests parse every
generated command with the real CLI.
"""

from __future__ import annotations

from collections.abc import Mapping

from dtf_core.deploy.settings import DeploySettings

Paths = Mapping[str, str]


def _tls(paths: Paths) -> list[str]:
    if "tls_ca" not in paths:
        return []
    return ["--tls-ca-file", paths["tls_ca"], "--tls-cert", paths["tls_cert"],
            "--tls-key", paths["tls_key"]]  # fmt: skip


def scheduler(s: DeploySettings, paths: Paths, *, host: str | None = None) -> list[str]:
    """``dtf-core scheduler``: listens on ``host`` (default: the settings') and the
    address's port; admits workers whose token the worker key signed."""
    return [
        "scheduler", "--host", host or s.scheduler_host, "--port", str(s.scheduler_port),
        "--secret-file", paths["worker_key"], *_tls(paths),
    ]  # fmt: skip


def serve(
    s: DeploySettings, paths: Paths, *, scheduler: str | None = None, db: str | None = None,
    workdir: str | None = None, host: str | None = None,
) -> list[str]:  # fmt: skip
    """``dtf-core serve`` against the scheduler at ``scheduler``; every keyword left
    out is the settings' (containers pass their own paths, and 0.0.0.0)."""
    argv = [
        "serve", "--scheduler", scheduler or s.scheduler, "--db", db or s.db,
        "--host", host or s.serve_host, "--port", str(s.serve_port),
        "--secret-file", paths["api_key"], "--workdir", workdir or s.workdir,
    ]  # fmt: skip
    if "result_key" in paths:
        argv += ["--result-key-file", paths["result_key"]]
    return argv + _tls(paths)


def worker(
    s: DeploySettings, paths: Paths, *, gpus: int = 0, scheduler: str | None = None,
    name: str | None = None,
) -> list[str]:  # fmt: skip
    """``dtf-core worker``: detected resources plus the settings' tags, ``GPU=gpus``
    on a GPU worker (the detected GPU count is replaced, so a pod or job that was
    given N devices advertises exactly N)."""
    argv = ["worker", scheduler or s.scheduler, "--token-file", paths["worker_token"]]
    res = s.worker_resources(gpus)
    if res:
        argv += ["--resources", resources(res)]
    if s.nthreads:
        argv += ["--nthreads", str(s.nthreads)]
    if name:
        argv += ["--name", name]
    if "result_key" in paths:
        argv += ["--result-key-file", paths["result_key"]]
    return argv + _tls(paths)


def resources(res: Mapping[str, float]) -> str:
    """``GPU=1,MEM_GB=64``: what ``--resources`` of ``dtf-core worker`` reads."""
    return ",".join(f"{k}={v:g}" for k, v in sorted(res.items()))


def issue_worker_token(key_file: str, subject: str, ttl: str = "30d") -> list[str]:
    """``dtf-core token issue`` for one worker (it prints the token on stdout)."""
    return ["token", "issue", "--role", "worker", "--subject", subject, "--ttl", ttl,
            "--secret-file", key_file]  # fmt: skip


def make_secret(file: str) -> list[str]:
    """``dtf-core token secret FILE`` (never overwrites)."""
    return ["token", "secret", file]


def make_certs(out_dir: str, hosts: list[str]) -> list[str]:
    """``dtf-core tls certs`` for the given host names."""
    return ["tls", "certs", out_dir, *(a for h in hosts for a in ("--host", h))]


def dask_worker_preload(paths: Paths) -> list[str]:
    """The preload options a stock ``dask worker`` needs to join a dtf scheduler
    (they go last: Dask hands options it does not know to the preload)."""
    argv = ["--preload", "dtf_core.worker_preload", "--dtf-token-file", paths["worker_token"]]
    if "result_key" in paths:
        argv += ["--dtf-result-key-file", paths["result_key"]]
    return argv
