"""What ``dtf-core serve`` accepts from a submitter: upload size and shape,
queue length, and how long upload directories stay.

A submitter is trusted to run code on workers, not to exhaust the service:
without bounds one token could fill the service's disk with uploads, its
memory with a gzip bomb, or its queue with runs nobody else gets past. Every
limit has a default in ``dtf.yaml`` (``dtf.service.*``) and a ``serve`` option;
the HTTP layer answers a hit with 413 (size, entries) or 429 (queue, with
``Retry-After``). docs/cluster.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dask.utils

from dtf_core import config
from dtf_core.errors import OptionError, ServiceBusyError, UploadTooLargeError

# serve option name -> (config key, kind): one table for the defaults, the
# option parsing and the messages.
SETTINGS: dict[str, tuple[str, str]] = {
    "upload_limit": ("service.upload-limit", "bytes"),
    "unpacked_limit": ("service.unpacked-limit", "bytes"),
    "entry_limit": ("service.entry-limit", "count"),
    "queue_limit": ("service.queue-limit", "count"),
    "submitter_queue_limit": ("service.submitter-queue-limit", "count"),
    "keep_uploads": ("service.keep-uploads", "count"),
    "keep_uploads_for": ("service.keep-uploads-for", "seconds"),
    "retry_after": ("service.queue-retry-after", "seconds"),
    "prune_interval": ("service.upload-prune-interval", "seconds"),
}


@dataclass(frozen=True)
class UploadLimits:
    upload_limit: int  # bytes of the compressed archive
    unpacked_limit: int  # bytes once decompressed (the tar stream)
    entry_limit: int  # files and directories in the archive
    queue_limit: int  # runs accepted and not finished, all submitters
    submitter_queue_limit: int  # the same, per token subject
    keep_uploads: int  # upload directories of finished runs kept (newest; 0: no count limit)
    keep_uploads_for: float  # seconds they stay after their run ended (0: no age limit)
    retry_after: float  # the Retry-After of a 429
    prune_interval: float  # seconds between two retention passes

    @classmethod
    def from_config(cls, **given: Any) -> UploadLimits:
        """Each limit from ``given`` (a serve option; None: not given) or the config."""
        values: dict[str, Any] = {}
        for name, (key, kind) in SETTINGS.items():
            raw = given.get(name)
            flag = "--" + name.replace("_", "-")
            source = flag if raw is not None else f"dask config dtf.{key}"
            values[name] = _parse(config.get(key) if raw is None else raw, kind, source)
        return cls(**values)

    def describe(self) -> str:
        return (
            f"uploads up to {size_text(self.upload_limit)} "
            f"({size_text(self.unpacked_limit)} unpacked, {self.entry_limit} entries); "
            f"queue {self.queue_limit} "
            f"({self.submitter_queue_limit} per submitter)"
        )


def _parse(value: Any, kind: str, source: str) -> int | float:
    try:
        if kind == "bytes":
            parsed: int | float = int(dask.utils.parse_bytes(str(value)))
        elif kind == "seconds":
            parsed = float(dask.utils.parse_timedelta(value, default="s") or 0)
        else:
            parsed = int(value)
    except (ValueError, TypeError, KeyError):
        hint = {"bytes": "a size such as 50MB", "seconds": "a duration such as 7d or 30s"}
        raise OptionError(
            f"{source}: {value!r} is not {hint.get(kind, 'a whole number')}"
        ) from None
    if parsed < 0:
        raise OptionError(f"{source}: {value!r} must not be negative")
    return parsed


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def check_archive(size: int, limits: UploadLimits) -> None:
    if size > limits.upload_limit:
        raise UploadTooLargeError(
            f"the suite archive is {size_text(size)}, above this service's "
            f"{size_text(limits.upload_limit)} limit (serve --upload-limit); upload a smaller "
            "--root or keep data files out of the suite directory"
        )


def check_queue(owner: str, owners: Iterable[str], limits: UploadLimits) -> None:
    """429 when accepting one more run of ``owner`` would pass a queue limit;
    ``owners`` holds the owner of every run accepted and not finished."""
    owners = list(owners)
    mine = sum(1 for o in owners if o == owner)
    if mine >= limits.submitter_queue_limit:
        raise ServiceBusyError(
            f"{owner!r} already has {mine} run(s) queued or running, the most one submitter "
            f"may have (serve --submitter-queue-limit); wait for one to finish",
            limits.retry_after,
        )
    if len(owners) >= limits.queue_limit:
        raise ServiceBusyError(
            f"the service already has {len(owners)} run(s) queued or running, its limit "
            "(serve --queue-limit); try again later",
            limits.retry_after,
        )
