"""What a worker says about its machine and its tasks, cheaply.

* :class:`HealthSampler` (a ``WorkerPlugin``) adds a ``dtf-health`` entry to
  the worker's ``metrics``: Dask sends those with every heartbeat (0.5 s on a
  small cluster), so the samples reach the scheduler, and from there the
  coordinator (``identity()``), with no message of their own. Dask asks at
  every heartbeat; the sample is taken at most every ``dtf.health.sample-interval``
  (host CPU, memory, load, free disk of the worker's directory) and GPUs at most
  every ``gpu-interval`` (NVML, else ``nvidia-smi``; probed once, skipped where
  neither answers), and the last one is handed out in between.
* :func:`announce_started` tells the coordinator when a Dask task of a run
  begins on this worker (topic ``dtf-started``): Dask says when a task was
  assigned, not when it started running, and a straggler is judged by the time
  it has really run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from typing import Any

import psutil
from distributed import WorkerPlugin

from dtf_core import config
from dtf_core.cluster import hardware
from dtf_core.cluster.embedded import HEALTH_METRIC as METRIC

STARTED_TOPIC = "dtf-started"
_SMI_QUERY = "utilization.gpu,memory.used,memory.total,temperature.gpu"


class HealthSampler(WorkerPlugin):
    """Register with ``client.register_plugin(HealthSampler(), name="dtf-health")``."""

    idempotent = True  # a second coordinator registering it changes nothing

    def setup(self, worker: Any) -> None:
        state = _Sampler(str(getattr(worker, "local_directory", "") or os.getcwd()))
        worker.metrics[METRIC] = lambda _worker: state.sample()

    def teardown(self, worker: Any) -> None:
        worker.metrics.pop(METRIC, None)


class _Sampler:
    def __init__(self, directory: str) -> None:
        self._dir = directory
        self._lock = threading.Lock()
        self._last: dict[str, Any] = {}
        self._taken = -1e9
        self._gpu_taken = -1e9
        self._gpus: list[dict[str, Any]] | None = None
        self._gpu_probe: str | None = None  # "nvml" | "smi" | "" (none); None: not probed yet
        psutil.cpu_percent(None)  # the first call only starts the measurement

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            if now - self._taken < config.seconds("health.sample-interval"):
                return self._last
            self._taken = now
            sample = host_sample(self._dir)
            if now - self._gpu_taken >= config.seconds("health.gpu-interval"):
                self._gpu_taken = now
                self._gpus = self._sample_gpus()
            if self._gpus:
                sample["gpus"] = self._gpus
            self._last = sample
            return sample

    def _sample_gpus(self) -> list[dict[str, Any]] | None:
        if self._gpu_probe is None:
            self._gpu_probe = "nvml" if nvml_sample() is not None else ""
            if not self._gpu_probe and shutil.which("nvidia-smi"):
                self._gpu_probe = "smi"
        if self._gpu_probe == "nvml":
            return nvml_sample()
        if self._gpu_probe == "smi":
            return smi_sample()
        return None


def host_sample(directory: str) -> dict[str, Any]:
    """CPU %, memory %, 1-minute load, cores and free disk of ``directory``."""
    vm = psutil.virtual_memory()
    out: dict[str, Any] = {
        "t": time.time(),
        "cpu_pct": float(psutil.cpu_percent(None)),
        "mem_pct": float(vm.percent),
        "ncpu": os.cpu_count() or 1,
    }
    with contextlib.suppress(OSError, AttributeError):
        out["load1"] = float(os.getloadavg()[0])
    with contextlib.suppress(OSError):
        out["disk_free_bytes"] = int(shutil.disk_usage(directory).free)
    return out


def nvml_sample() -> list[dict[str, Any]] | None:
    """Utilisation %, memory and temperature per GPU via NVML; None without it."""

    def read(pynvml: Any, h: Any) -> dict[str, Any]:
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        return {
            "util_pct": float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
            "mem_used_bytes": int(mem.used),
            "mem_total_bytes": int(mem.total),
            "temp_c": float(pynvml.nvmlDeviceGetTemperature(h, 0)),  # 0: the GPU die
        }

    return hardware.nvml_devices(read)


def smi_sample(timeout: float = 5.0) -> list[dict[str, Any]] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, f"--query-gpu={_SMI_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_smi(proc.stdout) if proc.returncode == 0 else None


def parse_smi(text: str) -> list[dict[str, Any]]:
    """``utilization.gpu, memory.used, memory.total, temperature.gpu`` lines
    (MiB, nounits); a value nvidia-smi cannot read ("[N/A]") is left out."""
    keys = (("util_pct", 1.0), ("mem_used_bytes", 2**20), ("mem_total_bytes", 2**20),
            ("temp_c", 1.0))  # fmt: skip
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        gpu: dict[str, Any] = {}
        for (key, scale), raw in zip(keys, line.split(","), strict=False):
            try:
                value = float(raw.strip()) * scale
            except ValueError:
                continue
            gpu[key] = int(value) if key.endswith("bytes") else value
        gpus.append(gpu)
    return gpus


def announce_started(run_id: str, key: str) -> None:
    """Tell the coordinator that the Dask task ``key`` of ``run_id`` began here."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ValueError, ImportError):
        return  # not on a worker (tests call the runner directly)
    # (The scheduler overwrites a "worker" key with the worker's address.)
    msg = {"run_id": run_id, "key": key, "name": str(worker.name), "address": worker.address}
    with contextlib.suppress(Exception):
        worker.log_event(STARTED_TOPIC, msg)
