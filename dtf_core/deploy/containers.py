"""``dtf-core deploy docker`` and ``compose``: one image for every role, and a
compose file that starts a whole test environment from it.

The image's entry point is ``dtf-core``; the role is the command (``scheduler``,
``serve``, ``worker``). It is built from a dtf source tree (the build context),
so what is deployed is exactly the checked-out code.

The compose environment makes its own keys: a one-shot ``keys`` service writes
the three secrets, one token per worker (a token admits one live worker at a
time) and, with TLS, certificates into a volume the other services mount read-
only. ``docker compose up`` needs nothing else; the submitter token for CI is
issued with ``docker compose run --rm keys ...`` (docs/deploy.md).
"""

from __future__ import annotations

import shlex
from typing import Any

from dtf_core import __version__
from dtf_core.deploy import commands
from dtf_core.deploy.common import dump_yaml, header
from dtf_core.deploy.settings import FILE_NAMES, DeploySettings

SECRETS = "/run/dtf"  # where the keys volume is mounted in every container
STATE = "/var/lib/dtf"
UID = 10001


def dockerfile(s: DeploySettings) -> str:
    return f"""{header("docker").rstrip()}
# Build with a dtf source tree as the context (only the package is copied):
#   docker build -f path/to/this/Dockerfile -t {s.image} path/to/dtf
# One image, three roles: the command picks it (scheduler, serve, worker ...).
ARG PYTHON=3.11
FROM python:${{PYTHON}}-slim

LABEL org.opencontainers.image.title="dtf" org.opencontainers.image.version="{__version__}"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /src/
COPY dtf_core /src/dtf_core
COPY dtf_tui /src/dtf_tui
# [tls]: `dtf-core tls certs` and mutual TLS between the containers.
RUN pip install --no-cache-dir "/src[tls]" && rm -rf /src

# A dedicated user that owns the state directory: the database, uploaded suites,
# the workers' scratch space. Keys are mounted read-only under {SECRETS}.
RUN groupadd --system --gid {UID} {s.user} \\
    && useradd --system --uid {UID} --gid {UID} --home-dir {STATE} --create-home \\
       --shell /usr/sbin/nologin {s.user} \\
    && mkdir -p {SECRETS} && chown {UID}:{UID} {SECRETS}
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER {UID}:{UID}
WORKDIR {STATE}
VOLUME ["{STATE}"]

EXPOSE {s.scheduler_port} {s.serve_port}
ENTRYPOINT ["dtf-core"]
CMD ["--help"]
"""


def _paths(s: DeploySettings, token: str) -> dict[str, str]:
    paths = {k: f"{SECRETS}/{v}" for k, v in FILE_NAMES.items() if not k.startswith("tls_")}
    paths["worker_token"] = f"{SECRETS}/{token}"
    if s.tls:
        paths.update({"tls_ca": f"{SECRETS}/tls/ca.pem", "tls_cert": f"{SECRETS}/tls/cert.pem",
                      "tls_key": f"{SECRETS}/tls/key.pem"})  # fmt: skip
    return paths


def _keys_script(s: DeploySettings, workers: list[str]) -> str:
    def line(argv: list[str], out: str = "") -> str:
        return "dtf-core " + shlex.join(argv) + (f" > {out}" if out else "")

    lines = ["set -e", "umask 077"]
    for key in ("worker_key", "api_key", "result_key"):
        path = f"{SECRETS}/{FILE_NAMES[key]}"
        lines.append(f"[ -f {path} ] || " + line(commands.make_secret(path)))
    if s.tls:
        certs = commands.make_certs(f"{SECRETS}/tls", ["scheduler", "serve"])
        lines.append(f"[ -f {SECRETS}/tls/ca.pem ] || " + line(certs))
    # Fresh tokens at every start: they expire, the keys do not.
    for w in workers:
        argv = commands.issue_worker_token(f"{SECRETS}/worker.key", w)
        lines.append(line(argv, f"{SECRETS}/{w}.jwt"))
    return "\n".join(lines) + "\n"


def _python_check(code: str) -> list[str]:
    return ["CMD", "python", "-c", code]


# A worker is healthy while its `dask worker` child runs (dtf-core worker relaunches it).
_WORKER_ALIVE = (
    "import pathlib,sys;"
    "sys.exit(0 if any(b'dask_worker' in p.read_bytes() "
    "for p in pathlib.Path('/proc').glob('[0-9]*/cmdline') if p.exists()) else 1)"
)


def compose(s: DeploySettings) -> str:
    scheme = "tls" if s.tls else "tcp"
    address = f"{scheme}://scheduler:{s.scheduler_port}"
    cpu = [f"worker-{i + 1}" for i in range(s.workers)]
    gpu = [f"gpu-worker-{i + 1}" for i in range(s.gpu_workers)]
    keys_ready = {"keys": {"condition": "service_completed_successfully"}}
    ro = [f"keys:{SECRETS}:ro"]
    check = {"interval": "5s", "timeout": "5s", "retries": 12, "start_period": "10s"}
    services: dict[str, Any] = {
        "keys": {
            "image": s.image,
            "entrypoint": ["sh", "-c"],
            "command": [_keys_script(s, cpu + gpu)],
            "volumes": [f"keys:{SECRETS}"],
        },
        "scheduler": {
            "image": s.image,
            "command": commands.scheduler(s, _paths(s, ""), host="0.0.0.0"),
            "volumes": ro,
            "depends_on": keys_ready,
            "restart": "always",
            "healthcheck": {
                "test": _python_check(
                    f"import socket; socket.create_connection(('127.0.0.1', {s.scheduler_port}), 3)"
                ),
                **check,
            },
        },
        "serve": {
            "image": s.image,
            "command": commands.serve(
                s,
                _paths(s, ""),
                scheduler=address,
                db=f"{STATE}/dtf.duckdb",
                workdir=f"{STATE}/uploads",
                host="0.0.0.0",
            ),
            "ports": [f"127.0.0.1:{s.serve_port}:{s.serve_port}"],
            "volumes": [*ro, f"state:{STATE}"],
            "depends_on": {**keys_ready, "scheduler": {"condition": "service_healthy"}},
            "restart": "always",
            "healthcheck": {
                "test": _python_check(
                    "import urllib.request as u; "
                    f"u.urlopen('http://127.0.0.1:{s.serve_port}/v1/health', timeout=3)"
                ),
                **check,
            },
        },
    }
    for w in cpu + gpu:
        gpus = s.gpus_per_worker if w in gpu else 0
        service: dict[str, Any] = {
            "image": s.image,
            "hostname": w,
            "command": commands.worker(
                s, _paths(s, f"{w}.jwt"), gpus=gpus, scheduler=address, name=w
            ),
            "volumes": ro,
            "depends_on": {**keys_ready, "scheduler": {"condition": "service_healthy"}},
            "restart": "always",
            "healthcheck": {"test": _python_check(_WORKER_ALIVE), **check},
        }
        if gpus:
            service["deploy"] = {"resources": {"reservations": {"devices": [
                {"driver": "nvidia", "count": gpus, "capabilities": ["gpu"]}
            ]}}}  # fmt: skip
        services[w] = service
    doc = {"name": s.name, "services": services, "volumes": {"keys": {}, "state": {}}}
    return header("compose") + dump_yaml(doc)


def generate_docker(s: DeploySettings) -> dict[str, str]:
    return {"Dockerfile": dockerfile(s)}


def generate_compose(s: DeploySettings) -> dict[str, str]:
    return {"compose.yaml": compose(s), "Dockerfile": dockerfile(s)}
