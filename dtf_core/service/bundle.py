"""A suite's files in transit: packed by ``submit``, unpacked by ``serve``
(workers on other hosts get them through :mod:`dtf_core.service.shipping`).

``submit`` packs the suite's directory (or ``--root``) into a tar.gz, leaving
out virtual environments, VCS and cache directories. ``serve`` unpacks it into
``<workdir>/<run_id>/`` and loads the suite from there, so every path in the
run is under that directory. Workers on the service's host read it in place;
every other worker gets the same files at the same path from its content-hash
cache (:mod:`dtf_core.service.shipping`).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from dtf_core.errors import OptionError, UploadTooLargeError
from dtf_core.service.limits import size_text

logger = logging.getLogger("distributed.dtf")

SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "__pycache__", ".dtf", ".pytest_cache",
     ".mypy_cache", ".ruff_cache", "node_modules", ".tox", ".nox"}
)  # fmt: skip
MARKER = ".dtf-unpacked"


def pack(root: str | os.PathLike[str], limit: int) -> bytes:
    """``root`` as tar.gz bytes; :class:`OptionError` past ``limit`` bytes."""
    base = Path(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if path.is_symlink() or not path.is_file() or name.endswith(".duckdb"):
                    continue
                tar.add(path, arcname=path.relative_to(base).as_posix(), recursive=False)
                if buf.tell() > limit:
                    raise OptionError(
                        f"{base} is more than {limit / 1e6:.0f} MB packed (reached at {path}); "
                        "give a smaller --root, or move data files out of the suite directory"
                    )
    data = buf.getvalue()
    if len(data) > limit:
        raise OptionError(f"{base} is {len(data) / 1e6:.1f} MB packed, above {limit / 1e6:.0f} MB")
    return data


def unpack(
    data: bytes, dest: str | os.PathLike[str], *, unpacked_limit: int, entry_limit: int
) -> None:
    """Extract ``data`` into ``dest`` (created); refuses links, devices, absolute
    or ``..`` paths (:class:`OptionError`), and more than ``entry_limit``
    entries or ``unpacked_limit`` bytes once decompressed
    (:class:`UploadTooLargeError`). On any refusal nothing is left at ``dest``.

    The archive is decompressed as a stream through a counter, one member at a
    time: a gzip bomb, or a tar header that claims gigabytes of metadata, stops
    at the limit instead of filling memory or disk first.
    """
    target = Path(dest)
    created = not target.exists()
    # Headers and padding are at most 1 kB per entry, plus the end-of-archive record.
    stream = _Bounded(
        gzip.GzipFile(fileobj=io.BytesIO(data)),
        unpacked_limit + 1024 * entry_limit + 20480,
        unpacked_limit,
    )
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            total = 0
            for entries, m in enumerate(tar, start=1):
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                    raise OptionError(f"the suite archive holds an unsafe entry: {m.name!r}")
                total += m.size
                if entries > entry_limit:
                    raise UploadTooLargeError(
                        f"the suite archive holds more than {entry_limit} files and directories "
                        "(serve --entry-limit); upload a smaller --root"
                    )
                if total > unpacked_limit:
                    raise stream.too_large()
                tar.extract(m, target, filter="data")
        (target / MARKER).touch()
    except BaseException as exc:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, (tarfile.TarError, EOFError, OSError, zlib.error)):
            raise OptionError(f"the suite archive cannot be unpacked: {exc}") from None
        raise


class _Bounded(io.RawIOBase):
    """A read-only stream that raises once more than ``limit`` bytes came through."""

    def __init__(self, inner: gzip.GzipFile, limit: int, shown: int) -> None:
        self.inner, self.limit, self.shown, self.seen = inner, limit, shown, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.inner.readinto(buffer)
        self.seen += n
        if self.seen > self.limit:
            raise self.too_large()
        return n

    def too_large(self) -> UploadTooLargeError:
        return UploadTooLargeError(
            f"the suite archive unpacks to more than {size_text(self.shown)} "
            "(serve --unpacked-limit); keep data files out of the suite directory"
        )
