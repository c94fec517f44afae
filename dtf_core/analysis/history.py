"""A benchmark's history as series of per-run medians, loaded in one pass.

Change points and trends work on per-run summaries, not raw samples: a run is
the unit that has a commit, and its median is robust to the odd slow sample.
The store computes the medians in SQL; here they become one flat array per
column (series ``sid``, run ``rix``, ``value``), sorted by series then run
time, with ``offsets`` marking where each series starts, so that the
analyses slice views without copying.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dtf_core.analysis import direction
from dtf_core.errors import OptionError
from dtf_core.store import StoreReader

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DAY = 86400.0


def parse_span(text: str, option: str = "--since") -> float:
    """``"30d"`` -> seconds (s, m, h, d, w)."""
    m = _SPAN.match(text or "")
    if not m:
        raise OptionError(f"{option} {text!r}: write a number and a unit, like 30d, 12h or 2w")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass
class Series:
    sid: int
    benchmark: str
    params: dict[str, Any]
    hardware: str
    unit: str
    higher_is_better: bool
    rix: np.ndarray  # run positions into History.runs, oldest first
    t: np.ndarray  # run start, unix seconds
    x: np.ndarray  # per-run median

    def key(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "params": self.params,
            "hardware": self.hardware,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
        }


@dataclass
class History:
    keys: pd.DataFrame
    runs: pd.DataFrame
    sid: np.ndarray
    rix: np.ndarray
    value: np.ndarray
    offsets: np.ndarray  # series i is [offsets[i], offsets[i + 1])
    _run_cols: tuple[list[str], list[str | None], list[float]] | None = None

    @property
    def n_points(self) -> int:
        return len(self.value)

    def __iter__(self) -> Iterator[Series]:
        started = self.runs["started_at"].to_numpy(np.float64)
        for row in self.keys.itertuples(index=False):
            sid = int(row.sid)
            lo, hi = int(self.offsets[sid]), int(self.offsets[sid + 1])
            if hi == lo:
                continue
            rix = self.rix[lo:hi]
            yield Series(
                sid=sid,
                benchmark=str(row.benchmark),
                params=json.loads(row.params or "{}"),
                hardware=str(row.hardware),
                unit=str(row.unit),
                higher_is_better=direction.higher_is_better(
                    str(row.unit), _flag(row.higher_is_better)
                ),
                rix=rix,
                t=started[rix],
                x=self.value[lo:hi],
            )

    def run(self, rix: int) -> dict[str, Any]:
        if self._run_cols is None:  # pandas row access costs ~50 us; plain lists do not
            commits = self.runs["commit"]
            self._run_cols = (
                [str(r) for r in self.runs["run_id"]],
                [None if pd.isna(c) else str(c) for c in commits],
                [float(t) for t in self.runs["started_at"]],
            )
        ids, commits_, started = self._run_cols
        return {"run_id": ids[rix], "commit": commits_[rix], "started_at": started[rix]}


def load_history(
    store: StoreReader,
    *,
    benchmark: str | None = None,
    since: float | None = None,
    branch: str | None = None,
    of_run: str | None = None,
) -> History:
    """Every series (optionally names matching the glob ``benchmark``; runs
    started at or after ``since``, unix seconds; runs on ``branch``; only the
    series run ``of_run`` measured)."""
    keys, runs, pts = store.benchmark_history(
        benchmark=benchmark, since=since, branch=branch, of_run=of_run
    )
    sid = pts["sid"].astype(np.int64)
    offsets = np.searchsorted(sid, np.arange(len(keys) + 1), side="left")
    return History(
        keys=keys,
        runs=runs,
        sid=sid,
        rix=pts["rix"].astype(np.int64),
        value=pts["value"].astype(np.float64),
        offsets=offsets,
    )


def since_seconds(span: str | None, now: float | None = None) -> float | None:
    if not span:
        return None
    return (now if now is not None else time.time()) - parse_span(span)


def _flag(v: Any) -> bool | None:
    return bool(v) if isinstance(v, (bool, np.bool_)) else None
