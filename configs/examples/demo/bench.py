"""Benchmark functions for the example suites.

dtf calls each function with the task's ``params`` as keyword arguments and times every call;
each call does the work once, so one call is one sample.
"""

from __future__ import annotations

import json
import random

import numpy as np


def matmul(n: int = 128, block: int | None = None) -> float:
    """Multiply two n x n float64 matrices, in ``block`` x ``block`` tiles when given.

    ``block`` is a knob, not a problem size: every value computes the same product.
    Small tiles pay Python's per-call cost many times; the best size depends on the
    machine and on n, which is what `dtf-core best` answers.
    """
    rng = np.random.default_rng(0)
    a = rng.random((n, n))
    b = rng.random((n, n))
    if not block or block >= n:
        return float((a @ b).sum())
    c = np.zeros((n, n))
    for i in range(0, n, block):
        for j in range(0, n, block):
            c[i : i + block, j : j + block] = a[i : i + block, :] @ b[:, j : j + block]
    return float(c.sum())


def sort_list(size: int = 10_000) -> int:
    """Sort a shuffled list of ints (fixed seed, so every sample does the same work)."""
    items = list(range(size))
    random.Random(size).shuffle(items)
    items.sort()
    return items[-1] if items else 0


def json_roundtrip(records: int = 1_000) -> int:
    """Serialise and parse a list of small records."""
    data = [
        {"id": i, "name": f"item-{i}", "tags": ["a", "b"], "score": i * 0.5} for i in range(records)
    ]
    return len(json.loads(json.dumps(data)))
