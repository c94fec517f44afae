"""``dtf-core deploy kubernetes``: the scheduler and serve as Deployments with
Services, CPU workers as a Deployment, GPU workers as a Deployment whose pods ask
for ``nvidia.com/gpu: N`` and advertise ``GPU=N``.

Keys are Secret volumes, created by the operator from files (docs/deploy.md):
``<name>-worker-key``, ``<name>-api-key``, ``<name>-result-key`` and, with TLS,
``<name>-tls``. A worker token admits one live worker at a time, so replicas
cannot share one: each worker pod's init container signs a token for its own pod
name with the worker key, into a memory volume the worker reads; the worker
container itself never mounts the key (it runs the suites' code).
"""

from __future__ import annotations

from typing import Any

from dtf_core.deploy import commands
from dtf_core.deploy.common import dump_yaml, header
from dtf_core.deploy.settings import FILE_NAMES, DeploySettings

SECRETS = "/etc/dtf"
TOKEN_DIR = "/var/run/dtf-token"
STATE = "/var/lib/dtf"
UID = 10001
_SECURITY = {
    "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}  # fmt: skip


def _meta(s: DeploySettings, name: str, role: str) -> dict[str, Any]:
    return {"name": name, "namespace": s.namespace, "labels": _labels(s, role)}


def _labels(s: DeploySettings, role: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": s.name, "app.kubernetes.io/component": role}


def _secret_volume(s: DeploySettings, key: str) -> dict[str, Any]:
    return {"name": key.replace("_", "-"), "secret": {
        "secretName": f"{s.name}-{key.replace('_', '-')}", "defaultMode": 0o400}}  # fmt: skip


def _mount(key: str, path: str) -> dict[str, Any]:
    return {"name": key.replace("_", "-"), "mountPath": path, "readOnly": True}


def _container(s: DeploySettings, role: str, args: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": role, "image": s.image, "args": args, "securityContext": _SECURITY, **extra}


def _deployment(
    s: DeploySettings, name: str, role: str, replicas: int, pod: dict[str, Any],
    strategy: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    labels = _labels(s, role)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(s, name, role),
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "strategy": strategy or {"type": "Recreate"},
            "template": {"metadata": {"labels": labels},
                         "spec": {"securityContext": {"fsGroup": UID}, **pod}},
        },
    }  # fmt: skip


def _service(s: DeploySettings, name: str, role: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(s, name, role),
        "spec": {"selector": _labels(s, role),
                 "ports": [{"name": role, "port": port, "targetPort": port}]},
    }  # fmt: skip


def _tls(s: DeploySettings) -> tuple[dict[str, str], list[dict[str, Any]], list[dict[str, Any]]]:
    if not s.tls:
        return {}, [], []
    paths = {k: f"{SECRETS}/tls/{FILE_NAMES[k]}" for k in ("tls_ca", "tls_cert", "tls_key")}
    return paths, [_secret_volume(s, "tls")], [_mount("tls", f"{SECRETS}/tls")]


def _worker(s: DeploySettings, gpus: int, address: str) -> dict[str, Any]:
    role = "gpu-worker" if gpus else "worker"
    tls_paths, tls_vols, tls_mounts = _tls(s)
    paths = {"worker_token": f"{TOKEN_DIR}/worker.jwt",
             "result_key": f"{SECRETS}/result/result.key", **tls_paths}  # fmt: skip
    issue = commands.issue_worker_token(f"{SECRETS}/worker-key/worker.key", "$(POD_NAME)")
    init = _container(
        s, "token", issue,
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        volumeMounts=[_mount("worker_key", f"{SECRETS}/worker-key"),
                      {"name": "token", "mountPath": TOKEN_DIR}],
    )  # fmt: skip
    # `token issue` prints the token: the shell only puts it into the file.
    init["command"] = ["sh", "-c", f'umask 077; dtf-core "$@" > {TOKEN_DIR}/worker.jwt', "--"]
    main = _container(
        s, role, commands.worker(s, paths, gpus=gpus, scheduler=address, name="$(POD_NAME)"),
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        volumeMounts=[{"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
                      _mount("result_key", f"{SECRETS}/result"), *tls_mounts,
                      {"name": "scratch", "mountPath": STATE}],
    )  # fmt: skip
    if gpus:
        main["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    pod = {
        "initContainers": [init],
        "containers": [main],
        "terminationGracePeriodSeconds": 60,
        "volumes": [_secret_volume(s, "worker_key"), _secret_volume(s, "result_key"), *tls_vols,
                    {"name": "token", "emptyDir": {"medium": "Memory"}},
                    {"name": "scratch", "emptyDir": {}}],
    }  # fmt: skip
    count = s.gpu_workers if gpus else s.workers
    # Replace workers one at a time, the old pod first: a surge pod would wait for a
    # GPU the old one holds, and the old one would wait for it to be ready.
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return _deployment(s, f"{s.name}-{role}", role, count, pod, rolling)


def generate(s: DeploySettings) -> dict[str, str]:
    scheme = "tls" if s.tls else "tcp"
    sched_name, serve_name = f"{s.name}-scheduler", f"{s.name}-serve"
    address = f"{scheme}://{sched_name}:{s.scheduler_port}"
    tls_paths, tls_vols, tls_mounts = _tls(s)
    scheduler = _deployment(s, sched_name, "scheduler", 1, {
        "containers": [_container(
            s, "scheduler",
            commands.scheduler(s, {"worker_key": f"{SECRETS}/worker-key/worker.key", **tls_paths},
                               host="0.0.0.0"),
            ports=[{"containerPort": s.scheduler_port, "name": "scheduler"}],
            readinessProbe={"tcpSocket": {"port": s.scheduler_port}, "periodSeconds": 5},
            volumeMounts=[_mount("worker_key", f"{SECRETS}/worker-key"), *tls_mounts],
        )],
        "volumes": [_secret_volume(s, "worker_key"), *tls_vols],
    })  # fmt: skip
    serve_paths = {"api_key": f"{SECRETS}/api/api.key",
                   "result_key": f"{SECRETS}/result/result.key", **tls_paths}  # fmt: skip
    health = {"httpGet": {"path": "/v1/health", "port": s.serve_port}, "periodSeconds": 5}
    # The database and uploaded suites (kept for --resume) live on a claim. One
    # writer per DuckDB file: the old pod stops before the new one starts (Recreate,
    # as for the scheduler: two behind one Service would split the workers).
    serve = _deployment(s, serve_name, "serve", 1, {
        "containers": [_container(
            s, "serve",
            commands.serve(s, serve_paths, scheduler=address, db=f"{STATE}/dtf.duckdb",
                           workdir=f"{STATE}/uploads", host="0.0.0.0"),
            ports=[{"containerPort": s.serve_port, "name": "api"}],
            readinessProbe=health, livenessProbe={**health, "failureThreshold": 6},
            volumeMounts=[_mount("api_key", f"{SECRETS}/api"),
                          _mount("result_key", f"{SECRETS}/result"), *tls_mounts,
                          {"name": "state", "mountPath": STATE}],
        )],
        "volumes": [_secret_volume(s, "api_key"), _secret_volume(s, "result_key"), *tls_vols,
                    {"name": "state", "persistentVolumeClaim": {"claimName": f"{s.name}-state"}}],
    })  # fmt: skip
    claim = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": _meta(s, f"{s.name}-state", "serve"),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }  # fmt: skip
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": s.namespace}}
    docs: list[Any] = [
        namespace, scheduler, _service(s, sched_name, "scheduler", s.scheduler_port),
        claim, serve, _service(s, serve_name, "serve", s.serve_port),
    ]  # fmt: skip
    if s.workers:
        docs.append(_worker(s, 0, address))
    if s.gpu_workers:
        docs.append(_worker(s, s.gpus_per_worker, address))
    return {f"{s.name}-kubernetes.yaml": header("kubernetes") + dump_yaml(*docs)}
