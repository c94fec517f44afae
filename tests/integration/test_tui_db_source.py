"""The console's history source on the seeded database (seeding writes ~60 runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.tui_seed import LATEST, NOW, seed

from dtf_tui.sources import SourceError
from dtf_tui.sources.db import DbSource


def test_db_source_reads_the_seeded_history(tmp_path: Path) -> None:
    source = DbSource(str(seed(tmp_path / "h.duckdb")), clock=lambda: NOW)
    snap = source.poll()
    assert snap.focused_run is not None and snap.focused_run.run_id == LATEST
    assert len(snap.tasks) == 11 and len(snap.workers) == 2
    assert len(source.series_keys()) == 2
    with pytest.raises(SourceError, match="no database"):
        DbSource(str(tmp_path / "missing.duckdb")).poll()
