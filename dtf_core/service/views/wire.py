"""The snapshot dataclasses as JSON and back, for ``dtf-core serve`` and the
console attached to it.

Encoding gives what :func:`dataclasses.asdict` gives, without its deep
copies (a snapshot of a 1,000-task run is ~11,000 values: asdict took most of
a snapshot build's time, for every console refresh); decoding rebuilds the same frozen
types (lists back to tuples), so that a snapshot that went through the wire
compares equal to the one the server built. Unknown keys from a newer server
are ignored, missing ones take the dataclass default: the two sides may be
one version apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from dtf_core.service.views.snapshot import (
    AttemptInfo,
    ClusterSnapshot,
    CoordinatorInfo,
    ErrorEvent,
    RunInfo,
    SeriesKey,
    TaskRow,
    TrendSeries,
    WorkerInfo,
)
from dtf_core.service.views.trend import TrendView

T = TypeVar("T")


_PLAIN = (str, int, float, bool, type(None))
_FIELDS: dict[type, tuple[str, ...]] = {}


def encode(obj: Any) -> Any:
    """A snapshot dataclass (or a list of them) as JSON-ready data."""
    if isinstance(obj, list | tuple):
        return [_plain(o) for o in obj]
    return _plain(obj)


def fields(obj: Any) -> tuple[str, ...]:
    """The field names of a snapshot dataclass (or its type), cached."""
    cls = obj if isinstance(obj, type) else type(obj)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _plain(obj: Any) -> Any:
    if isinstance(obj, _PLAIN):
        return obj
    names = _FIELDS.get(type(obj))
    if names is None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELDS[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    if names is not None:
        return {n: _plain(getattr(obj, n)) for n in names}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _flat(cls: type[T], data: Mapping[str, Any]) -> T:
    """``cls`` from ``data``: lists become tuples where the field is a tuple."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, list) and "tuple" in str(f.type):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def snapshot(data: Mapping[str, Any]) -> ClusterSnapshot:
    snap = _flat(ClusterSnapshot, {k: v for k, v in data.items() if k not in _NESTED})
    return dataclasses.replace(
        snap,
        workers=tuple(_flat(WorkerInfo, w) for w in data.get("workers") or ()),
        runs=tuple(_flat(RunInfo, r) for r in data.get("runs") or ()),
        tasks=tuple(_flat(TaskRow, t) for t in data.get("tasks") or ()),
        errors=tuple(_flat(ErrorEvent, e) for e in data.get("errors") or ()),
        coordinator=_flat(CoordinatorInfo, data["coordinator"])
        if data.get("coordinator")
        else None,
    )


_NESTED = ("workers", "runs", "tasks", "errors", "coordinator")
_ROWS: dict[str, type] = {"tasks": TaskRow, "errors": ErrorEvent}


def apply_delta(base: ClusterSnapshot, data: Mapping[str, Any]) -> ClusterSnapshot:
    """``base`` (the snapshot of build ``data["delta"]``) brought to the build
    of ``data``: what :meth:`dtf_core.service.views.delta.Build.body`
    sends. The short parts come whole; each long list comes as its new length
    and the rows changed since, by position (or all its rows), each row an
    array in the order of ``{list}_fields``."""
    head = snapshot({k: v for k, v in data.items() if k not in _ROWS})
    lists: dict[str, Any] = {}
    for name, cls in _ROWS.items():
        make: Callable[[list[Any]], Any] = _from_array(cls, data[f"{name}_fields"])
        if f"{name}_rows" in data:
            lists[name] = tuple(make(r) for r in data[f"{name}_rows"])
            continue
        length = int(data[f"{name}_length"])
        rows: list[Any] = list(getattr(base, name))[:length]
        rows += [None] * (length - len(rows))
        for i, row in data.get(f"{name}_changed") or ():
            rows[i] = make(row)
        if None in rows:  # not the base this delta was made from
            raise ValueError(f"a delta of {name} left rows unknown")
        lists[name] = tuple(rows)
    return dataclasses.replace(head, **lists)


def _from_array(cls: type[T], names: list[str]) -> Callable[[list[Any]], T]:
    """How to build ``cls`` from a row sent as an array of ``names``' values:
    positionally when the server's fields are this side's (no tuple fields
    among them), else through a dict (one version apart)."""
    if tuple(names) == fields(cls) and not any(
        "tuple" in str(f.type)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    ):
        return lambda row: cls(*row)
    return lambda row: _flat(cls, dict(zip(names, row, strict=True)))


def attempts(data: list[Mapping[str, Any]]) -> list[AttemptInfo]:
    return [_flat(AttemptInfo, a) for a in data]


def series_key(data: Mapping[str, Any]) -> SeriesKey:
    return SeriesKey(str(data["benchmark"]), str(data.get("hardware") or ""))


def series(data: Mapping[str, Any]) -> TrendSeries:
    return _flat(TrendSeries, {**data, "key": series_key(data["key"])})


def trend_view(data: Mapping[str, Any]) -> TrendView:
    return _flat(TrendView, data)
