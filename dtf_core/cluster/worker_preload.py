"""Dask worker preload: present a dtf token to the scheduler, sign results.

    dask worker tcp://HOST:8786 --resources "GPU=1" \\
        --preload dtf_core.worker_preload --dtf-token-file /etc/dtf/worker.jwt

The token goes into ``worker.startup_information``, which Dask sends as
``extra`` with ``register-worker``; :mod:`dtf_core.scheduler_preload` checks it
there. ``--dtf-token TOKEN`` works too, but shows the token in ``ps``: prefer
the file or ``$DTF_WORKER_TOKEN``. ``--dtf-result-key-file`` (or
``$DTF_RESULT_KEY_FILE``) installs the key that signs every result this
worker sends back (:func:`dtf_core.cluster.security.sign_result`).

A bad option stops the worker at start with one clear line, instead of a
worker that joins and then has every result rejected.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from dtf_core.cluster import security
from dtf_core.cluster.scheduler_preload import TOKEN_KEY
from dtf_core.errors import DtfError

logger = logging.getLogger("distributed.dtf")
TOKEN_ENV = "DTF_WORKER_TOKEN"


def resolve_token(token: str | None, token_file: str | None) -> str | None:
    if token_file:
        try:
            return Path(token_file).read_text().strip() or None
        except OSError as exc:
            raise RuntimeError(
                f"dtf: cannot read --dtf-token-file {token_file}: {exc.strerror}"
            ) from None
    # Read once and dropped: the tasks this worker runs inherit its environment.
    from_env = os.environ.pop(TOKEN_ENV, None)
    return token or from_env or None


@click.command()
@click.option("--dtf-token", default=None, help="Worker token (visible in ps: prefer the file).")
@click.option("--dtf-token-file", default=None, help="File holding the worker token.")
@click.option(
    "--dtf-result-key-file",
    default=None,
    help="Key that signs results (default: $DTF_RESULT_KEY_FILE; unset = unsigned).",
)
def dask_setup(
    worker: Any,
    dtf_token: str | None,
    dtf_token_file: str | None,
    dtf_result_key_file: str | None,
) -> None:
    token = resolve_token(dtf_token, dtf_token_file)
    if token is None:
        logger.warning("dtf: no worker token given; a dtf scheduler will refuse this worker")
    else:
        worker.startup_information[TOKEN_KEY] = lambda _worker: token
    key_file = dtf_result_key_file or os.environ.get(security.RESULT_KEY_ENV)
    if key_file:
        try:
            security.set_result_key(security.read_secret(key_file, "result key file"))
        except DtfError as exc:
            raise RuntimeError(f"dtf: {exc}") from None
        logger.info("dtf: results are signed")
