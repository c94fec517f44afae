"""What a worker samples about its machine (worker/health.py), without Dask.

GPUs cannot exist here: nvidia-smi's output is parsed from text."""

from __future__ import annotations

import os

from dtf_core.worker.health import host_sample, parse_smi


def test_host_sample_has_the_basics(tmp_path: object) -> None:
    s = host_sample(str(tmp_path))
    assert 0.0 <= s["cpu_pct"] <= 100.0 * (os.cpu_count() or 1)
    assert 0.0 < s["mem_pct"] < 100.0
    assert s["ncpu"] >= 1 and s["load1"] >= 0.0
    assert s["disk_free_bytes"] > 0


def test_nvidia_smi_lines() -> None:
    text = "87, 30500, 81559, 71\n3, [N/A], 81559, 40\n\n"
    gpus = parse_smi(text)
    assert gpus[0] == {
        "util_pct": 87.0,
        "mem_used_bytes": 30500 * 2**20,
        "mem_total_bytes": 81559 * 2**20,
        "temp_c": 71.0,
    }
    assert "mem_used_bytes" not in gpus[1] and gpus[1]["temp_c"] == 40.0
    assert parse_smi("") == []
