"""History browsing: a dtf DuckDB file, opened read-only for each question.

The file is opened per poll (and per question) and closed as soon as the
answer is read, never held while the console is idle: while any process holds
a DuckDB file no other process can open it read-write, and the console must not
stop a coordinator from starting (a starting run waits out one poll's queries).
When a coordinator holds the file, the reader retries for ``dtf.store.read-wait``,
then the poll raises :class:`SourceError` with the "locked by process N"
message and the app keeps retrying, so the view comes back when the run ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from dtf_core.errors import DtfError
from dtf_core.service.views import storeread
from dtf_core.store import StoreReader
from dtf_tui.snapshot import AttemptInfo, ClusterSnapshot, SeriesKey, TrendSeries
from dtf_tui.sources import SourceError


class DbSource:
    poll_interval = 2.0

    def __init__(
        self, path: str, *, runs: int = 20, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.label = f"history: {path}"
        self.runs = runs
        self.clock = clock
        self._series: dict[SeriesKey, TrendSeries] | None = None
        self._series_for: object = None  # the runs the cached series were built from

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _open(self) -> StoreReader:
        try:
            return StoreReader(self.path)
        except DtfError as exc:
            raise SourceError(str(exc)) from exc

    def poll(self) -> ClusterSnapshot:
        # The same builder dtf-core serve uses for attached consoles.
        with self._open() as store:
            snap = storeread.snapshot(store, self.label, self.clock(), self.runs)
        return replace(snap, note=f"no runs in {self.path} yet") if snap.note else snap

    def attempts(self, run_id: str, task_id: str) -> list[AttemptInfo]:
        with self._open() as store:
            return storeread.attempts(store, run_id, task_id)

    def _all_series(self) -> dict[SeriesKey, TrendSeries]:
        with self._open() as store:
            marker = store.latest_run_id()
            if self._series is None or marker != self._series_for:
                self._series = storeread.all_series(store)
                self._series_for = marker
        return self._series

    def series_keys(self) -> list[SeriesKey]:
        return list(self._all_series())

    def series(self, key: SeriesKey) -> TrendSeries:
        try:
            return self._all_series()[key]
        except KeyError:
            raise SourceError(f"no benchmark history for {key.label}") from None
