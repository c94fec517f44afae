"""The console snapshot as published builds that answer "what changed since
build N" (``/v1/console?since=N&epoch=E``) as well as "everything".

Why: a snapshot of a 1,000-task run is ~180 kB; twenty consoles each took it,
and decoded it, on every change (a run moves tens of tasks between two builds).
A build now remembers, for each row of its two long lists (the focused run's
tasks, the listed runs' errors), the build at which that row last changed.
Builds are numbered (``build``) apart from the change counter: a build that only
takes in what the database caught up with keeps its generation. A console that
holds build N gets only the rows changed after N, by position, and merges them
into the snapshot it holds (:func:`dtf_core.service.views.wire.apply_delta`).
The short parts (runs, workers, the header's figures) always come whole.

A console gets the full snapshot instead when a delta cannot be right or is not
worth it: no ``since``, another epoch (a restart, a standby that took over), a
``since`` newer than this build, a list whose rows were not only changed in
place or appended since come whole in the delta (another focused run, an error
inserted or dropped); and the full snapshot when the console holds a build
older than the last :data:`KEEP` (it fell behind). A delta is never bigger than
the full snapshot: its rows are arrays, less than half the bytes of the objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from dtf_core.service.views import wire
from dtf_core.service.views.snapshot import ClusterSnapshot, ErrorEvent, TaskRow

# Builds a delta can start from: a console further behind gets the full snapshot.
# A console asks at least once a second, and builds come a few times a second at
# most while a run is in flight (they follow its flushes): this is seconds of stall.
KEEP = 16
LISTS = ("tasks", "errors")  # the lists sent by row; the rest of a snapshot goes whole
MOVING = ("taken_at", "throughput")  # move with the clock alone: not worth a new build
# What moves on every build while a run is in flight, and that the local console
# refreshes once a second (its poll): published when the rest moves too, or when due.
LIVE = ("cpu", "memory", "running")


class Column:
    """One list of one build: encoded rows, each with the build it last changed in.

    Each row twice: as the full snapshot has it (a JSON object, what older
    consoles read), and as a delta sends it (an array in the order of
    ``fields``: a third of the bytes, and a console builds the row from it
    without a dict; deltas go only to consoles that ask for them, never older)."""

    __slots__ = ("arrays", "changed", "fields", "layout", "lengths", "rows")

    def __init__(
        self,
        fields: tuple[str, ...],
        rows: tuple[Any, ...],
        arrays: tuple[Any, ...],
        changed: tuple[int, ...],
        layout: int,
        lengths: dict[int, int],
    ) -> None:
        self.fields, self.rows, self.arrays = fields, rows, arrays
        self.changed, self.layout = changed, layout
        self.lengths = lengths  # rows at each of the last :data:`KEEP` builds of this layout

    def since(self, build: int) -> list[list[Any]]:
        return [[i, self.arrays[i]] for i, b in enumerate(self.changed) if b > build]


class Tracker:
    """Across builds (the builder's thread only): one list's previous items, to
    tell which rows changed."""

    def __init__(self, cls: type, key: Callable[[Any], Hashable]) -> None:
        self.fields, self.key = wire.fields(cls), key
        self._items: Sequence[Any] = ()
        self._keys: tuple[Hashable, ...] = ()
        self._rows: tuple[Any, ...] = ()
        self._arrays: tuple[Any, ...] = ()
        self._lengths: dict[int, int] = {}
        self._changed: tuple[int, ...] = ()
        self._layout = 0

    def update(self, build: int, items: Sequence[Any]) -> Column:
        keys = tuple(self.key(i) for i in items)
        n = len(self._keys)
        if keys[:n] != self._keys:  # not the same rows in the same order: start afresh
            self._layout, n = build, 0
            self._lengths.clear()
        rows, arrays = list(self._rows[:n]), list(self._arrays[:n])
        changed = list(self._changed[:n])
        old = self._items
        for i in range(n):
            if items[i] != old[i]:  # dataclass equality: one tuple comparison per row
                rows[i], changed[i] = wire.encode(items[i]), build
                arrays[i] = [rows[i][f] for f in self.fields]
        for item in items[n:]:
            rows.append(wire.encode(item))
            arrays.append([rows[-1][f] for f in self.fields])
            changed.append(build)
        self._items, self._keys = tuple(items), keys
        self._rows, self._arrays, self._changed = tuple(rows), tuple(arrays), tuple(changed)
        self._lengths[build] = len(rows)
        while len(self._lengths) > KEEP:
            del self._lengths[next(iter(self._lengths))]
        return Column(
            self.fields, self._rows, self._arrays, self._changed, self._layout, dict(self._lengths)
        )


class Build:
    """One published snapshot; its bodies are made on the event loop when first asked."""

    def __init__(
        self,
        serial: int,
        generation: int,
        epoch: str,
        head: dict[str, Any],
        columns: dict[str, Column],
    ) -> None:
        self.serial, self.generation, self.epoch = serial, generation, epoch
        self.head, self.columns = head, columns
        self._full: bytes | None = None
        self._deltas: dict[int, bytes] = {}  # by ``since``: twenty consoles ask the same

    def full(self) -> bytes:
        if self._full is None:
            out = {**self.head, **{k: list(c.rows) for k, c in self.columns.items()}}
            self._full = json.dumps(out).encode()
        return self._full

    def body(self, since: int = 0, epoch: str = "") -> bytes:
        """The delta from build ``since`` (of ``epoch``), or the full snapshot
        when a delta cannot be right or is not worth it."""
        if since <= 0 or epoch != self.epoch or since > self.serial:
            return self.full()
        found = self._deltas.get(since)
        if found is None:
            found = self._deltas[since] = self._delta(since) or self.full()
        return found

    def _delta(self, since: int) -> bytes | None:
        # A list laid out afresh since (another focused run) comes whole, by rows.
        in_place = {k: c for k, c in self.columns.items() if c.layout <= since}
        if any(since not in c.lengths for c in in_place.values()):
            return None  # fell too far behind
        changed = {k: c.since(since) for k, c in in_place.items()}
        out = {**self.head, "delta": since}
        for k, c in self.columns.items():
            out[f"{k}_fields"], out[f"{k}_length"] = c.fields, len(c.rows)
            if k in changed:
                out[f"{k}_changed"] = changed[k]
            else:
                out[f"{k}_rows"] = c.arrays
        return json.dumps(out).encode()


class Publisher:
    """Turns each new snapshot into a :class:`Build` (the builder's thread)."""

    def __init__(self) -> None:
        self._serial = 0
        self._head: dict[str, Any] | None = None  # the last build's, less what moves with the clock
        self._trackers = {
            "tasks": Tracker(TaskRow, lambda t: (t.run_id, t.task_id)),
            "errors": Tracker(ErrorEvent, lambda e: e.key),
        }

    def build(
        self, snap: ClusterSnapshot, generation: int, epoch: str, live_due: bool = True
    ) -> Build | None:
        """The next build, or None when it would show nothing new: the same
        rows and the same short parts, but for the clock's (``taken_at``, and
        ``throughput``, which the next real change brings up to date), and for
        the workers' live figures (:data:`LIVE`) unless ``live_due``."""
        serial = self._serial + 1
        head = {n: wire.encode(getattr(snap, n)) for n in wire.fields(snap) if n not in LISTS}
        columns = {k: t.update(serial, getattr(snap, k)) for k, t in self._trackers.items()}
        steady = {k: v for k, v in head.items() if k not in MOVING}
        moved = any(c.layout == serial or serial in c.changed for c in columns.values())
        if not moved and steady != self._head and not live_due:
            moved = _still(steady) != _still(self._head)
        elif not moved:
            moved = steady != self._head
        if not moved:
            return None
        self._serial, self._head = serial, steady
        head.update(generation=generation, epoch=epoch, build=serial)
        return Build(serial, generation, epoch, head, columns)


def _still(head: dict[str, Any] | None) -> Any:
    """``head`` without the workers' live figures."""
    if head is None:
        return None
    workers = [{k: v for k, v in w.items() if k not in LIVE} for w in head.get("workers") or ()]
    return {**head, "workers": workers}
