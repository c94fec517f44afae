"""The one backoff formula: exponential, capped, with optional symmetric jitter.

Used wherever dtf waits before trying again (a failed attempt's retry in
:mod:`dtf_core.run.retry`, a worker relaunch in :mod:`dtf_core.cluster.supervisor`).
A base module (no dtf imports) so that every layer may use it.
"""

from __future__ import annotations

import random

# 2**62 times any sensible base is far past any cap; a bigger exponent would
# only risk an OverflowError after days of relaunches.
_MAX_EXPONENT = 62


def backoff(
    failures: int, base: float, cap: float, jitter: float = 0.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0: the first wait).

    ``base * 2**failures``, capped at ``cap``; with ``jitter`` (a fraction, +-)
    spread symmetrically around that so that many waiters failing together (a
    lost worker) do not come back in one burst.
    """
    delay = min(cap, base * 2 ** min(max(0, failures), _MAX_EXPONENT))
    if jitter <= 0:
        return delay
    r = (rng or random).uniform(-jitter, jitter)
    return max(0.0, delay * (1.0 + r))
