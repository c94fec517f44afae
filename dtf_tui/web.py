"""``dtf-tui --web``: the same console in a browser, by textual-serve.

textual-serve answers a page (xterm.js) and, for each browser that opens it, a
websocket that drives one ``dtf-tui`` process of its own, started with the
same source as this command (``--coordinator URL`` or ``--db FILE``). The
token of ``--coordinator`` reaches those processes in their environment
(``DTF_TOKEN``), never on their command line, where ``ps`` would show it.

Nothing is served without a token (:mod:`dtf_tui.webauth`). It listens on
127.0.0.1 unless ``--host`` says otherwise; a wider bind should sit behind a
TLS proxy, since the token and the session cookie cross the network in the clear
otherwise.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

import click
from aiohttp import web
from textual_serve.server import Server

from dtf_core.service.leadership import public_url
from dtf_tui.webauth import TokenGate, coordinator_check, key_check


class WebConsole(Server):
    """textual-serve's server behind the token gate, with an access log that
    never holds a query string."""

    def __init__(self, command: str, host: str, port: int, gate: TokenGate, banner: str) -> None:
        super().__init__(command, host=host, port=port, title="dtf console",
                         public_url=public_url(host, port))  # fmt: skip
        self.gate, self.banner = gate, banner

    async def _make_app(self) -> Any:
        app = await super()._make_app()
        app.middlewares.append(self.gate.middleware)
        return app

    async def on_startup(self, app: Any) -> None:
        click.echo(self.banner, err=True)

    def serve(self, debug: bool = False) -> None:
        self.debug = debug
        self.initialize_logging()
        # aiohttp's own access log writes the request line, query string included.
        web.run_app(self._make_app(), host=self.host, port=self.port, access_log=None,
                    print=None, handle_signals=True)  # fmt: skip


def console_command(coordinator: str | None, db: str | None, options: list[str]) -> str:
    """The ``dtf-tui`` each browser gets (its token, if any, comes in the environment)."""
    argv = [sys.executable, "-m", "dtf_tui"]
    if coordinator:
        argv += ["--coordinator", coordinator]
    elif db:
        argv += ["--db", str(Path(db).resolve())]
    return shlex.join(argv + options)


def serve_console(
    *,
    host: str,
    port: int,
    coordinator: str | None,
    token: str | None,
    db: str | None,
    options: list[str],
) -> None:
    """Serve the console until interrupted (the ``--web`` of ``dtf-tui``)."""
    url = public_url(host, port)
    if coordinator:
        if token:
            os.environ["DTF_TOKEN"] = token  # inherited by each browser's console only
        gate = TokenGate(coordinator_check(coordinator))
        banner = (
            f"dtf-tui: the console of {coordinator} on {url}/ ; open it with ?token=TOKEN "
            "once (an API token of the coordinator)"
        )
    else:
        key = secrets.token_urlsafe(24)
        gate = TokenGate(key_check(key))
        # The key is this session's own, shown once to whoever started it (as Jupyter does).
        banner = f"dtf-tui: the console of {db} on {url}/?token={key}"
    WebConsole(console_command(coordinator, db, options), host, port, gate, banner).serve()
