"""``dtf-core deploy slurm``: workers as SLURM jobs, two ways.

* ``<name>-slurm.py`` uses dask-jobqueue: the script runs the dtf scheduler
  (Dask's, with dtf's preload) in its own process on a login or service node,
  and submits each worker as a job (``--gres=gpu:N`` and the worker's resource
  ``GPU=N``); ``dtf-core serve --scheduler`` points at the address it prints.
* ``<name>-worker.sbatch`` is a job array of ``dtf-core worker`` processes for a
  site whose scheduler runs elsewhere (a systemd unit on a service node).

A worker token admits one live worker at a time, and jobs are started by the
hundred, so each job signs a token for itself (subject: its job id) with the
worker key before its worker starts. The key must be readable where the jobs
run, by the account that runs them: on a cluster that account runs the
scheduler too, so it is the boundary anyway.
"""

from __future__ import annotations

import json
import math
import os
import shlex

from dtf_core.deploy import commands
from dtf_core.deploy.common import header
from dtf_core.deploy.settings import DeploySettings

DEFAULT_BIN = "/opt/dtf/.venv/bin/dtf-core"
KEY_DIR = "/etc/dtf"
# Where a job keeps its own token: node-local, readable by the job's account only.
JOB_TOKEN = "${TMPDIR:-/tmp}/dtf-worker-${SLURM_JOB_ID}.jwt"


def issue_line(s: DeploySettings, exe: str, subject: str) -> str:
    """The shell line a job runs first: sign a token for ``subject`` (shell
    variables in it are the job's), valid an hour longer than the job may run."""
    ttl = f"{(s.slurm.walltime_minutes or 0) + 60}m"
    argv = commands.issue_worker_token(s.paths(KEY_DIR)["worker_key"], "@SUBJECT@", ttl)
    line = shlex.join([exe, *argv]).replace("@SUBJECT@", f'"{subject}"')
    return f'(umask 077; {line} > "{JOB_TOKEN}")'


def _gpus_and_jobs(s: DeploySettings) -> tuple[int, int]:
    # One kind of worker per script: the GPU workers when there are any.
    return (s.gpus_per_worker, s.gpu_workers) if s.gpu_workers else (0, s.workers)


