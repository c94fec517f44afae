"""Whether a cluster can run each unit of work (a task, a test file), from the
resources each needs and the resources of the workers connected now: what
``dtf-core plan`` reports before a pipeline queues anything.

A unit fits when one worker has every resource it needs in the amount it
needs (Dask places a task on one worker). When none has, the resources that
stop it are named: those that no worker has enough of, or, when each exists
on some worker but never together, all of them. Without a cluster there is
nothing to check: each unit only says what it needs. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Resources = Mapping[str, float]


@dataclass
class Fit:
    name: str  # task id or test file
    kind: str  # task kind, or "pytest-file"
    requires: dict[str, float]
    tests: int | None = None  # tests in a pytest file
    checked: bool = False  # against a cluster
    workers: list[str] = field(default_factory=list)  # names of the workers that can run it
    missing: dict[str, float] = field(default_factory=dict)  # resource -> amount no worker has

    @property
    def runnable(self) -> bool:
        return not self.checked or bool(self.workers)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "requires": self.requires}
        if self.tests is not None:
            out["tests"] = self.tests
        if self.checked:
            out.update(runnable=self.runnable, workers=self.workers, missing=self.missing)
        return out


def check(fit: Fit, workers: Sequence[Mapping[str, Any]] | None) -> Fit:
    """``fit`` checked against ``workers`` (each ``{"name", "resources"}``); None: no cluster."""
    if workers is None:
        return fit
    fit.checked = True
    fit.workers = sorted(
        str(w["name"])
        for w in workers
        if all(float((w.get("resources") or {}).get(k, 0)) >= v for k, v in fit.requires.items())
    )
    if not fit.workers:
        best = {
            k: max((float((w.get("resources") or {}).get(k, 0)) for w in workers), default=0.0)
            for k in fit.requires
        }
        short = {k: v for k, v in fit.requires.items() if best[k] < v}
        # Each resource exists somewhere, but no worker has them all together
        # (or there is no worker at all).
        fit.missing = short or dict(fit.requires)
    return fit


def needs_text(requires: Resources) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(requires.items())) or "-"


def summary_lines(fits: Sequence[Fit], workers: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The closing lines: what the units need together, and what the cluster lacks."""
    wanted: dict[str, int] = {}
    for f in fits:
        if f.requires:
            key = needs_text(f.requires)
            wanted[key] = wanted.get(key, 0) + 1
    if workers is None:
        lines = [f"no cluster given: {len(fits)} unit(s) would need"]
        lines += [f"  a worker with {k}: {n} unit(s)" for k, n in sorted(wanted.items())]
        if len(lines) == 1:
            lines[0] += " any worker (no resources required)"
        return lines
    blocked = [f for f in fits if not f.runnable]
    head = f"{len(fits) - len(blocked)} of {len(fits)} unit(s) can run on {len(workers)} worker(s)"
    if not workers:
        return [head + ": the cluster has no workers"]
    if not blocked:
        return [head]
    lacking: dict[str, int] = {}
    for f in blocked:
        key = needs_text(f.missing)
        lacking[key] = lacking.get(key, 0) + 1
    return [head] + [
        f"  never schedulable here: no worker has {k} ({n} unit(s))"
        for k, n in sorted(lacking.items())
    ]
