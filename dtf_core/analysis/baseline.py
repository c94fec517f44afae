"""Which run a run is compared with: its baseline, and why that one.

By default (``auto``) the baseline follows branches, the way a reviewer reads a
pull request: the latest earlier *passed* run of the same suite, on the same
hardware, on the run's **target branch** (what a pull/merge request goes into),
else on the repository's **default branch**, else on the run's **own branch**.
A run without any branch recorded (not a git checkout) is compared with the
latest such run. ``--baseline`` says otherwise:

* ``branch:NAME``: the latest earlier passed run on branch NAME;
* ``run:ID`` (or a bare ID, the old spelling): that run, whatever it is;
* ``latest``: the latest earlier passed run on any branch.

The store finds the candidates (:mod:`dtf_core.store.baselines`: the newest
earlier passed run per branch that measured one of the run's benchmarks on the
same hardware); :func:`choose` is the pure rule over them, :func:`select`
joins the two. The result says why in words (``reason``) for the CLI and the
reports (``dtf_core.reporting.render.baseline_line`` writes the sentence).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from dtf_core.errors import OptionError, RunNotFoundError

if TYPE_CHECKING:  # parse() runs before a command opens anything: no duckdb import for it
    from dtf_core.store import StoreReader

Kind = Literal["auto", "branch", "run", "latest"]
SYNTAX = "branch:NAME, run:ID or latest"
_NAME = re.compile(r"\S+")


@dataclass(frozen=True)
class BaselineSpec:
    """What ``--baseline`` asked for (``auto``: nothing, the rule above)."""

    kind: Kind = "auto"
    value: str | None = None  # the branch or run id

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}" if self.value else self.kind


AUTO = BaselineSpec()


def parse(text: str | None) -> BaselineSpec:
    """``--baseline`` text -> spec; a malformed one is an :class:`OptionError` (exit 2)."""
    if text is None:
        return AUTO
    t = text.strip()
    if t in ("auto", "latest"):
        return BaselineSpec(t)  # type: ignore[arg-type]
    prefix, sep, rest = t.partition(":")
    if not sep and _NAME.fullmatch(t):
        return BaselineSpec("run", t)  # a bare run id, as --baseline took before
    if sep and prefix in ("branch", "run") and _NAME.fullmatch(rest):
        return BaselineSpec(prefix, rest)  # type: ignore[arg-type]
    raise OptionError(f"--baseline {text!r}: write {SYNTAX} (e.g. --baseline branch:main)")


@dataclass(frozen=True)
class Baseline:
    """The chosen run (``run_id`` None: there is none) and why."""

    run_id: str | None
    branch: str | None
    started_at: float | None
    reason: str
    spec: str = "auto"
    commit: str | None = None  # the baseline's, for the culprit range of a regression

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _none(suite: str, where: str, spec: BaselineSpec) -> Baseline:
    reason = f"no earlier passed run of suite {suite} on the same hardware {where}"
    return Baseline(None, None, None, reason, str(spec))


def choose(
    run: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]], spec: BaselineSpec = AUTO
) -> Baseline:
    """The baseline of ``run`` (a ``Store.run_branches`` row) among ``candidates``
    (``Store.baseline_candidates``: the newest per branch) as ``spec`` asks;
    ``spec`` may not be ``run:ID`` (that needs no choosing: :func:`select`)."""
    if spec.kind == "run":
        raise ValueError("run:ID is not chosen; select() looks the run up")
    newest: dict[str | None, Mapping[str, Any]] = {}
    for c in sorted(candidates, key=lambda c: (-(c["started_at"] or 0.0), str(c["run_id"]))):
        newest.setdefault(c["branch"], c)

    def found(c: Mapping[str, Any], reason: str) -> Baseline:
        return Baseline(
            str(c["run_id"]), c["branch"], c["started_at"], reason, str(spec), c.get("commit")
        )

    suite = run["suite"]
    if spec.kind == "latest":
        if not newest:
            return _none(suite, "on any branch", spec)
        best = max(newest.values(), key=lambda c: (c["started_at"] or 0.0, str(c["run_id"])))
        return found(best, "latest passed on any branch, as --baseline latest asked")
    if spec.kind == "branch":
        on = newest.get(spec.value)
        if on is None:
            return _none(suite, f"on branch {spec.value}", spec)
        return found(on, f"latest passed on branch {spec.value}, as --baseline asked")
    # auto: the target branch, else the default branch, else the run's own.
    order: list[tuple[str | None, str]] = []
    for key, what in (
        ("target_branch", "target branch"),
        ("default_branch", "default branch"),
        ("branch", "the run's own branch"),
    ):
        name = run.get(key)
        if name is not None and all(name != b for b, _ in order):
            order.append((name, f"{what} {name}"))
    if run.get("branch") is None:  # not a git checkout: runs like it are its history
        order.append((None, "runs with no branch recorded, like this one"))
    for name, what in order:
        if name in newest:
            return found(newest[name], f"latest passed on {what}")
    return _none(suite, "(" + ", ".join(what for _, what in order) + ")", spec)


def select(store: StoreReader, run_id: str, spec: BaselineSpec = AUTO) -> Baseline:
    """The baseline of stored run ``run_id`` (which must exist) as ``spec`` asks."""
    store.get_run(run_id)  # RunNotFoundError names it
    if spec.kind == "run":
        assert spec.value is not None
        try:
            other = store.get_run(spec.value)
        except RunNotFoundError as exc:
            raise RunNotFoundError(f"{exc}; --baseline takes {SYNTAX}") from exc
        meta = other.get("metadata") or {}
        return Baseline(
            spec.value, other.get("branch"), other["started_at"], "given with --baseline",
            str(spec), meta.get("commit"),
        )  # fmt: skip
    me = store.run_branches(run_id)
    assert me is not None
    return choose(me, store.baseline_candidates(run_id), spec)
