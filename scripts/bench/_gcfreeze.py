"""``pytest -p _gcfreeze`` for pytest_vs_xdist.py's `--xdist-freeze` row: the
gc.freeze() that dtf's plugin does after collection (dtf_core.testing.plugin),
in each xdist worker, so the table shows how much of dtf's lead is that alone."""

import gc

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()
    gc.freeze()
