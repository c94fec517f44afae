"""Results as plain data on the wire: dicts, lists, strings, numbers, None.

Why: a Dask client unpickles what workers send, so a worker (and any task on
it: a task runs arbitrary code there) could make the coordinator run code by
returning a crafted object. Results therefore cross as msgpack-able plain data
(:func:`result_to_plain` on the worker) and the coordinator rebuilds the
dataclasses field by field (:func:`result_from_plain`), checking every type;
anything else is refused as :class:`WireError`. ``dtf-core serve``'s client
accepts nothing but msgpack (:mod:`dtf_core.cluster.safepickle`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dtf_core.model import AttemptResult, TestResult

__all__ = ["WireError", "result_from_plain", "result_to_plain"]

_PLAIN = (str, int, float, bool, type(None))


class WireError(ValueError):
    """A worker sent something that is not a well-formed plain result."""


def result_to_plain(result: AttemptResult) -> dict[str, Any]:
    return dataclasses.asdict(result)


def _plain(value: Any, depth: int = 0) -> bool:
    if depth > 16:
        return False
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):  # msgpack turns lists into tuples
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _as_lists(value: Any) -> Any:
    """msgpack's tuples back to lists, all the way down (a context is stored as JSON)."""
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_lists(v) for v in value]
    return value


_FIELDS = {f.name: f for f in dataclasses.fields(AttemptResult)}
_TEST_FIELDS = {f.name for f in dataclasses.fields(TestResult)}
_LISTS = ("samples", "remaining", "given")


def result_from_plain(data: Any) -> AttemptResult:
    """The :class:`AttemptResult` ``data`` describes, or :class:`WireError`."""
    if type(data) is not dict or not _plain(data):
        raise WireError(f"a result must be plain data, got {type(data).__name__}")
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise WireError(f"unknown result field(s): {', '.join(sorted(unknown))}")
    fields = dict(data)
    tests = []
    for t in fields.pop("tests", None) or ():
        if not isinstance(t, dict) or set(t) - _TEST_FIELDS:
            raise WireError("a test result must be a table of TestResult fields")
        tests.append(TestResult(**t))
    for name in _LISTS:
        if name in fields and fields[name] is not None:
            fields[name] = list(fields[name])
    if "context" in fields:
        if not isinstance(fields["context"], dict):
            raise WireError("result field context must be a table")
        fields["context"] = _as_lists(fields["context"])
    if fields.get("collected") is not None:
        fields["collected"] = [dict(c) if isinstance(c, dict) else c for c in fields["collected"]]
    try:
        res = AttemptResult(**fields, tests=tests)
    except TypeError as exc:
        raise WireError(f"malformed result: {exc}") from None
    for name in ("run_id", "task_id", "outcome"):
        if not isinstance(getattr(res, name), str):
            raise WireError(f"result field {name} must be a string")
    if not isinstance(res.attempt, int) or isinstance(res.attempt, bool):
        raise WireError("result field attempt must be an integer")
    return res
