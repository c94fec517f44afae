"""Dask worker preload: present a dtf token to the scheduler, sign results.

    dask worker tcp://HOST:8786 --resources "GPU=1" \\
        --preload dtf_core.worker_preload --dtf-token-file /etc/dtf/worker.jwt

The token goes into ``worker.startup_information``, which Dask sends as
``extra`` with ``register-worker``; :mod:`dtf_core.scheduler_preload` checks it
there, and the worker drops it once registered. ``--dtf-result-key-file`` (or
``$DTF_RESULT_KEY_FILE``) installs the key that signs every result this worker
sends back (:func:`dtf_core.cluster.security.sign_result`). Key and token files
must be owner-only.

``dtf-core worker`` names no file here: it hands the token and the key over a
pipe (:mod:`dtf_core.cluster.handover`), read by this preload in the worker
process, or, under a nanny, in the nanny (``--preload-nanny``), which passes
them to every worker process it starts. Files named on a command line (and
``--dtf-token``, ``$DTF_WORKER_TOKEN``) are readable by the tasks this worker
runs when they run as the same user: prefer ``dtf-core worker``
(docs/security.md).

A bad option stops the worker at start with one clear line, instead of a
worker that joins and then has every result rejected.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import click

from dtf_core.cluster import handover, security
from dtf_core.cluster.scheduler_preload import TOKEN_KEY
from dtf_core.errors import DtfError

logger = logging.getLogger("distributed.dtf")
TOKEN_ENV = "DTF_WORKER_TOKEN"
_HANDED = "--dtf-credentials"  # how a nanny passes the credentials to its worker process


def resolve_token(token: str | None, token_file: str | None) -> str | None:
    if token_file:
        try:
            return security.read_token_file(token_file, "worker token file")
        except DtfError as exc:
            raise RuntimeError(f"dtf: {exc}") from None
    # Read once and dropped: the tasks this worker runs inherit its environment.
    from_env = os.environ.pop(TOKEN_ENV, None)
    return token or from_env or None


def _is_nanny(server: Any) -> bool:
    return type(server).__name__ == "Nanny"


def _pass_to_worker_processes(nanny: Any) -> None:
    """In the nanny: take the handed credentials, and give them to each worker
    process it starts through the worker preload's arguments (sent to the new
    process over multiprocessing's pipe, never on a command line)."""
    blob = handover.take_from_env()
    if blob is None:
        return
    argv = [a for a in (nanny.preload_argv or []) if isinstance(a, str)]
    nanny.preload_argv = [*argv, _HANDED, blob.decode()]


def _forget_handed(worker: Any) -> None:
    # The worker keeps its preloads' arguments: a task could read them there.
    for preload in getattr(worker, "preloads", ()):
        if _HANDED in getattr(preload, "argv", ()):
            preload.argv = []


def _offer_token_once(worker: Any, token: str) -> None:
    """Send ``token`` with the registration, then drop it from the worker: Dask
    workers never register twice, and tasks run only after registration."""

    def drop_when_registered() -> None:
        if getattr(worker.status, "name", "") == "running":
            worker.startup_information.pop(TOKEN_KEY, None)
        elif getattr(worker.status, "name", "") not in ("closing", "closed", "failed"):
            asyncio.get_running_loop().call_later(0.2, drop_when_registered)

    def offer(_worker: Any) -> str:
        asyncio.get_running_loop().call_later(0.2, drop_when_registered)
        return token

    worker.startup_information[TOKEN_KEY] = offer


@click.command()
@click.option("--dtf-token", default=None, help="Worker token (visible in ps: prefer the file).")
@click.option("--dtf-token-file", default=None, help="File holding the worker token.")
@click.option(
    "--dtf-result-key-file",
    default=None,
    help="Key that signs results (default: $DTF_RESULT_KEY_FILE; unset = unsigned).",
)
@click.option(_HANDED, "dtf_credentials", default=None, hidden=True)
def dask_setup(
    worker: Any,
    dtf_token: str | None,
    dtf_token_file: str | None,
    dtf_result_key_file: str | None,
    dtf_credentials: str | None,
) -> None:
    if _is_nanny(worker):
        _pass_to_worker_processes(worker)
        return
    blob = dtf_credentials.encode() if dtf_credentials else handover.take_from_env()
    _forget_handed(worker)
    key: bytes | None = None
    token: str | None
    if blob is not None:
        token, key = handover.decode(blob)
    else:
        token = resolve_token(dtf_token, dtf_token_file)
        key_file = dtf_result_key_file or os.environ.get(security.RESULT_KEY_ENV)
        if key_file:
            try:
                key = security.read_secret(key_file, "result key file")
            except DtfError as exc:
                raise RuntimeError(f"dtf: {exc}") from None
    if token is None:
        logger.warning("dtf: no worker token given; a dtf scheduler will refuse this worker")
    else:
        _offer_token_once(worker, token)
    if key is not None:
        security.set_result_key(key)
        logger.info("dtf: results are signed")
