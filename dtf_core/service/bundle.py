"""A suite's files in transit: packed by ``submit``, unpacked by ``serve``,
shipped to workers by :class:`SuiteFilesPlugin`.

``submit`` packs the suite's directory (or ``--root``) into a tar.gz, leaving
out virtual environments, VCS and cache directories. ``serve`` unpacks it into
``<workdir>/<run_id>/`` and loads the suite from there, so every path in the
run is under that directory. Workers on the service's host read it in place;
:class:`SuiteFilesPlugin` (a Dask worker plugin registered for the run) unpacks
the same archive at the same path on every other worker, including workers
that join during the run, and removes it when the run ends.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from distributed import WorkerPlugin

from dtf_core.errors import OptionError

logger = logging.getLogger("distributed.dtf")

SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "__pycache__", ".dtf", ".pytest_cache",
     ".mypy_cache", ".ruff_cache", "node_modules", ".tox", ".nox"}
)  # fmt: skip
_MARKER = ".dtf-unpacked"


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


def unpack(data: bytes, dest: str | os.PathLike[str], limit: int) -> None:
    """Extract ``data`` into ``dest`` (created); refuses links, devices, absolute
    or ``..`` paths, and more than ``limit`` bytes once unpacked."""
    target = Path(dest)
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                    raise OptionError(f"the suite archive holds an unsafe entry: {m.name!r}")
                total += m.size
                if total > limit * 4:  # gzip of text is ~4x: a bomb, not a suite
                    raise OptionError("the suite archive unpacks to too many bytes")
            target.mkdir(parents=True, exist_ok=True)
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise OptionError(f"the suite archive cannot be unpacked: {exc}") from None
    (target / _MARKER).touch()


class SuiteFilesPlugin(WorkerPlugin):
    """Puts a run's files at the same absolute path on every worker.

    ``setup`` runs on each worker when registered and on each worker that joins
    later. Where the directory already exists (the service's own host, or a
    shared filesystem) it does nothing and leaves it alone at teardown.
    """

    def __init__(self, data: bytes, dest: str, limit: int) -> None:
        self.data, self.dest, self.limit = data, dest, limit
        self._created = False

    def setup(self, worker: Any) -> None:
        if os.path.isdir(self.dest):
            return
        try:
            unpack(self.data, self.dest, self.limit)
            self._created = True
        except Exception as exc:
            # Never fail the worker over it: the run's tasks will report the
            # missing files themselves, with their own task ids.
            logger.warning("dtf: could not unpack the suite into %s: %s", self.dest, exc)

    def teardown(self, worker: Any) -> None:
        if self._created:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.dest)
