"""What machine this is, and which Dask resources its workers should advertise.

* :func:`describe` gathers the facts once per process (cheap to call again);
  the operating system, architecture and CPU model come from
  :mod:`dtf_core.cluster.platforms` (Linux, macOS, Windows).
* :func:`label` turns them into the short, stable string that groups benchmark
  results, e.g. ``"x86_64 · AMD EPYC 7B13 · 2 cores · 1x NVIDIA H100 80GB HBM3"``.
* :func:`detect_resources` / :func:`worker_env` split the machine among embedded
  workers; :func:`parse_resources` reads ``--resources "GPU=1,MEM_GB=8"``.

Cores and memory honour what this process may really use (CPU affinity, the
cgroup v2 CPU quota and memory limit), because in a container the host's totals
would over-advertise the worker. GPUs come from NVML (``pynvml``, package
nvidia-ml-py) when importable, else from ``nvidia-smi`` on PATH; both query
functions are module attributes so tests can replace them.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import re
import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from dtf_core.cluster import platforms
from dtf_core.errors import OptionError

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@functools.cache
def describe() -> dict[str, Any]:
    """Facts about this machine, computed once per process (``describe.cache_clear()``)."""
    vm_total = psutil.virtual_memory().total
    limit = _cgroup_memory_limit()
    system = platforms.facts()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.system().lower(),
        "machine": platform.machine(),
        "os": system["os"],  # linux, macos, windows
        "os_version": system["os_version"],  # "Debian GNU/Linux 12 (bookworm)", "macOS 14.5"
        "arch": system["arch"],  # x86_64, arm64 ... whatever the system calls them
        "cpu_model": system["cpu_model"],
        "logical_cores": _usable_cores(),
        "physical_cores": psutil.cpu_count(logical=False) or psutil.cpu_count() or 1,
        "memory_bytes": min(vm_total, limit) if limit else vm_total,
        "python": platform.python_version(),
        "gpus": detect_gpus(),
    }


def label(info: dict[str, Any] | None = None) -> str:
    """Short hardware label: machine · CPU model · cores [· Nx GPU name ...]."""
    info = describe() if info is None else info
    parts = [
        str(info.get("machine") or "unknown"),
        str(info.get("cpu_model") or "unknown CPU"),
        f"{info.get('logical_cores', 0)} cores",
    ]
    gpus = Counter(str(g.get("name", "GPU")) for g in info.get("gpus") or [])
    parts += [f"{n}x {name}" for name, n in sorted(gpus.items())]
    return " · ".join(parts)


def detect_gpus() -> list[dict[str, Any]]:
    """GPUs as ``[{"name", "memory_bytes"}]``: NVML first, nvidia-smi second, else []."""
    gpus = nvml_gpus()
    if gpus is None:
        gpus = nvidia_smi_gpus()
    return gpus or []


def nvml_devices(read: Callable[[Any, Any], dict[str, Any]]) -> list[dict[str, Any]] | None:
    """``read(pynvml, handle)`` for each GPU via NVML; None when pynvml is missing,
    NVML cannot start (no driver) or a read fails. Hardware detection and the
    workers' health samples both walk the devices this way."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        return [
            read(pynvml, pynvml.nvmlDeviceGetHandleByIndex(i))
            for i in range(pynvml.nvmlDeviceGetCount())
        ]
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def nvml_gpus() -> list[dict[str, Any]] | None:
    """GPUs via NVML; None when pynvml is missing or NVML cannot start (no driver)."""

    def read(pynvml: Any, h: Any) -> dict[str, Any]:
        name = pynvml.nvmlDeviceGetName(h)
        if isinstance(name, bytes):  # older bindings return bytes
            name = name.decode()
        return {"name": name, "memory_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(h).total)}

    return nvml_devices(read)


def nvidia_smi_gpus(timeout: float = 5.0) -> list[dict[str, Any]] | None:
    """GPUs via ``nvidia-smi`` on PATH; None when it is absent, fails or hangs."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return parse_nvidia_smi(proc.stdout)


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """Parse ``name, memory.total`` CSV lines (memory in MiB, as nounits prints it)."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, mem = line.rpartition(",")  # GPU names may not contain commas, but be safe
        try:
            memory = int(float(mem.strip()) * 1024 * 1024)
        except ValueError:
            name, memory = line, 0
        gpus.append({"name": name.strip(), "memory_bytes": memory})
    return gpus


def detect_resources(n_workers: int, info: dict[str, Any] | None = None) -> list[dict[str, float]]:
    """Dask resources for each of ``n_workers`` embedded workers on this machine.

    CPU and MEM_GB are split evenly (CPU at least 1). GPU=1 goes to the first
    ``min(n_gpus, n_workers)`` workers, one device each (see :func:`worker_env`);
    GPUs beyond ``n_workers`` stay unused, since a task asking for GPU=1 must get
    one device of its own: start more workers to use them.
    """
    if n_workers < 1:
        raise OptionError(f"need at least one worker, got {n_workers}")
    info = describe() if info is None else info
    cpu = max(1, int(info["logical_cores"]) // n_workers)
    mem_gb = math.floor(int(info["memory_bytes"]) / 2**30 / n_workers)
    n_gpus = len(info.get("gpus") or [])
    out: list[dict[str, float]] = []
    for i in range(n_workers):
        res: dict[str, float] = {"CPU": float(cpu), "MEM_GB": float(mem_gb)}
        if i < n_gpus:
            res["GPU"] = 1.0
        out.append(res)
    return out


def worker_env(index: int, n_workers: int, info: dict[str, Any] | None = None) -> dict[str, str]:
    """Environment for embedded worker ``index``: pins GPU worker i to device i and
    hides GPUs from the others (they did not advertise GPU, so must not use one).
    Empty on a machine without GPUs, leaving the user's environment alone."""
    info = describe() if info is None else info
    n_gpus = len(info.get("gpus") or [])
    if n_gpus == 0:
        return {}
    return {"CUDA_VISIBLE_DEVICES": str(index) if index < min(n_gpus, n_workers) else ""}


def parse_resources(text: str) -> dict[str, float]:
    """``"GPU=1,MEM_GB=8"`` or ``"GPU=1 MEM_GB=8"`` -> ``{"GPU": 1.0, "MEM_GB": 8.0}``."""
    out: dict[str, float] = {}
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise OptionError(f"resource '{item}' is not NAME=NUMBER")
        if not _NAME_RE.match(name):
            raise OptionError(f"resource name '{name}' is not a valid name (letters, digits, _)")
        try:
            amount = float(value)
        except ValueError:
            raise OptionError(f"resource {name}: '{value}' is not a number") from None
        if not math.isfinite(amount) or amount <= 0:
            raise OptionError(f"resource {name}: {value} must be a positive number")
        if name in out:
            raise OptionError(f"resource {name} is given twice")
        out[name] = amount
    return out


def _usable_cores() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = psutil.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def _cgroup_memory_limit() -> int | None:
    try:
        raw = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return int(raw) if raw.isdigit() else None
