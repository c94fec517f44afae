"""A deployment's settings: from a deployment TOML (``[deploy]``) and command-line
overrides, checked once, then handed to every target's generator.

File paths are those *on the hosts* the generated files will run on; a path left
unset takes the target's default directory (``/etc/dtf`` on Linux,
``/usr/local/etc/dtf`` on macOS, ``C:\\ProgramData\\dtf`` on Windows). Containers
and pods ignore them: there the files live where the generated manifests mount
them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dask.utils import parse_bytes

from dtf_core.cluster.hardware import parse_resources
from dtf_core.errors import BadInputError, OptionError, SpecError

# The key files of docs/cluster.md "Secrets and tokens", by the name each target gives them.
FILE_NAMES = {
    "worker_key": "worker.key",  # admits workers: the scheduler's --secret-file
    "api_key": "api.key",  # signs API tokens: serve's --secret-file
    "result_key": "result.key",  # signs results: serve and every worker
    "worker_token": "worker.jwt",  # a worker's token (dtf-core token issue --role worker)
    "tls_ca": "ca.pem",
    "tls_cert": "cert.pem",
    "tls_key": "key.pem",
}
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # a DNS label: units, pods, jobs


@dataclass(frozen=True)
class SlurmSettings:
    cores: int = 4  # per worker job: the worker's threads
    memory: str = "16GB"
    walltime: str = "08:00:00"
    queue: str = ""  # partition; empty: the site's default
    account: str = ""

    @property
    def memory_bytes(self) -> int:
        return int(parse_bytes(self.memory))

    @property
    def walltime_minutes(self) -> int | None:
        """SLURM's time formats (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``)
        in whole minutes, rounded up; None when it is none of them."""
        m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", self.walltime.strip())
        if not m:
            return None
        days, a, b, c = (int(x) if x else None for x in m.groups())
        if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
            h, mi, sec = a or 0, b or 0, c or 0
        elif c is not None:  # HH:MM:SS
            h, mi, sec = a or 0, b or 0, c
        else:  # MM or MM:SS
            h, mi, sec = 0, a or 0, b or 0
        return (days or 0) * 1440 + h * 60 + mi + (1 if sec else 0)


@dataclass(frozen=True)
class DeploySettings:
    # Where workers and serve reach the scheduler (its port is where it listens).
    scheduler: str = "tcp://127.0.0.1:8786"
    scheduler_host: str = "0.0.0.0"  # the interface the scheduler listens on
    serve_host: str = "0.0.0.0"
    serve_port: int = 8780
    db: str = "/var/lib/dtf/dtf.duckdb"
    workdir: str = "/var/lib/dtf/uploads"  # serve's --workdir; workers unpack suites there too
    resources: dict[str, float] = field(default_factory=dict)  # every worker's extra tags
    nthreads: int | None = None
    workers: int = 1  # CPU workers (compose, kubernetes, slurm)
    gpu_workers: int = 0  # GPU workers (compose, kubernetes, slurm)
    gpus_per_worker: int = 1  # each GPU worker gets this many devices and GPU=N
    dtf_core: str = ""  # the dtf-core executable on the host; empty: the target's default
    user: str = "dtf"  # the dedicated account services run as
    name: str = "dtf"  # prefix of units, tasks, services, pods and jobs
    image: str = "dtf:latest"  # docker, compose, kubernetes
    namespace: str = "dtf"  # kubernetes
    files: dict[str, str] = field(default_factory=dict)  # FILE_NAMES key -> path on the host
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    @property
    def scheduler_port(self) -> int:
        return urlsplit(self.scheduler).port or 8786

    @property
    def tls(self) -> bool:
        return "tls_ca" in self.files

    def file(self, key: str, default_dir: str, sep: str = "/") -> str:
        """The host path of one key file: as given, else ``default_dir`` + its usual name."""
        return self.files.get(key) or f"{default_dir}{sep}{FILE_NAMES[key]}"

    def paths(self, default_dir: str, sep: str = "/") -> dict[str, str]:
        """Every key file this deployment uses (TLS ones only with TLS), by host path."""
        keys = [k for k in FILE_NAMES if not k.startswith("tls_") or self.tls]
        return {k: self.file(k, default_dir, sep) for k in keys}

    def worker_resources(self, gpus: int = 0) -> dict[str, float]:
        """A worker's ``--resources``: the settings' tags, and ``GPU=gpus`` on GPU workers."""
        return {**self.resources, "GPU": float(gpus)} if gpus else dict(self.resources)


_SCALARS = {
    "scheduler": str, "scheduler_host": str, "serve_host": str, "serve_port": int, "db": str,
    "workdir": str, "nthreads": int, "workers": int, "gpu_workers": int, "gpus_per_worker": int,
    "dtf_core": str, "user": str, "name": str, "image": str, "namespace": str,
}  # fmt: skip
_SLURM = {"cores": int, "memory": str, "walltime": str, "queue": str, "account": str}


def load(path: str | None, overrides: dict[str, Any]) -> DeploySettings:
    """Settings from ``path`` (a TOML file with a ``[deploy]`` table; None: defaults)
    with ``overrides`` (options given on the command line, None = not given) on top.
    Raises :class:`SpecError` naming the file and the key, or :class:`OptionError`."""
    where = path or "command line"
    table: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except OSError as exc:
            raise SpecError(path, f"cannot be read ({exc.strerror}); check the path") from None
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(path, f"is not valid TOML: {exc}") from None
        found = doc.get("deploy")
        if not isinstance(found, dict):
            raise SpecError(path, "has no [deploy] table; put the settings under [deploy]")
        table = found
    given = {k: v for k, v in overrides.items() if v is not None}
    merged = {**table, **given}
    if "files" in given and isinstance(table.get("files"), dict):
        merged["files"] = {**table["files"], **given["files"]}
    files_given = given.get("files") or {}

    def source(key: str) -> str:
        # An error names where the bad value came from: the file or the command line.
        top, _, sub = key.partition(".")
        from_options = sub in files_given if top == "files" and sub else top in given
        return "command line" if from_options else where

    return _build(source, merged)


def _build(source: Any, raw: dict[str, Any]) -> DeploySettings:
    def fail(key: str, message: str) -> BadInputError:
        return SpecError(source(key), message, key=key)

    known = {*_SCALARS, "resources", "files", "slurm"}
    for key in raw:
        if key not in known:
            raise fail(key, f"unknown key; the keys are {', '.join(sorted(known))}")
    values: dict[str, Any] = {k: _typed(fail, k, raw[k], _SCALARS[k]) for k in _SCALARS if k in raw}
    if "resources" in raw:
        text = raw["resources"]
        if isinstance(text, dict):
            text = ",".join(f"{k}={v}" for k, v in text.items())
        try:
            values["resources"] = parse_resources(str(text))
        except OptionError as exc:
            raise fail("resources", f'{exc}; write e.g. "CUDA=1,MEM_GB=64"') from None
        if "GPU" in values["resources"]:
            raise fail("resources", "GPU is set by gpu_workers and gpus_per_worker; remove it")
    values["files"] = _files(fail, raw.get("files", {}))
    values["slurm"] = _slurm(fail, raw.get("slurm", {}))
    settings = DeploySettings(**values)
    _check(fail, settings)
    return settings


def _typed(fail: Any, key: str, value: Any, kind: type) -> Any:
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise fail(key, f"must be a whole number, not {value!r}")
    if kind is str and not isinstance(value, str):
        raise fail(key, f'must be a string, not {value!r}; quote it: {key} = "..."')
    return value


def _files(fail: Any, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise fail("files", 'must be a table: [deploy.files] worker_token = "/etc/dtf/worker.jwt"')
    for key, value in raw.items():
        if key not in FILE_NAMES:
            raise fail(f"files.{key}", f"unknown file; the files are {', '.join(FILE_NAMES)}")
        _typed(fail, f"files.{key}", value, str)
    files = {k: v for k, v in raw.items() if v}
    tls = [k for k in ("tls_ca", "tls_cert", "tls_key") if k in files]
    if tls and len(tls) != 3:
        raise fail("files.tls_ca", "mutual TLS needs all of tls_ca, tls_cert and tls_key")
    return files


def _slurm(fail: Any, raw: Any) -> SlurmSettings:
    if not isinstance(raw, dict):
        raise fail("slurm", "must be a table: [deploy.slurm] cores = 8")
    for key, value in raw.items():
        if key not in _SLURM:
            raise fail(f"slurm.{key}", f"unknown key; the keys are {', '.join(_SLURM)}")
        _typed(fail, f"slurm.{key}", value, _SLURM[key])
    slurm = SlurmSettings(**raw)
    if slurm.cores < 1:
        raise fail("slurm.cores", f"must be at least 1, got {slurm.cores}")
    try:
        slurm.memory_bytes  # noqa: B018 - raises on a size it cannot read
    except ValueError:
        raise fail("slurm.memory", f"'{slurm.memory}' is not a size like \"16GB\"") from None
    if slurm.walltime_minutes is None:
        raise fail("slurm.walltime", f"'{slurm.walltime}' is not a SLURM time like \"08:00:00\"")
    return slurm


def _check(fail: Any, s: DeploySettings) -> None:
    parts = urlsplit(s.scheduler)
    if parts.scheme not in ("tcp", "tls") or not parts.hostname:
        raise fail("scheduler", f"'{s.scheduler}' is not an address like tcp://10.0.0.5:8786")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise fail("scheduler", f"'{s.scheduler}' has a bad port") from None
    if (parts.scheme == "tls") != s.tls:
        fix = "give tls files" if parts.scheme == "tls" else "use tls://HOST:PORT"
        raise fail("scheduler", f"TLS files and a tls:// address go together; {fix}")
    for key in ("workers", "gpu_workers"):
        if getattr(s, key) < 0:
            raise fail(key, f"must be 0 or more, got {getattr(s, key)}")
    if s.workers + s.gpu_workers < 1:
        raise fail("workers", "no worker at all; set workers or gpu_workers to 1 or more")
    for key in ("gpus_per_worker", "serve_port", "nthreads"):
        value = getattr(s, key)
        if value is not None and value < 1:
            raise fail(key, f"must be at least 1, got {value}")
    for key in ("name", "namespace"):
        if not _NAME_RE.match(getattr(s, key)):
            raise fail(key, "must be lower-case letters, digits and '-' (a DNS label)")
    if not re.match(r"^[a-z_][a-z0-9_-]*$", s.user):
        raise fail("user", f"'{s.user}' is not a user name (lower-case letters, digits, _ -)")
