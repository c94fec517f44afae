"""Where the console's data comes from.

A :class:`Source` answers a few questions with plain snapshot dataclasses
(:mod:`dtf_tui.snapshot`); the app asks them on Textual worker threads, never
on the UI thread, so a slow or dead source cannot freeze the screen.

* :class:`~dtf_tui.sources.db.DbSource`: a DuckDB file, read-only (history).
* :class:`~dtf_tui.sources.live.LiveSource`: a run in this process (``dtf-tui run``).
* :class:`~dtf_tui.sources.http.HttpSource`: a ``dtf-core serve`` coordinator (attach).
"""

from __future__ import annotations

from typing import Protocol

from dtf_tui.snapshot import AttemptInfo, ClusterSnapshot, SeriesKey, TrendSeries


class SourceError(Exception):
    """The source cannot answer now (gone, locked, unreachable); the app retries."""


class Source(Protocol):
    label: str
    poll_interval: float  # seconds between polls that suits this source

    def start(self) -> None:
        """Begin whatever runs in the background (a run, a connection)."""

    def poll(self) -> ClusterSnapshot:
        """The state now. Raises :class:`SourceError` when the source is unreachable."""
        ...

    def attempts(self, run_id: str, task_id: str) -> list[AttemptInfo]: ...

    def series_keys(self) -> list[SeriesKey]: ...

    def series(self, key: SeriesKey) -> TrendSeries: ...

    def close(self) -> None: ...


__all__ = ["Source", "SourceError"]
