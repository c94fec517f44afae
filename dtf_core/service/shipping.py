"""A run's files to workers on other hosts, through their content-hash cache.

The service unpacked the upload into ``<workdir>/<run_id>/``. For the run it
publishes, on the scheduler, one blob per distinct file content (named by run
and sha256) and registers :class:`SuiteFilesPlugin`, which carries only the
manifest: path, sha256, size and mode of every file. On each worker (also
those that join mid-run) the plugin asks the scheduler only for the hashes its
:class:`~dtf_core.worker.filecache.FileCache` lacks, stores them, and copies
the run's directory together from the cache at the same absolute path. So a
second run of an unchanged suite moves no file bytes to a worker that ran the
first, and a changed file moves only itself. Each worker logs what moved and
keeps it in :data:`STATS` (dest -> counts, the last 100 runs).

Where the directory already exists on the worker (the service's own host, or
a shared filesystem) nothing is fetched and nothing removed at teardown.
Blobs are deleted from the scheduler when the run ends (:func:`withdraw`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import Client, WorkerPlugin
from distributed.protocol import Serialized, deserialize

from dtf_core.service.bundle import MARKER
from dtf_core.worker.filecache import FileCache

logger = logging.getLogger("distributed.dtf")

# What each worker process fetched per run directory (dest -> counts).
STATS: dict[str, dict[str, int]] = {}
BATCH_BYTES = 8 * 2**20  # blobs asked for per scheduler round trip


@dataclass(frozen=True)
class Entry:
    path: str  # relative, POSIX
    sha256: str
    size: int
    mode: int


def manifest(run_dir: str | os.PathLike[str]) -> list[Entry]:
    """Every regular file under ``run_dir`` (the unpacked upload)."""
    base = Path(run_dir)
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if p.is_symlink() or not p.is_file() or (p.parent == base and name == MARKER):
                continue
            data = p.read_bytes()
            out.append(Entry(p.relative_to(base).as_posix(), hashlib.sha256(data).hexdigest(),
                             len(data), p.stat().st_mode & 0o777))  # fmt: skip
    return out


def blob_name(run_id: str, digest: str) -> str:
    return f"dtf-blob-{run_id}-{digest}"


def ship(
    client: Client, run_id: str, run_dir: str, plugin_name: str, *, dest: str | None = None
) -> list[str]:
    """Publish the run's blobs and register the plugin; the blob names (for
    :func:`withdraw`). Workers put the files at ``dest`` (default: ``run_dir``,
    the same absolute path as here)."""
    entries = manifest(run_dir)
    blobs: dict[str, bytes] = {}
    for e in entries:
        if e.sha256 not in blobs:
            blobs[blob_name(run_id, e.sha256)] = (Path(run_dir) / e.path).read_bytes()
    if blobs:
        client.publish_dataset(override=True, **blobs)
    client.register_plugin(SuiteFilesPlugin(run_id, dest or run_dir, entries), name=plugin_name)
    return list(blobs)


def withdraw(client: Client, plugin_name: str, blobs: list[str]) -> None:
    with contextlib.suppress(Exception):
        client.unregister_worker_plugin(plugin_name)
    for name in blobs:
        with contextlib.suppress(Exception):
            client.unpublish_dataset(name)


class SuiteFilesPlugin(WorkerPlugin):
    """Puts a run's files at the same absolute path on every worker, moving
    only the contents that worker's cache lacks."""

    def __init__(self, run_id: str, dest: str, entries: list[Entry]) -> None:
        self.run_id, self.dest, self.entries = run_id, dest, entries
        self._created = False

    async def setup(self, worker: Any) -> None:
        if os.path.isdir(self.dest):
            return
        try:
            self._created = await self._materialise(worker)
        except Exception as exc:
            # Never fail the worker over it: the run's tasks report the missing
            # files themselves, with their own task ids.
            logger.warning("dtf: could not put the suite files at %s: %s", self.dest, exc)

    async def _materialise(self, worker: Any) -> bool:
        """Whether this worker made the directory (another worker process on
        the same host may have made it first)."""
        began = time.monotonic()
        cache = FileCache.from_config()
        sizes = {e.sha256: e.size for e in self.entries}
        missing = [d for d in sizes if not cache.has(d)]
        fetched = 0
        batch: list[str] = []
        for i, digest in enumerate(missing):
            batch.append(digest)
            if sum(sizes[d] for d in batch) >= BATCH_BYTES or i == len(missing) - 1:
                fetched += await self._fetch(worker, cache, batch)
                batch = []
        tmp = Path(f"{self.dest}.part-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            for e in self.entries:
                cache.copy_to(e.sha256, tmp / e.path, e.mode)
            (tmp / MARKER).touch()
            try:
                os.rename(tmp, self.dest)  # whole or not at all
            except OSError:
                if not os.path.isdir(self.dest):
                    raise
                return False  # a sibling worker on this host was first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        while len(STATS) >= 100:
            STATS.pop(next(iter(STATS)))
        STATS[self.dest] = stats = {
            "files": len(self.entries), "bytes": sum(e.size for e in self.entries),
            "fetched_files": len(missing), "fetched_bytes": fetched,
        }  # fmt: skip
        logger.info(
            "dtf: suite files of run %s at %s: %d files, %d fetched (%d bytes), the rest from "
            "the cache (%.2fs)", self.run_id, self.dest, stats["files"],
            stats["fetched_files"], fetched, time.monotonic() - began,
        )  # fmt: skip
        return True

    async def _fetch(self, worker: Any, cache: FileCache, digests: list[str]) -> int:
        names = [blob_name(self.run_id, d) for d in digests]
        answers = await worker.scheduler.publish_get(names=names)
        moved = 0
        for digest, name, answer in zip(digests, names, answers, strict=True):
            if answer is None:
                raise RuntimeError(f"the scheduler holds no {name}")
            data = answer["data"]
            if isinstance(data, Serialized):
                data = deserialize(data.header, data.frames)
            cache.put(digest, bytes(data))
            moved += len(data)
        return moved

    def teardown(self, worker: Any) -> None:
        if self._created:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.dest)
        with contextlib.suppress(Exception):
            FileCache.from_config().prune()
