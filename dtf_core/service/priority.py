"""Which priority a run submitted to ``dtf-core serve`` gets.

The service's configuration (``dtf.service.priority`` in dask config) maps token
subjects to what they may ask for::

    dtf:
      service:
        priority:
          default: 0            # a run that asks for nothing
          max: 0                # the most anyone may ask for
          submitters:           # by token subject, overriding both
            release-bot: {default: 100, max: 500}
            nightly: {default: -10, max: 0}

A submitter may always ask for less than its default (down to
``-PRIORITY_LIMIT``). Asking for more than its ``max`` is refused with 403, not
clamped: a run meant to block a release must not run silently as a nightly one,
and the submitter learns at once that its token is not allowed to. Admin tokens
may ask for anything within ``+-PRIORITY_LIMIT``.

Chosen over a claim in the token: a token outlives a change of policy (tokens
last days), while the configuration changes with a restart of the service.
"""

from __future__ import annotations

from typing import Any

from dtf_core import config
from dtf_core.cluster import security
from dtf_core.errors import AuthError, OptionError
from dtf_core.model import PRIORITY_LIMIT

__all__ = ["grant", "limits"]


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"dtf.service.priority: {where} must be an integer, got {value!r}")
    if not -PRIORITY_LIMIT <= value <= PRIORITY_LIMIT:
        span = f"-{PRIORITY_LIMIT}..{PRIORITY_LIMIT}"
        raise OptionError(f"dtf.service.priority: {where} = {value} is outside {span}")
    return value


def limits(subject: str) -> tuple[int, int]:
    """``(default, max)`` for a token subject, from the service's configuration."""
    table = config.get("service.priority", None) or {}
    if not isinstance(table, dict):
        raise OptionError("dtf.service.priority must be a table with default, max, submitters")
    default = _int(table.get("default", 0), "default")
    most = _int(table.get("max", 0), "max")
    own = (table.get("submitters") or {}).get(subject)
    if own is not None:
        if not isinstance(own, dict):
            raise OptionError(f"dtf.service.priority.submitters.{subject} must be a table")
        default = _int(own.get("default", default), f"submitters.{subject}.default")
        most = _int(own.get("max", max(most, default)), f"submitters.{subject}.max")
    return default, max(default, most)


def grant(claims: security.Claims, requested: Any) -> int:
    """The priority the run of ``claims.subject`` gets when it asks for ``requested``
    (None: its default). :class:`~dtf_core.errors.AuthError` (403) above its max,
    :class:`~dtf_core.errors.OptionError` for what is not an integer in range."""
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int)):
        raise OptionError(f"priority must be an integer, got {requested!r}")
    if requested is not None and not -PRIORITY_LIMIT <= requested <= PRIORITY_LIMIT:
        raise OptionError(f"priority {requested} is outside -{PRIORITY_LIMIT}..{PRIORITY_LIMIT}")
    if security.has_role(claims, "admin"):
        return 0 if requested is None else int(requested)
    default, most = limits(claims.subject)
    if requested is None:
        return default
    if requested > most:
        raise AuthError(
            f"priority {requested} is above what {claims.subject!r} may ask for ({most}); "
            "an admin raises it in dtf.service.priority.submitters",
            403,
        )
    return int(requested)
