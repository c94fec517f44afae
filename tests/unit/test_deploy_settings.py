"""A deployment's settings: the [deploy] table, options over it, and one-line errors
(exit 2) that name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dtf_core import deploy
from dtf_core.cli import deploy as cli_deploy
from dtf_core.cli import main
from dtf_core.deploy import settings
from dtf_core.errors import BadInputError

GOOD = """
[deploy]
scheduler = "tls://10.0.0.5:8786"
workers = 2
gpu_workers = 1
gpus_per_worker = 4
resources = "CUDA=1"
[deploy.files]
worker_token = "/srv/keys/w.jwt"
tls_ca = "/srv/tls/ca.pem"
tls_cert = "/srv/tls/cert.pem"
tls_key = "/srv/tls/key.pem"
[deploy.slurm]
walltime = "1-12:00"
memory = "64GB"
"""


def test_table_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "deploy.toml"
    f.write_text(GOOD)
    s = settings.load(str(f), {"workers": 3, "files": {"result_key": "/k/r.key"}, "db": None})
    assert (s.workers, s.gpu_workers, s.scheduler_port, s.tls) == (3, 1, 8786, True)
    assert s.worker_resources(4) == {"CUDA": 1.0, "GPU": 4.0}
    assert s.files["worker_token"] == "/srv/keys/w.jwt" and s.files["result_key"] == "/k/r.key"
    assert s.paths("/etc/dtf")["api_key"] == "/etc/dtf/api.key"
    assert s.paths("C:\\dtf", sep="\\")["worker_key"] == "C:\\dtf\\worker.key"
    assert s.slurm.walltime_minutes == 36 * 60 and s.slurm.memory_bytes == 64 * 10**9


@pytest.mark.parametrize(
    ("walltime", "minutes"),
    [("30", 30), ("30:15", 31), ("08:00:00", 480), ("2-0", 2880), ("1-02:03", 1563),
     ("1-00:00:01", 1441), ("eight hours", None)],
)  # fmt: skip
def test_slurm_time_formats(walltime: str, minutes: int | None) -> None:
    assert settings.SlurmSettings(walltime=walltime).walltime_minutes == minutes


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[deploy]\nworkerz = 2\n", "key 'workerz': unknown key; the keys are"),
        ("[deploy]\nworkers = \"2\"\n", "key 'workers': must be a whole number"),
        ("[deploy]\nscheduler = \"10.0.0.5:8786\"\n", "key 'scheduler': '10.0.0.5:8786' is not an address"),
        ("[deploy]\nscheduler = \"tls://h:1\"\n", "key 'scheduler': TLS files and a tls:// address go together"),
        ("[deploy]\nresources = \"GPU=1\"\n", "key 'resources': GPU is set by gpu_workers"),
        ("[deploy]\nresources = \"CUDA\"\n", "key 'resources': resource 'CUDA' is not NAME=NUMBER"),
        ("[deploy]\nworkers = 0\n", "key 'workers': no worker at all"),
        ("[deploy]\nname = \"My_DTF\"\n", "key 'name': must be lower-case"),
        ("[deploy.files]\ntls_ca = \"/ca.pem\"\n", "key 'files.tls_ca': mutual TLS needs all of"),
        ("[deploy.files]\ntoken = \"/t\"\n", "key 'files.token': unknown file"),
        ("[deploy.slurm]\nwalltime = \"8h\"\n", "key 'slurm.walltime': '8h' is not a SLURM time"),
        ("[deploy.slurm]\nmemory = \"lots\"\n", "key 'slurm.memory': 'lots' is not a size"),
        ("[other]\nx = 1\n", "has no [deploy] table"),
        ("[deploy\n", "is not valid TOML"),
    ],
)  # fmt: skip
def test_bad_settings_name_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "deploy.toml"
    f.write_text(toml)
    with pytest.raises(BadInputError) as exc:
        settings.load(str(f), {})
    assert str(exc.value).startswith(f"{f}: ") and message in str(exc.value)


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "deploy.toml"
    f.write_text("[deploy]\nworkerz = 2\n")
    runner = CliRunner()
    r = runner.invoke(main, ["deploy", "systemd", "-o", str(tmp_path / "o"), "--config", str(f)])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert r.output.startswith(f"dtf-core: error: {f}: key 'workerz'")
    f.write_text("[deploy]\nworkers = 2\n")
    r = runner.invoke(main, ["deploy", "systemd", "-o", str(tmp_path / "o"), "--config", str(f),
                             "--workers", "-1"])  # fmt: skip
    assert r.exit_code == 2 and "error: command line: key 'workers': must be 0 or more" in r.output
    r = runner.invoke(main, ["deploy", "systemd", "-o", str(tmp_path / "o"), "--serve", "8780"])
    assert r.exit_code == 2 and "--serve '8780' is not HOST:PORT" in r.output
    r = runner.invoke(main, ["deploy", "nomad", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "'nomad' is not one of" in r.output


def test_cli_writes_and_does_not_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["deploy", "systemd", "-o", str(out), "--scheduler", "tcp://10.1.2.3:9000"]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    unit = (out / "dtf-worker.service").read_text()
    assert "worker tcp://10.1.2.3:9000 " in unit
    assert sorted(p.name for p in out.iterdir()) == sorted(
        deploy.generate("systemd", settings.load(None, {}))
    )
    r = runner.invoke(main, args)
    assert r.exit_code == 2 and "exists; pass --force" in r.output
    assert runner.invoke(main, [*args, "--force"]).exit_code == 0


def test_every_target_is_a_choice() -> None:
    choice = next(p for p in cli_deploy.deploy_cmd.params if p.name == "target")
    assert tuple(choice.type.choices) == deploy.TARGETS  # type: ignore[attr-defined]
    assert set(deploy.TARGETS) == {
        "systemd", "launchd", "windows", "docker", "compose", "kubernetes", "slurm",
    }  # fmt: skip
