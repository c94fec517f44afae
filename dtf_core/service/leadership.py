"""Who leads a database, and who stands by: what ``GET /v1/coordinator`` tells.

The leader is whoever holds DuckDB's write lock (:mod:`dtf_core.service.serve`);
a standby cannot open the file at all while the leader holds it, so the
coordinators of one database also meet in a folder beside it,
``<db>.coordinators/``: each writes one small JSON file about itself (its URL,
pid, role, since when) and rewrites it at every ``dtf.service.standby-poll``
while it waits. The leader lists the standby files that are fresh; a file
older than a few polls belongs to a standby that died without cleaning up, and
is ignored (and removed).

The console polls the route and shows it in its header: which coordinator it
is attached to, whether it leads, since when, the standbys it knows, and the
Dask dashboard link.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtf_core import config

STALE_POLLS = 5  # a standby file not rewritten for this many polls is a dead standby
_WILDCARD = ("", "0.0.0.0", "::", "[::]")


def public_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL others reach a coordinator listening on ``host`` at (a wildcard
    bind is reached by the machine's name)."""
    name = socket.getfqdn() if host in _WILDCARD else host
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"{scheme}://{name}:{port}"


@dataclass
class Presence:
    """This coordinator's file in ``<db>.coordinators/``."""

    db_path: str
    url: str
    pid: int = field(default_factory=os.getpid)
    role: str = "standby"
    since: float = field(default_factory=time.time)  # started waiting, or became leader
    took_over: bool = False  # became the leader after standing by

    @property
    def folder(self) -> Path:
        return Path(str(self.db_path) + ".coordinators")

    @property
    def path(self) -> Path:
        return self.folder / f"{socket.gethostname()}-{self.pid}.json"

    def beat(self) -> None:
        """Write (or refresh) this coordinator's file; a failure only loses the
        listing, never the service."""
        record = {"url": self.url, "pid": self.pid, "host": socket.gethostname(),
                  "role": self.role, "since": self.since, "seen": time.time()}  # fmt: skip
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record))
            tmp.replace(self.path)

    def lead(self, took_over: bool = False) -> None:
        """This coordinator holds the database's lock from now on (``took_over``:
        after standing by while another led)."""
        self.role, self.since, self.took_over = "leader", time.time(), took_over
        self.beat()

    def leave(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def standbys(self, now: float | None = None) -> list[dict[str, Any]]:
        """The standbys waiting on this database now (fresh files only), oldest first."""
        now = time.time() if now is None else now
        stale = STALE_POLLS * config.seconds("service.standby-poll") + 5.0
        found = []
        for f in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                record = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if f == self.path or record.get("role") != "standby":
                continue
            if now - float(record.get("seen") or 0) > stale:
                with contextlib.suppress(OSError):
                    f.unlink()
                continue
            found.append({k: record.get(k) for k in ("url", "pid", "host", "since", "seen")})
        return sorted(found, key=lambda r: float(r.get("since") or 0))

    def describe(self, **extra: Any) -> dict[str, Any]:
        """The body of ``GET /v1/coordinator``."""
        return {
            "url": self.url, "leader": self.role == "leader", "since": self.since,
            "took_over": self.took_over, "pid": self.pid, "host": socket.gethostname(),
            "database": str(Path(self.db_path).resolve()), "standbys": self.standbys(),
            **extra,
        }  # fmt: skip
