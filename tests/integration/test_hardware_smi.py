"""GPUs from nvidia-smi. The GPU is the one thing faked: a fake ``nvidia-smi`` script
on PATH, run as a real subprocess."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtf_core.cluster import hardware


@pytest.fixture(autouse=True)
def fresh_describe() -> Iterator[None]:
    hardware.describe.cache_clear()
    yield
    hardware.describe.cache_clear()


def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Put an ``nvidia-smi`` shell script first on PATH and keep NVML out of the way."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(hardware, "nvml_gpus", lambda: None)


def test_gpus_from_fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_smi(
        tmp_path,
        monkeypatch,
        'case "$*" in *--query-gpu=name,memory.total*--format=csv,noheader,nounits*) ;;'
        " *) exit 9;; esac\n"
        'echo "NVIDIA H100 80GB HBM3, 81559"\necho "NVIDIA H100 80GB HBM3, 81559"',
    )
    gpus = hardware.nvidia_smi_gpus()
    assert gpus == [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 81559 * 2**20}] * 2
    info = hardware.describe()
    assert info["gpus"] == gpus
    assert hardware.label().endswith(" · 2x NVIDIA H100 80GB HBM3")
    res = hardware.detect_resources(3)
    assert [r.get("GPU") for r in res] == [1.0, 1.0, None]
    assert [hardware.worker_env(i, 3) for i in range(3)] == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
        {"CUDA_VISIBLE_DEVICES": ""},
    ]


def test_broken_or_hanging_nvidia_smi_means_no_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_smi(tmp_path, monkeypatch, 'echo "NVIDIA-SMI has failed" >&2; exit 9')
    assert hardware.nvidia_smi_gpus() is None
    assert hardware.describe()["gpus"] == []

    (tmp_path / "bin" / "nvidia-smi").write_text("#!/bin/sh\nexec sleep 10\n")
    t0 = time.monotonic()
    assert hardware.nvidia_smi_gpus(timeout=0.5) is None
    assert time.monotonic() - t0 < 5