def jobqueue_script(s: DeploySettings) -> str:
    exe = s.dtf_core or DEFAULT_BIN
    paths = s.paths(KEY_DIR)
    gpus, jobs = _gpus_and_jobs(s)
    cores = s.nthreads or s.slurm.cores
    # A stock `dask worker` detects nothing: give it the tags `dtf-core worker` would.
    res = {"CPU": float(cores), "MEM_GB": float(s.slurm.memory_bytes // 2**30),
           **s.worker_resources(gpus)}  # fmt: skip
    job_paths = {**paths, "worker_token": JOB_TOKEN}
    extra = ["--resources", commands.resources(res), *commands.dask_worker_preload(job_paths)]
    tls = (
        {"ca": paths["tls_ca"], "cert": paths["tls_cert"], "key": paths["tls_key"]} if s.tls else {}
    )
    scheduler_options = {
        "host": s.scheduler_host, "port": s.scheduler_port,
        "dashboard_address": "127.0.0.1:8787",
        "preload": ["dtf_core.scheduler_preload"],
        "preload_argv": ["--dtf-secret-file", paths["worker_key"]],
    }  # fmt: skip
    options = {
        "cores": cores, "processes": 1, "memory": s.slurm.memory,
        "walltime": s.slurm.walltime, "job_name": f"{s.name}-worker",
        "python": os.path.join(os.path.dirname(exe), "python"),
        "job_extra_directives": [f"--gres=gpu:{gpus}"] if gpus else [],
        "job_script_prologue": [issue_line(s, exe, "slurm-${SLURM_JOB_ID}")],
        "worker_extra_args": extra,
        "scheduler_options": scheduler_options,
    }  # fmt: skip
    if s.slurm.queue:
        options["queue"] = s.slurm.queue
    if s.slurm.account:
        options["account"] = s.slurm.account
    if s.tls:
        options["protocol"] = "tls://"
    return f'''#!/usr/bin/env python3
{header("slurm").rstrip()}
"""dtf workers as SLURM jobs (dask-jobqueue). This process runs the dtf scheduler;
each worker is a job. Run it where jobs can reach it (a login or service node):

    pip install dask-jobqueue   # beside dtf, in this environment
    python {s.name}-slurm.py    # prints the scheduler address, then keeps it up

then start `dtf-core serve --scheduler ADDRESS ...` (docs/deploy.md, slurm).
Ctrl-C or SIGTERM cancels the jobs and stops the scheduler.
"""

import signal
import threading

from dask_jobqueue import SLURMCluster

WORKER_JOBS = {jobs}
# Mutual TLS files (empty: plain TCP): scheduler, workers and this process use them.
TLS = {tls!r}
OPTIONS = {json.dumps(options, indent=4)}


def make_cluster(**overrides):
    """The SLURMCluster (its scheduler starts now; no job is submitted yet)."""
    options = {{**OPTIONS, **overrides}}
    if TLS:
        from distributed.security import Security

        ca, cert, key = TLS["ca"], TLS["cert"], TLS["key"]
        options["security"] = Security(
            tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key,
            tls_scheduler_cert=cert, tls_scheduler_key=key,
            tls_worker_cert=cert, tls_worker_key=key, require_encryption=True,
        )
    return SLURMCluster(**options)


def main():
    cluster = make_cluster()
    print(cluster.scheduler_address, flush=True)
    cluster.scale(jobs=WORKER_JOBS)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    cluster.close()


if __name__ == "__main__":
    main()
'''


def sbatch_script(s: DeploySettings) -> str:
    exe = s.dtf_core or DEFAULT_BIN
    paths = s.paths(KEY_DIR)
    gpus, jobs = _gpus_and_jobs(s)
    argv = commands.worker(
        s, {**paths, "worker_token": "@TOKEN@"}, gpus=gpus,
        name="@NAME@",
    )  # fmt: skip
    line = shlex.join([exe, *argv])
    line = line.replace("@TOKEN@", f'"{JOB_TOKEN}"').replace(
        "@NAME@", '"slurm-${SLURM_ARRAY_JOB_ID}-${SLURM_ARRAY_TASK_ID}"'
    )
    directives = [
        f"--job-name={s.name}-worker", f"--array=1-{jobs}", "--ntasks=1",
        f"--cpus-per-task={s.nthreads or s.slurm.cores}",
        f"--mem={math.ceil(s.slurm.memory_bytes / 2**20)}M",
        f"--time={s.slurm.walltime}", "--signal=B:TERM@60",
    ]  # fmt: skip
    if gpus:
        directives.append(f"--gres=gpu:{gpus}")
    if s.slurm.queue:
        directives.append(f"--partition={s.slurm.queue}")
    if s.slurm.account:
        directives.append(f"--account={s.slurm.account}")
    sbatch = "\n".join(f"#SBATCH {d}" for d in directives)
    return f"""#!/bin/bash
{sbatch}
{header("slurm").rstrip()}
# dtf workers as a SLURM job array, for a scheduler that runs elsewhere:
#   sbatch {s.name}-worker.sbatch
# Each array task signs its own worker token, then becomes `dtf-core worker` (which
# relaunches `dask worker` whenever the scheduler restarts) until the time limit;
# SLURM's SIGTERM a minute before it ends stops the worker in order.
set -euo pipefail
{issue_line(s, exe, "slurm-${SLURM_ARRAY_JOB_ID}-${SLURM_ARRAY_TASK_ID}")}
exec {line}
"""


def generate(s: DeploySettings) -> dict[str, str]:
    return {f"{s.name}-slurm.py": jobqueue_script(s), f"{s.name}-worker.sbatch": sbatch_script(s)}
