"""The GC freeze of a pytest that dtf runs (loaded by :mod:`dtf_core.testing.plugin`).

Once collection is done, the collected modules, items and fixture definitions
live until the session ends, and every full pass of the cyclic garbage
collector walks them again: on networkx's suite in one process the tests took
75.8 CPU s without a freeze and 61.9 s with it. So before the tests of each
file they are moved out of the collector's reach (``gc.freeze``). Frozen
objects are missing from ``gc.get_objects()`` and ``gc.get_referrers()``, so a
file that inspects the collector runs unfrozen; the ini option
``dtf_gc_freeze = false`` turns the freeze off for a whole suite
(docs/testing.md).
"""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest

# Words in a test file or a conftest.py on its way that say its tests look at
# the collector: frozen objects are missing from what these return, so a leak
# check could pass here and fail under plain pytest. Such a file's tests run
# with everything unfrozen, as under plain pytest; the others frozen.
_WATCHES_GC = re.compile(
    rb"get_objects|get_referrers|get_referents|gc\.garbage|get_freeze_count|unfreeze"
    rb"|objgraph|pympler|muppy"
)


class _Freezer:
    """The freeze, file by file: on before the first test of a file that does
    not inspect the collector, off before the first of one that does."""

    def __init__(self, watched: set[Path]) -> None:
        self.watched = watched
        self.frozen = False

    def before(self, item: pytest.Item) -> None:
        if item.path in self.watched:
            if self.frozen:
                gc.unfreeze()
                self.frozen = False
        elif not self.frozen:
            # Collect first, so the garbage of collection is freed, not kept forever.
            gc.collect()
            gc.freeze()
            self.frozen = True


_freezer_key = pytest.StashKey[_Freezer]()


def prepare(session: pytest.Session) -> None:
    """Once collection is done: which collected files must run unfrozen."""
    if session.config.getini("dtf_gc_freeze"):
        session.config.stash[_freezer_key] = _Freezer(_watching_gc(session))


def before(item: pytest.Item) -> None:
    """Before each test: frozen or not, as its file wants."""
    freezer = item.config.stash.get(_freezer_key, None)
    if freezer is not None:
        freezer.before(item)


def _watching_gc(session: pytest.Session) -> set[Path]:
    """The collected test files that mention the collector's object lists, or
    under a conftest.py (up to the rootdir) that does: a text search, a few ms."""
    root = session.config.rootpath
    said: dict[Path, bool] = {}

    def says(path: Path) -> bool:
        if path not in said:
            try:
                said[path] = bool(_WATCHES_GC.search(path.read_bytes()))
            except OSError:
                said[path] = False  # no conftest.py there
        return said[path]

    watched = set()
    for path in {item.path for item in session.items}:
        chain = [path]
        for parent in path.parents:
            chain.append(parent / "conftest.py")
            if parent == root or root not in parent.parents:
                break
        if any(says(p) for p in chain):
            watched.add(path)
    return watched
