"""Hardware facts and resources from given facts (the fake nvidia-smi runs in
integration/test_hardware_smi.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtf_core.cluster import hardware
from dtf_core.errors import OptionError

INFO = {
    "machine": "x86_64",
    "cpu_model": "AMD EPYC 7B13",
    "logical_cores": 4,
    "memory_bytes": 16 * 2**30 + 5,
    "gpus": [],
}


@pytest.fixture(autouse=True)
def fresh_describe() -> Iterator[None]:
    hardware.describe.cache_clear()
    yield
    hardware.describe.cache_clear()


def test_describe_is_cached_and_complete() -> None:
    info = hardware.describe()
    assert info is hardware.describe()
    assert info["hostname"] == socket.gethostname()
    assert info["logical_cores"] >= 1 and info["physical_cores"] >= 1
    assert info["memory_bytes"] > 2**20 and info["cpu_model"]
    assert isinstance(info["gpus"], list)
    assert hardware.label().startswith(f"{info['machine']} · ")


def test_label() -> None:
    assert hardware.label(INFO) == "x86_64 · AMD EPYC 7B13 · 4 cores"
    gpus = [{"name": "NVIDIA A100", "memory_bytes": 1}] * 2 + [{"name": "Tesla T4"}]
    assert hardware.label({**INFO, "gpus": gpus}) == (
        "x86_64 · AMD EPYC 7B13 · 4 cores · 2x NVIDIA A100 · 1x Tesla T4"
    )


def test_no_nvidia_smi_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert hardware.nvidia_smi_gpus() is None


def test_parse_nvidia_smi() -> None:
    assert hardware.parse_nvidia_smi("Tesla T4, 15360\n\nWeird, Name, [N/A]\n") == [
        {"name": "Tesla T4", "memory_bytes": 15360 * 2**20},
        {"name": "Weird, Name, [N/A]", "memory_bytes": 0},
    ]


def test_detect_resources_splits_the_machine() -> None:
    gpu_info = {**INFO, "gpus": [{"name": "T4", "memory_bytes": 1}]}
    assert hardware.detect_resources(2, gpu_info) == [
        {"CPU": 2.0, "MEM_GB": 8.0, "GPU": 1.0},
        {"CPU": 2.0, "MEM_GB": 8.0},
    ]
    assert hardware.detect_resources(8, INFO)[7] == {"CPU": 1.0, "MEM_GB": 2.0}
    assert hardware.worker_env(0, 2, INFO) == {}  # no GPUs: leave the environment alone
    with pytest.raises(OptionError):
        hardware.detect_resources(0, INFO)
    real = hardware.detect_resources(1)
    assert real[0]["CPU"] == hardware.describe()["logical_cores"]


def test_parse_resources() -> None:
    assert hardware.parse_resources("GPU=1,MEM_GB=8") == {"GPU": 1.0, "MEM_GB": 8.0}
    assert hardware.parse_resources(" GPU=1  CUDA=0.5, X_2=3 ") == {
        "GPU": 1.0,
        "CUDA": 0.5,
        "X_2": 3.0,
    }
    assert hardware.parse_resources("") == {}


@pytest.mark.parametrize(
    "text",
    ["GPU", "GPU=", "GPU=abc", "GPU=0", "GPU=-1", "GPU=nan", "GPU=inf", "1GPU=1", "G-PU=1",
     "GPU=1,GPU=2"],
)  # fmt: skip
def test_parse_resources_rejects(text: str) -> None:
    with pytest.raises(OptionError) as info:
        hardware.parse_resources(text)
    assert "\n" not in str(info.value)
