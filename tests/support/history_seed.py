"""A seeded benchmark history in a real DuckDB file, shared by the analysis tests.

It uses scripts/seed_history.py itself (loaded by path: scripts/ is no package),
so the tests exercise the same generator users try the analysis with.
"""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType
from typing import Any

from dtf_core.store import Store

ROOT = pathlib.Path(__file__).resolve().parents[2]


def seed_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_history", ROOT / "scripts/seed_history.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def seeded_db(db: pathlib.Path, **history: Any) -> tuple[pathlib.Path, Any]:
    """Write ``make_history(**history)`` into ``db``; the db and the injected truth."""
    frame, truth = seed_module().make_history(**history)
    with Store(db) as s:
        s.import_samples(frame, suite="seed", source="test")
    return db, truth
