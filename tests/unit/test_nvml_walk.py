"""One NVML walk for hardware detection and health samples. No GPU exists here:
a stand-in ``pynvml`` module (the one mock the brief allows) drives the real code."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from dtf_core.cluster import hardware
from dtf_core.worker import health


def _fake_pynvml(count: int = 2, fail_at: int | None = None) -> types.ModuleType:
    m = types.ModuleType("pynvml")
    calls: dict[str, int] = {"shutdown": 0}

    def handle(i: int) -> int:
        if i == fail_at:
            raise RuntimeError("GPU is lost")
        return i

    m.nvmlInit = lambda: None  # type: ignore[attr-defined]
    m.nvmlShutdown = lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1)  # type: ignore[attr-defined]
    m.nvmlDeviceGetCount = lambda: count  # type: ignore[attr-defined]
    m.nvmlDeviceGetHandleByIndex = handle  # type: ignore[attr-defined]
    m.nvmlDeviceGetName = lambda h: b"Fake H200" if h == 0 else "Fake H100"  # type: ignore[attr-defined]
    mem: Any = types.SimpleNamespace(total=141 << 30, used=1 << 30)
    m.nvmlDeviceGetMemoryInfo = lambda h: mem  # type: ignore[attr-defined]
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=37)  # type: ignore[attr-defined]
    m.nvmlDeviceGetTemperature = lambda h, sensor: 61  # type: ignore[attr-defined]
    m.calls = calls  # type: ignore[attr-defined]
    return m


def test_detection_and_samples_read_every_device_and_shut_nvml_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert hardware.nvml_gpus() == [
        {"name": "Fake H200", "memory_bytes": 141 << 30},  # bytes decoded
        {"name": "Fake H100", "memory_bytes": 141 << 30},
    ]
    sample = health.nvml_sample()
    assert sample is not None and len(sample) == 2
    assert sample[0] == {
        "util_pct": 37.0, "mem_used_bytes": 1 << 30, "mem_total_bytes": 141 << 30, "temp_c": 61.0
    }  # fmt: skip
    assert fake.calls["shutdown"] == 2  # type: ignore[attr-defined]


def test_a_failing_device_read_gives_none_and_still_shuts_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _fake_pynvml(fail_at=1)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert hardware.nvml_gpus() is None and health.nvml_sample() is None
    assert fake.calls["shutdown"] == 2  # type: ignore[attr-defined]
