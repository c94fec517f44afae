"""The system snapshot of a failed attempt, pure parts: what it redacts, how env
differences and GPU lines read, how packages are found, how every view writes it."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from dtf_core.reporting.syscontext import context_lines, context_rows
from dtf_core.worker import snapshot, wire
from dtf_core.worker.snapshot import REDACTED

SECRETS = {
    "GITHUB_TOKEN": "ghp_abc",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "db_password": "pw",
    "MY_API_KEY": "k",
    "GOOGLE_APPLICATION_CREDENTIALS": "/c.json",
}


def test_secret_names_are_redacted_other_values_kept() -> None:
    changed = snapshot.env_changes({**SECRETS, "CUDA_VISIBLE_DEVICES": "1"}, baseline={})
    assert {k: changed[k] for k in SECRETS} == dict.fromkeys(SECRETS, REDACTED)
    assert changed["CUDA_VISIBLE_DEVICES"] == "1"


def test_env_changes_are_only_what_differs_from_the_worker() -> None:
    base = {"PATH": "/bin", "HOME": "/root", "LANG": "C"}
    env = {"PATH": "/opt/bin:/bin", "HOME": "/root", "OMP_NUM_THREADS": "4"}
    assert snapshot.env_changes(env, base) == {
        "LANG": None,  # removed for the task
        "OMP_NUM_THREADS": "4",
        "PATH": "/opt/bin:/bin",
    }


def test_env_changes_are_bounded() -> None:
    env = {f"V{i:03d}": "x" * 1000 for i in range(500)}
    changed = snapshot.env_changes(env, {})
    assert len(changed) == snapshot.MAX_ENV
    assert all(len(v or "") <= snapshot.MAX_VALUE for v in changed.values())


def test_gpu_lines_from_nvidia_smi() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 97, 81000, 81559, 83\n1, Tesla, V100, [N/A], 10, 16384, 40\n"
    gpus = snapshot.parse_gpu_state(text)
    assert gpus[0] == {
        "index": "0", "name": "NVIDIA H100 80GB HBM3", "utilization_pct": 97.0,
        "memory_used": 81000 * 2**20, "memory_total": 81559 * 2**20, "temperature_c": 83.0,
    }  # fmt: skip
    assert gpus[1]["name"] == "Tesla, V100" and gpus[1]["utilization_pct"] is None


def test_packages_map_modules_to_installed_distributions() -> None:
    pkgs = snapshot.packages(["pytest", "_pytest.main", "duckdb", "json", "no_such_module"])
    assert pkgs["pytest"] == importlib.metadata.version("pytest")
    assert pkgs["duckdb"] == importlib.metadata.version("duckdb")
    assert len(pkgs) == 2  # the standard library and unknown modules have no distribution


def test_capture_is_plain_data_that_crosses_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    # No nvidia-smi process from a unit test (the GPU part: test_error_context.py).
    monkeypatch.setattr(snapshot, "gpu_state", lambda: None)
    ctx = snapshot.capture(
        env={"DTF_TASK_ID": "t", "SERVICE_TOKEN": "s3cr3t"}, imports=["pytest"], imports_from="x"
    )
    for key in ("host", "os", "python", "load", "memory", "disk", "gpu", "env", "log"):
        assert key in ctx, key
    assert ctx["env"]["SERVICE_TOKEN"] == REDACTED and ctx["env"]["DTF_TASK_ID"] == "t"
    assert "pytest" in ctx["packages"]
    json.dumps(ctx)
    plain = {"run_id": "r", "task_id": "t", "attempt": 1, "outcome": "failed", "context": ctx}
    assert wire.result_from_plain(plain).context == json.loads(json.dumps(ctx))
    assert "s3cr3t" not in json.dumps(ctx)


def test_every_view_writes_the_same_lines() -> None:
    ctx = {
        "host": "node-7", "os": "Linux-6.1", "python": "CPython 3.11.9", "executable": "/py",
        "cpus": 8, "load": [3.5, 2.0, 1.0], "memory": {"total": 2**34, "available": 2**30},
        "disk": {"path": "/tmp", "free": 2**20, "total": 2**30},
        "gpu": [{"index": "0", "name": "H100", "utilization_pct": 3.0, "memory_used": 0,
                 "memory_total": 2**30, "temperature_c": 91.0}],
        "packages": {"numpy": "2.1.0"}, "packages_from": "pytest process",
        "env": {"API_TOKEN": REDACTED, "GONE": None}, "log": ["worker started", "lost a peer"],
    }  # fmt: skip
    text = "\n".join(context_lines(ctx))
    for needed in ("host: node-7", "Linux-6.1", "CPython 3.11.9", "3.5 2 1 on 8 CPUs",
                   "1.0 GiB available of 16.0 GiB", "1.0 MiB free", "H100: 3 % busy",
                   "91 °C", "numpy==2.1.0", "API_TOKEN=***", "GONE (unset)", "  lost a peer"):  # fmt: skip
        assert needed in text, needed
    assert context_rows({}) == [] and context_rows(None) == []
    assert context_lines({"error": "the snapshot failed: OSError"}) == [
        "snapshot: the snapshot failed: OSError"
    ]
    # A command's imports are unknowable: no claim about packages.
    assert not any(r[0].startswith("packages") for r in context_rows({"command": "/bin/false"}))


def test_a_signed_result_with_a_snapshot_verifies_after_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import msgpack

    from dtf_core.cluster import security
    from dtf_core.model import AttemptResult

    monkeypatch.setattr(snapshot, "gpu_state", lambda: [{"index": "0", "temperature_c": 71.5}])
    key = b"r" * 32
    res = AttemptResult("r", "t", 1, "failed", "test-failure", context=snapshot.capture())
    security.sign_result(res, key)
    sent = msgpack.unpackb(msgpack.packb(wire.result_to_plain(res)), use_list=False)
    back = wire.result_from_plain(sent)
    assert security.verify_result(back, key) is None
    back.context["host"] = "elsewhere"  # the snapshot is covered by the signature
    assert security.verify_result(back, key) is not None


def test_secret_values_are_scrubbed_from_free_text() -> None:
    hidden = snapshot.secret_values({"API_TOKEN": "tok-123456", "KEY": "abc", "HOME": "/root"})
    assert hidden == ["tok-123456"]  # too short to scrub safely: "abc"; not a secret: HOME
    line = "connecting with tok-123456 as /root"
    assert snapshot.scrub(line, hidden) == f"connecting with {REDACTED} as /root"
