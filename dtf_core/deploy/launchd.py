"""``dtf-core deploy launchd``: LaunchDaemon property lists for macOS hosts.

launchd has no credential store for daemons, so the key files stay where they
are and must be readable by the daemon's user only (``chmod 600``, owned by
it). ``KeepAlive`` restarts a process whenever it exits, like systemd's
``Restart=always``; ``ThrottleInterval`` spaces the restarts.
"""

from __future__ import annotations

import plistlib
from typing import Any

from dtf_core.deploy import commands
from dtf_core.deploy.common import header
from dtf_core.deploy.settings import DeploySettings

DEFAULT_BIN = "/opt/dtf/.venv/bin/dtf-core"
KEY_DIR = "/usr/local/etc/dtf"
STATE = "/usr/local/var/dtf"
LOGS = "/usr/local/var/log/dtf"


def label(s: DeploySettings, role: str) -> str:
    return f"org.{s.name}.{role}"


def _plist(s: DeploySettings, role: str, argv: list[str], workdir: str) -> str:
    doc: dict[str, Any] = {
        "Label": label(s, role),
        "ProgramArguments": [s.dtf_core or DEFAULT_BIN, *argv],
        "UserName": s.user,
        "WorkingDirectory": workdir,
        "RunAtLoad": True,
        "KeepAlive": True,
        "ThrottleInterval": 5,
        # The process passes SIGTERM on to its child; launchd waits this long before SIGKILL.
        "ExitTimeOut": 30,
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "StandardOutPath": f"{LOGS}/{role}.log",
        "StandardErrorPath": f"{LOGS}/{role}.log",
    }
    text = plistlib.dumps(doc, fmt=plistlib.FMT_XML, sort_keys=False).decode()
    head, sep, rest = text.partition("<plist ")
    note = header("launchd", "<!--").rstrip() + " -->\n"
    return head + note + sep + rest


def generate(s: DeploySettings) -> dict[str, str]:
    paths = s.paths(KEY_DIR)
    # Defaults that name Linux places become their macOS ones; explicit ones stay.
    db = s.db.replace("/var/lib/dtf", STATE, 1)
    workdir = s.workdir.replace("/var/lib/dtf", STATE, 1)
    return {
        f"{label(s, 'scheduler')}.plist": _plist(
            s, "scheduler", commands.scheduler(s, paths), STATE
        ),
        f"{label(s, 'serve')}.plist": _plist(
            s, "serve", commands.serve(s, paths, db=db, workdir=workdir), STATE
        ),
        f"{label(s, 'worker')}.plist": _plist(s, "worker", commands.worker(s, paths), STATE),
    }
