"""How ``dtf-core worker`` gives its Dask worker the credentials, out of tasks' reach.

A task runs arbitrary code in the worker process (benchmarks) or as its child
(pytest, commands), so whatever the worker's command line, environment or open
files name, a task can read: ``/proc/<pid>/cmdline`` and ``environ`` of the
worker and of its parents, the files named there, ``/proc/<pid>/fd``. So:

* the supervisor (``dtf-core worker``) reads the token file and the result key
  file itself, and writes both into a pipe before it starts the worker; the
  worker gets only the pipe's number (``$DTF_CREDENTIALS_FD``, not a secret),
  reads it to the end and closes it before any task can run. No credential is
  named on the worker's command line or in its environment
  (``/proc/<pid>/environ`` keeps what a process started with, whatever it
  deletes later), and no open descriptor leads to one;
* with ``--task-user USER`` the supervisor (root) starts the worker, and so
  every task, as ``USER``: the key and token files (owner-only, checked) and the
  supervisor's own ``/proc`` entries stay unreadable to tasks
  (:class:`TaskUser`).

What stays: the worker process must hold the result key to sign results, and
holds the token until it has registered (then drops it). A task in the worker
process can read the key from memory: a compromised worker can sign results for
what it runs (docs/security.md).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtf_core.errors import OptionError

FD_ENV = "DTF_CREDENTIALS_FD"


def encode(token: str, result_key: bytes | None) -> bytes:
    key = base64.b64encode(result_key).decode() if result_key else None
    return json.dumps({"token": token, "result_key": key}).encode()


def decode(blob: bytes) -> tuple[str, bytes | None]:
    try:
        body = json.loads(blob)
        token = str(body["token"])
        key = body.get("result_key")
        return token, base64.b64decode(key) if key else None
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f"dtf: malformed credentials handed to this worker: {exc}") from None


def pipe_holding(blob: bytes) -> int:
    """A pipe's read end with ``blob`` written and the write end closed (the
    caller passes it to its child and closes its own copy)."""
    r, w = os.pipe()
    try:
        if len(blob) > 60_000:  # a pipe buffers 64 KiB; a token and a key are < 1 KiB
            raise OptionError("the worker credentials are too large to hand over")
        os.write(w, blob)
    finally:
        os.close(w)
    return r


def take_from_env() -> bytes | None:
    """The credentials a supervisor handed this process, read once: the fd is
    closed and the variable dropped, so neither a child nor a later reader finds it."""
    fd_text = os.environ.pop(FD_ENV, None)
    if not fd_text:
        return None
    fd = int(fd_text)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


@dataclass(frozen=True)
class TaskUser:
    """The unprivileged account the Dask worker (and every task) runs as."""

    name: str
    uid: int
    gid: int

    @classmethod
    def resolve(cls, spec: str) -> TaskUser:
        import pwd  # POSIX only: `dtf-core worker` without --task-user runs anywhere

        if os.geteuid() != 0:
            raise OptionError(
                f"--task-user {spec} needs dtf-core worker to start as root (it keeps the "
                "credentials and starts the worker as that user)"
            )
        try:
            pw = pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
            user = cls(pw.pw_name, pw.pw_uid, pw.pw_gid)
        except KeyError:
            if not spec.isdigit():
                raise OptionError(f"--task-user {spec}: no such user on this host") from None
            user = cls(spec, int(spec), int(spec))  # a bare uid works without an account
        if user.uid == 0:
            raise OptionError("--task-user must not be root: tasks would read the credentials")
        return user

    def wrap(self, argv: list[str], home: str) -> tuple[list[str], dict[str, Any]]:
        """``argv`` and Popen options that start it as this user in ``home``.
        setpriv (util-linux) changes the ids right before exec and keeps its
        capabilities until then, so the interpreter may sit where only root can
        look (a pyenv under /root); the worker it becomes has none. Without it,
        Popen's own switch does, when the user can reach the interpreter."""
        setpriv = shutil.which("setpriv")
        if setpriv:
            ids = [f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]
            return [setpriv, *ids, "--", *argv], {"cwd": home}
        return argv, {"user": self.uid, "group": self.gid, "extra_groups": [], "cwd": home}

    def home(self) -> Path:
        """A fresh private directory for the worker's files (Dask's local
        directory, $HOME): the supervisor's own may be unreadable to the user."""
        d = Path(tempfile.mkdtemp(prefix="dtf-worker-"))
        os.chown(d, self.uid, self.gid)
        return d

    @staticmethod
    def cleanup(home: Path) -> None:
        shutil.rmtree(home, ignore_errors=True)
