"""Retention of upload directories: ``<workdir>/<run_id>/`` of finished runs
are removed once there are more than ``keep`` of them, or once older than
``keep_for`` seconds; at ``serve`` start and every ``interval`` after.

Only directories ``bundle.unpack`` made (they hold its marker file) are
candidates: ``--workdir`` may be shared with other things. A directory whose
run is not finished, or whose run's thread still uses it, is never removed,
however old: :meth:`RunManager.in_use` names them, read under the manager's
lock at each pass. A directory's age is its modification time, which the run
manager sets when the run ends.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

from dtf_core.service.bundle import MARKER

logger = logging.getLogger("dtf.service")


def prune_uploads(
    workdir: Path,
    in_use: Callable[[], Collection[str]],
    *,
    keep: int,
    keep_for: float,
    now: float | None = None,
) -> list[str]:
    """Remove what retention allows under ``workdir``; the run ids removed.
    ``keep`` 0 means no count limit, ``keep_for`` 0 no age limit.

    ``in_use`` is asked after the directory is listed: a directory listed
    belongs to a run that had started by then, so it is in the answer unless
    its run has finished."""
    now = time.time() if now is None else now
    candidates: list[tuple[float, Path]] = []
    try:
        children = list(workdir.iterdir())
    except OSError:
        return []
    for child in children:
        try:
            if child.is_symlink() or not (child / MARKER).is_file():
                continue
            candidates.append((child.stat().st_mtime, child))
        except OSError:
            continue
    candidates.sort(key=lambda c: c[0], reverse=True)  # newest first
    busy = set(in_use())
    removed: list[str] = []
    for rank, (mtime, path) in enumerate(candidates):
        too_many = keep > 0 and rank >= keep
        too_old = keep_for > 0 and now - mtime > keep_for
        if (too_many or too_old) and path.name not in busy:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


class UploadJanitor:
    """Runs :func:`prune_uploads` now and then every ``interval`` seconds on a daemon thread."""

    def __init__(
        self,
        workdir: Path,
        in_use: Callable[[], Collection[str]],
        *,
        keep: int,
        keep_for: float,
        interval: float,
    ) -> None:
        self.workdir, self.in_use = workdir, in_use
        self.keep, self.keep_for, self.interval = keep, keep_for, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prune(self) -> list[str]:
        removed = prune_uploads(self.workdir, self.in_use, keep=self.keep, keep_for=self.keep_for)
        if removed:
            logger.info("removed %d old upload directories: %s", len(removed), " ".join(removed))
        return removed

    def start(self) -> None:
        self.prune()
        if self.interval > 0 and (self.keep or self.keep_for):
            self._thread = threading.Thread(target=self._loop, daemon=True, name="dtf-uploads")
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.prune()
            except Exception:  # a full disk or a permission must not end the service
                logger.exception("pruning upload directories failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
