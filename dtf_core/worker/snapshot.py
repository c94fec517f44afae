"""The state of the worker when an attempt failed: plain data stored with the attempt.

Captured on the worker, only for failed attempts (:func:`capture`), and sent as
plain data inside the result (:mod:`dtf_core.worker.wire`): host, OS, Python,
the versions of the packages the task imported, load, memory, disk free, GPU
state, the environment variables that differ from the worker's own, and the
last lines of the worker's log. Everything is bounded (entries and characters)
so that a failing suite cannot bloat the database, and nothing here may raise:
a snapshot that cannot be taken must not turn a test failure into a dtf error.

"Imported packages" means the modules in ``sys.modules`` of the process that
ran the task, mapped to distributions: for pytest tasks the pytest process
writes its top-level module names when the session ends (``--dtf-imports``);
benchmarks run in the worker process, so its own ``sys.modules``; a command's
imports are unknowable, so only its program is named. Distributions are
indexed once per worker process: a package installed while the worker runs
shows up only after a restart.

Secrets: an environment variable whose name contains TOKEN, SECRET, KEY,
PASSWORD or CREDENTIAL is stored with the value ``***``, and such a value is
replaced by ``***`` wherever else it appears (log lines, the command).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["REDACTED", "capture", "env_changes", "read_imports", "redact"]

REDACTED = "***"
_SECRET_RE = re.compile(r"TOKEN|SECRET|KEY|PASSWORD|PASSWD|CREDENTIAL", re.I)
MAX_PACKAGES = 150
MAX_ENV = 60
MAX_VALUE = 200
LOG_LINES = 12
MAX_LOG_LINE = 300
GPU_TIMEOUT_S = 3.0
GPU_CACHE_S = 5.0  # many tasks failing together query nvidia-smi once

# The worker's own environment: what dtf saw when it was first loaded in this
# process (a worker imports the runner before its first task).
_BASELINE: dict[str, str] = dict(os.environ)


def redact(name: str, value: str) -> str:
    if _SECRET_RE.search(name):
        return REDACTED
    return value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 3] + "..."


def env_changes(
    env: Mapping[str, str], baseline: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """Variables of ``env`` that are new or differ from ``baseline`` (the
    worker's own by default), secrets redacted; a removed variable maps to None.
    At most :data:`MAX_ENV` entries, by name."""
    base = _BASELINE if baseline is None else baseline
    changed: dict[str, str | None] = {k: redact(k, v) for k, v in env.items() if base.get(k) != v}
    changed.update({k: None for k in base if k not in env})
    return {k: changed[k] for k in sorted(changed)[:MAX_ENV]}


# ------------------------------------------------------------------ packages
@functools.cache
def _index() -> tuple[Mapping[str, list[str]], dict[str, str]]:
    """Top-level module -> distributions, and distribution -> version (one scan)."""
    try:
        modules = importlib.metadata.packages_distributions()
        versions: dict[str, str] = {}
        for dist in importlib.metadata.distributions():
            name = dist.metadata["Name"] if dist.metadata else None
            if name:
                versions.setdefault(str(name), str(dist.version))
    except Exception:  # a broken installation: no versions rather than no snapshot
        return {}, {}
    return modules, versions


def packages(module_names: Iterable[str]) -> dict[str, str]:
    """The distributions (and versions) that provide ``module_names``."""
    modules, versions = _index()
    found: dict[str, str] = {}
    for top in {m.partition(".")[0] for m in module_names}:
        for dist in modules.get(top, ()):
            if dist in versions:
                found[dist] = versions[dist]
    return {k: found[k] for k in sorted(found, key=str.lower)[:MAX_PACKAGES]}


def read_imports(path: str | os.PathLike[str]) -> list[str] | None:
    """The module names a pytest process wrote (a JSON list, dtf's plugin
    ``--dtf-imports``); None when the process never got there (it crashed)."""
    try:
        names = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


# ---------------------------------------------------------------- the machine
def _memory() -> dict[str, Any] | None:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return {"total": int(vm.total), "available": int(vm.available), "percent": vm.percent}
    except Exception:
        return None


def _disk(path: str) -> dict[str, Any] | None:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return {"path": path, "free": int(usage.free), "total": int(usage.total)}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


_GPU_FIELDS = ("index", "name", "utilization_pct", "memory_used", "memory_total", "temperature_c")
_gpu_lock = threading.Lock()
_gpu_cache: tuple[float, list[dict[str, Any]] | str | None] = (0.0, None)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def parse_gpu_state(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total,
    temperature.gpu --format=csv,noheader,nounits`` lines; memory in bytes."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < len(_GPU_FIELDS):
            continue
        # A name with commas: the first field and the last four are fixed.
        index, numbers = parts[0], parts[-4:]
        name = ", ".join(parts[1:-4])
        util, used, total, temp = (_number(n) for n in numbers)
        mib = 1024 * 1024
        out.append(
            {
                "index": index, "name": name, "utilization_pct": util,
                "memory_used": int(used * mib) if used is not None else None,
                "memory_total": int(total * mib) if total is not None else None,
                "temperature_c": temp,
            }
        )  # fmt: skip
    return out


def gpu_state() -> list[dict[str, Any]] | str | None:
    """The GPUs as nvidia-smi sees them now; None without nvidia-smi, a string
    saying why when it failed. Cached for :data:`GPU_CACHE_S`."""
    global _gpu_cache
    with _gpu_lock:
        at, cached = _gpu_cache
        if time.monotonic() - at < GPU_CACHE_S and at:
            return cached
        exe = shutil.which("nvidia-smi")
        state: list[dict[str, Any]] | str | None
        if exe is None:
            state = None
        else:
            query = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu"
            try:
                proc = subprocess.run(
                    [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=GPU_TIMEOUT_S,
                )  # fmt: skip
                if proc.returncode == 0:
                    state = parse_gpu_state(proc.stdout)
                else:
                    why = (proc.stderr or proc.stdout).strip().splitlines()
                    state = f"nvidia-smi exited {proc.returncode}: {why[0] if why else ''}"
            except subprocess.TimeoutExpired:
                state = f"nvidia-smi did not answer within {GPU_TIMEOUT_S:g} s"
            except OSError as exc:
                state = f"nvidia-smi could not start: {exc}"
        _gpu_cache = (time.monotonic(), state)
        return state


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value in it replaced by ``***``."""
    for value in secrets:
        text = text.replace(value, REDACTED)
    return text


def secret_values(*envs: Mapping[str, str]) -> list[str]:
    """Values of the secret-named variables of ``envs``, longest first (short ones
    would blank out ordinary words)."""
    found = {v for env in envs for k, v in env.items() if _SECRET_RE.search(k) and len(v) >= 6}
    return sorted(found, key=len, reverse=True)


def worker_log(n: int = LOG_LINES) -> list[str]:
    """The last ``n`` lines of the Dask worker's log, oldest first; [] outside a worker."""
    try:
        from distributed import get_worker

        lines = get_worker().get_logs(n=n)  # newest first: (level, message)
    except Exception:
        return []
    out = []
    for entry in reversed(list(lines)):
        text = str(entry[-1]) if isinstance(entry, tuple | list) else str(entry)
        out.append(text if len(text) <= MAX_LOG_LINE else text[: MAX_LOG_LINE - 3] + "...")
    return out


def _python() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def capture(
    *,
    env: Mapping[str, str] | None = None,
    imports: Iterable[str] | None = None,
    imports_from: str = "",
    disk_path: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """The snapshot of this machine for a failed attempt, as plain data.

    ``env``: the environment the task ran with (default: this process's);
    ``imports``: the module names the task's process had imported (None: not
    known), ``imports_from`` says whose they were; ``disk_path``: where free
    space matters (the task's directory); ``command``: the program a command
    task ran, resolved on PATH."""
    try:
        # A secret's value may show up in a log line too, not only under its name.
        hidden = secret_values(_BASELINE, os.environ, env or {})
        snap: dict[str, Any] = {
            "captured_at": time.time(),
            "host": socket.gethostname(),
            "os": platform.platform(),
            "python": _python(),
            "executable": sys.executable,
            "cpus": os.cpu_count(),
            "load": _load(),
            "memory": _memory(),
            "disk": _disk(disk_path or os.getcwd()),
            "gpu": gpu_state(),
            "env": env_changes(os.environ if env is None else env),
            "log": [scrub(line, hidden) for line in worker_log()],
        }
        if imports is not None:
            snap["packages"] = packages(imports)
            snap["packages_from"] = imports_from
        if command is not None:
            snap["command"] = scrub(command, hidden)
        return snap
    except Exception as exc:  # never let a snapshot break the result
        return {"error": f"the snapshot failed: {type(exc).__name__}: {exc}"}
