"""Which way is better for a benchmark: the rule every verdict uses.

1. A task's own ``higher_is_better`` (suite files: ``higher_is_better = true``;
   imports: an optional ``higher_is_better`` column) wins.
2. Otherwise the unit decides: a rate (anything per time: ``ops/s``,
   ``items/sec``, ``GB/s``, ``req/min``, ``1/s``) or one of ``hz``, ``fps``,
   ``ops``, ``score``, ``speedup``, ``x`` is higher-is-better.
3. Everything else (``s``, ``ms``, ``ns``, ``bytes``, ``MiB``, unknown) is
   lower-is-better: times and sizes are what benchmarks measure most.
"""

from __future__ import annotations

import re

import numpy as np

_RATE = re.compile(
    r"(/\s*|\bper\s*)(s|sec|secs|second|seconds|ms|us|µs|ns|min|minute|h|hr|hour)$", re.I
)
_HIGHER_UNITS = frozenset({"hz", "khz", "mhz", "ghz", "fps", "ops", "score", "speedup", "x"})


def higher_is_better(unit: str | None, explicit: object = None) -> bool:
    """The rule above; ``explicit`` counts only when it is a real boolean (not None/NA)."""
    if isinstance(explicit, (bool, np.bool_)):
        return bool(explicit)
    u = (unit or "").strip()
    return bool(_RATE.search(u)) or u.lower() in _HIGHER_UNITS


def worse(change: float, higher_better: bool) -> float:
    """``change`` (relative, run vs before) signed so that positive means worse."""
    return -change if higher_better else change
