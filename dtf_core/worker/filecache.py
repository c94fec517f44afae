"""A worker's cache of suite files, kept by content hash (sha256).

A run's files reach a worker on another host as a manifest (path, hash, size,
mode) and, for the hashes this cache lacks, the bytes (:mod:`dtf_core.service.shipping`).
Files are written once under ``ROOT/ab/abcdef...`` (atomically: a temporary
name, then a rename, so a crashed write never looks like a cached file) and
copied into each run's directory, never linked: a test that rewrites a file
of its own run cannot change the cached copy another run will get.

Bounded by age and size (``dtf.worker.file-cache-max-age`` / ``-max-size``):
:meth:`FileCache.prune` drops entries unused for longer than the age, then the
least recently used until the total fits. Using an entry touches its mtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dask.utils

from dtf_core import config


def default_root() -> Path:
    configured = config.get("worker.file-cache")
    if configured:
        return Path(str(configured)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "dtf", "files")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FileCache:
    root: Path
    max_bytes: int
    max_age_s: float

    @classmethod
    def from_config(cls) -> FileCache:
        return cls(
            default_root(),
            int(dask.utils.parse_bytes(str(config.get("worker.file-cache-max-size")))),
            config.seconds("worker.file-cache-max-age"),
        )

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, digest: str, data: bytes) -> None:
        """Store ``data`` under ``digest``; ``ValueError`` if they do not match."""
        if sha256(data) != digest:
            raise ValueError(f"the bytes sent for {digest[:12]} have another sha256")
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def copy_to(self, digest: str, dest: Path, mode: int) -> None:
        """Copy the cached file to ``dest`` (parents created) and mark it used."""
        src = self.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        os.chmod(dest, mode & 0o777)
        with contextlib.suppress(OSError):
            os.utime(src)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last used, size, path) of every cached file."""
        out = []
        if self.root.is_dir():
            for sub in self.root.iterdir():
                if sub.is_dir():
                    for f in sub.iterdir():
                        if f.name.startswith(".part-"):
                            continue
                        with contextlib.suppress(OSError):
                            st = f.stat()
                            out.append((st.st_mtime, st.st_size, f))
        return out

    def size(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def prune(self, now: float | None = None) -> int:
        """Drop what is too old, then the least recently used past the size
        bound; the number of files removed."""
        now = time.time() if now is None else now
        removed = 0
        kept = []
        for used, size, f in sorted(self.entries()):
            if self.max_age_s and now - used > self.max_age_s:
                removed += _unlink(f)
            else:
                kept.append((used, size, f))
        total = sum(size for _, size, _ in kept)
        for _, size, f in kept:  # oldest first
            if total <= self.max_bytes:
                break
            removed += _unlink(f)
            total -= size
        return removed


def _unlink(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except OSError:
        return 0
