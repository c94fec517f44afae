"""`dtf-tui --web` in a real headless Chromium: the page loads behind the
console's key, the console draws in the browser's terminal, and a key pressed
in the page switches screens (asserted on the terminal's text and on a
screenshot). The door in front of a coordinator's tokens is tested with the
service in test_serve_observe.py."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import browser
from support.procs import free_port, stop, wait_for
from support.tui_seed import seed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(browser.available() is not None, reason=str(browser.available())),
]


@pytest.mark.timeout(240)
def test_console_draws_in_a_browser_and_a_key_switches_screens(tmp_path: Path) -> None:
    db = seed(tmp_path / "seed.duckdb")
    port = free_port()
    log = tmp_path / "web.log"
    with open(log, "wb") as fh:
        web = subprocess.Popen(
            [sys.executable, "-m", "dtf_tui", "--web", "--port", str(port), "--db", str(db)],
            stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        link = wait_for(
            lambda: re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", log.read_text()), 90,
            "the link with the console's key",
        )  # fmt: skip
        asyncio.run(_in_the_browser(link.group(0), tmp_path))
    finally:
        stop(web)
    # The key travelled in the query string once; the log names paths only.
    key = link.group(0).split("token=")[1]
    assert log.read_text().count(key) == 1


async def _in_the_browser(url: str, tmp: Path) -> None:
    async with browser.open_page(url) as page:
        # A console process starts per browser: slow on a busy machine, hence the room.
        overview = await page.wait_for_text("history:", "nightly", "pass rate", timeout=120)
        assert "1 Overview" in overview and "2 Workers" in overview
        before = await page.screenshot(tmp / "overview.png")
        await page.press("2")
        # The Workers screen: its summary and both recorded workers with their tags.
        await page.wait_for_text(
            "2 workers (2 recorded)", "dtf-0", "dtf-1", "CPU=8, GPU=1", timeout=60,
            absent=("pass rate",),  # the Overview's summary line is gone
        )  # fmt: skip
        after = await page.screenshot(tmp / "workers.png")
        assert before != after
