"""``dtf-core deploy systemd``: one unit each for the scheduler, serve and a worker,
and a sysusers.d file for the dedicated user.

Key files reach the services through ``LoadCredential=``: systemd copies them into
a directory only that service can read (``%d``), so they need not be readable by
the ``dtf`` user at their own path, and no secret is ever on a command line.
Every unit restarts forever (``Restart=always``): Dask workers never reconnect,
and ``dtf-core worker`` relaunching its own child covers only the child.
"""

from __future__ import annotations

import os
import re

from dtf_core.deploy import commands
from dtf_core.deploy.common import header
from dtf_core.deploy.settings import FILE_NAMES, DeploySettings

DEFAULT_BIN = "/opt/dtf/.venv/bin/dtf-core"
KEY_DIR = "/etc/dtf"


def quote(arg: str) -> str:
    """One ExecStart argument as systemd reads it: ``%`` and ``$`` doubled (except
    the ``%d/`` credential paths this module writes), quoted when it has spaces."""
    arg = re.sub(r"%(?!d/)", "%%", arg).replace("$", "$$")
    if re.search(r"[\s\"'\\;]", arg) or not arg:
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def _credentials(s: DeploySettings, keys: list[str]) -> tuple[dict[str, str], list[str]]:
    host = s.paths(KEY_DIR)
    used = [k for k in keys if k in host]
    paths = {k: f"%d/{FILE_NAMES[k]}" for k in used}
    lines = [f"LoadCredential={FILE_NAMES[k]}:{host[k].replace('%', '%%')}" for k in used]
    return paths, lines


def _writable(state: str, *paths: str) -> list[str]:
    # StateDirectory= makes /var/lib/dtf writable; anything outside it must be named
    # (the leading '-': a directory that does not exist yet is not an error).
    dirs = sorted({os.path.dirname(p.rstrip("/")) or "/" for p in paths})
    out = []
    for d in dirs:
        if not (d + "/").startswith(state + "/"):
            value = "-" + d.replace("%", "%%")
            out.append(
                f'ReadWritePaths="{value}"' if re.search(r"\s", d) else f"ReadWritePaths={value}"
            )
    return out


def _unit(s: DeploySettings, what: str, argv: list[str], service: list[str]) -> str:
    exe = s.dtf_core or DEFAULT_BIN
    lines = [
        header("systemd").rstrip(),
        "[Unit]",
        f"Description=dtf {what} (dtf-core {argv[0]})",
        "Wants=network-online.target",
        "After=network-online.target"
        + (f" {s.name}-scheduler.service" if what != "scheduler" else ""),
        "",
        "[Service]",
        "Type=simple",
        f"User={s.user}",
        f"Group={s.user}",
        "ExecStart=" + " ".join(quote(a) for a in [exe, *argv]),
        *service,
        "Restart=always",
        "RestartSec=2",
        # The main process passes SIGTERM on to its own child; the rest of the group
        # (test processes a task left behind) is killed when the stop times out.
        "KillMode=mixed",
        "TimeoutStopSec=30",
        "Environment=PYTHONUNBUFFERED=1",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def generate(s: DeploySettings) -> dict[str, str]:
    tls = ["tls_ca", "tls_cert", "tls_key"]
    state = f"/var/lib/{s.name}"
    paths, creds = _credentials(s, ["worker_key", *tls])
    scheduler = _unit(
        s, "scheduler", commands.scheduler(s, paths),
        [*creds, f"StateDirectory={s.name}/scheduler", f"WorkingDirectory={state}/scheduler",
         "ProtectSystem=strict"],
    )  # fmt: skip
    paths, creds = _credentials(s, ["api_key", "result_key", *tls])
    serve = _unit(
        s, "coordinator service", commands.serve(s, paths),
        [*creds, f"StateDirectory={s.name}", f"WorkingDirectory={state}", "ProtectSystem=strict",
         *_writable(state, s.db, s.workdir + "/x")],
    )  # fmt: skip
    paths, creds = _credentials(s, ["worker_token", "result_key", *tls])
    # Workers run the suites' own tests, which may write anywhere a user may: only
    # the OS itself is read-only (ProtectSystem=full). The dtf user owns the state
    # directory, so serve's upload directory under it can be made here too (suites
    # are unpacked at the same path on every worker).
    worker = _unit(
        s, "worker", commands.worker(s, paths),
        [*creds, f"StateDirectory={s.name} {s.name}/worker",
         f"WorkingDirectory={state}/worker", "ProtectSystem=full"],
    )  # fmt: skip
    sysusers = (
        header("systemd")
        + "# Copy to /etc/sysusers.d/ and run `systemd-sysusers` (or: useradd --system).\n"
        + f'u {s.user} - "dtf services" {state}\n'
    )
    return {
        f"{s.name}-scheduler.service": scheduler,
        f"{s.name}-serve.service": serve,
        f"{s.name}-worker.service": worker,
        f"{s.name}-sysusers.conf": sysusers,
    }
