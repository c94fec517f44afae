"""Revoked token ids, kept in a file next to the key that signed the tokens.

``dtf-core token revoke ID|FILE --secret-file KEY`` appends to ``KEY.revoked``;
whoever checks tokens signed with ``KEY`` (``serve`` for the API key, the
scheduler for the worker admission key) reads that file again whenever it
changes, so a revocation takes effect on the next request or join without a
restart. One line per token: ``<token id> <unix time after which it may go>``;
an entry is dropped once the token it names has expired anyway.

A list that exists but cannot be read fails closed: every token signed with the
key is refused until it is fixed (a revocation must not be lost silently).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

from dtf_core.errors import AuthError, OptionError

SUFFIX = ".revoked"


def revocation_file(key_file: str | os.PathLike[str]) -> Path:
    """Where the revocations of tokens signed with ``key_file`` live."""
    return Path(f"{os.fspath(key_file)}{SUFFIX}")


def parse(text: str, now: float) -> dict[str, float]:
    """Token id -> keep-until of every live entry in a list's ``text``."""
    entries: dict[str, float] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            until = float(parts[1])
        except ValueError:
            raise ValueError(f"line {n} is not '<token id> <unix time>'") from None
        if until > now:
            entries[parts[0]] = until
    return entries


def add(path: Path, token_id: str, until: float, now: float | None = None) -> int:
    """Record ``token_id`` as revoked until ``until``; the number of live entries.
    Expired entries are dropped on the way, and the file is replaced whole
    (owner-only) so that a reader never sees half a line."""
    if not token_id or any(c.isspace() or c == "#" for c in token_id):
        raise OptionError(f"{token_id!r} is not a token id")
    now = time.time() if now is None else now
    try:
        old = path.read_text() if path.exists() else ""
        entries = parse(old, now)
    except (OSError, ValueError) as exc:
        raise OptionError(f"cannot read the revocation list {path}: {exc}") from None
    entries[token_id] = max(until, entries.get(token_id, 0.0))
    body = "# dtf revoked tokens: <token id> <unix time the entry may be dropped>\n"
    body += "".join(f"{tid} {int(u) + 1}\n" for tid, u in sorted(entries.items()))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(body)
    os.replace(tmp, path)
    return len(entries)


class RevocationList:
    """The revoked ids in ``path``, re-read when the file changes (one ``stat``
    per check). A missing file revokes nothing."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._ids: dict[str, float] = {}
        self._error = ""

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._ids, self._error = None, {}, ""
            return
        except OSError as exc:
            self._error = f"cannot read the revocation list {self.path}: {exc.strerror}"
            return
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sig == self._seen and not self._error:
            return
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and os.name != "nt":
            self._error = f"the revocation list {self.path} is writable by others"
            return
        try:
            self._ids = parse(self.path.read_text(), time.time())
        except (OSError, ValueError) as exc:
            self._error = f"cannot read the revocation list {self.path}: {exc}"
            return
        self._seen, self._error = sig, ""

    def check(self, token_id: str) -> None:
        """:class:`AuthError` (401) when ``token_id`` is revoked, or when the
        list cannot be read (fail closed)."""
        with self._lock:
            self._refresh()
            if self._error:
                raise AuthError(f"token refused: {self._error}")
            if token_id in self._ids:
                raise AuthError("token revoked")

    def listed(self, token_id: str) -> bool:
        """Whether ``token_id`` is on the list as last read (an unreadable list
        keeps what it said before: used to drop connected workers, not to admit)."""
        with self._lock:
            self._refresh()
            return token_id in self._ids
