"""A real headless Chromium (Debian's package), driven over the DevTools protocol.

Only what the browser-console test needs: open a page, read what the
terminal on it shows, press a key, take a screenshot. The protocol goes over
one websocket (aiohttp's client: already there for textual-serve), so the test
needs no browser download and no driver package.

Reading the terminal: textual-serve draws with xterm.js on a canvas, so the
text is in no DOM node. A script that runs before the page's own catches the
``Terminal`` object as the page assigns it (``this.terminal = new Terminal``)
and the test reads its screen buffer, which is exactly what is drawn.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = os.environ.get("DTF_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--window-size=1280,800",
]  # fmt: skip

# Runs before the page's scripts: keeps the xterm.js Terminal the page creates.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    if (value && value.buffer && !window.__dtfTerminal) { window.__dtfTerminal = value; }
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true,
                                             enumerable: true});
  },
});
"""
READ_TERMINAL = """(() => {
  const t = window.__dtfTerminal;
  if (!t) return "";
  const b = t.buffer.active, out = [];
  for (let i = 0; i < t.rows; i++) {
    const line = b.getLine(b.viewportY + i);
    out.push(line ? line.translateToString(true) : "");
  }
  return out.join("\\n");
})()"""


def available() -> str | None:
    """Why no browser test can run here, or None when one can."""
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer within {timeout}s")
            msg = await self.ws.receive(timeout=left)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"{method}: the browser closed the connection ({msg.type})")
            data = json.loads(msg.data)
            if data.get("id") == msg_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return dict(data.get("result") or {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def terminal_text(self) -> str:
        return str(await self.evaluate(READ_TERMINAL) or "")

    async def wait_for_text(
        self, *needles: str, timeout: float, absent: tuple[str, ...] = ()
    ) -> str:
        """The terminal's text once it shows every needle and none of ``absent``
        (a screen arrives in several writes); AssertionError otherwise."""
        deadline, text = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            text = await self.terminal_text()
            if all(n in text for n in needles) and not any(a in text for a in absent):
                return text
            await asyncio.sleep(0.25)
        raise AssertionError(
            f"the terminal never showed {needles} without {absent}; it showed:\n{text}"
        )

    async def press(self, key: str) -> None:
        """A real key press (down, char, up) into the terminal's input."""
        await self.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
        code = ord(key.upper())
        await self.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key,
                        windowsVirtualKeyCode=code)  # fmt: skip
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key, windowsVirtualKeyCode=code)

    async def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])
        path.write_bytes(data)
        return data


@contextlib.asynccontextmanager
async def open_page(url: str, *, timeout: float = 30.0) -> AsyncIterator[Page]:
    """Chromium (headless, its own profile) with one page at ``url``."""
    profile = Path(tempfile.mkdtemp(prefix="dtf-chromium-"))
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        port = await _devtools_port(profile, proc, timeout)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            target = next(t for t in targets if t.get("type") == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL)
                await page.call("Page.navigate", url=url)
                yield page
    finally:
        if proc.poll() is None:
            proc.kill()  # our own child, by its handle
        proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited at start (rc {proc.returncode})")
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(marker.read_text().splitlines()[0])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"chromium did not open its DevTools port within {timeout}s")
