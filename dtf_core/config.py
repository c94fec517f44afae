"""dtf's defaults, registered with ``dask.config`` under the ``dtf:`` namespace."""

from __future__ import annotations

import pathlib
from typing import Any

import dask.config
import yaml

from dtf_core.errors import OptionError

_FILE = pathlib.Path(__file__).with_name("dtf.yaml")
# libyaml's loader when PyYAML has it: the pure-Python one took ~20 ms (5x) of every
# process's start (the command and each embedded worker read this file).
with _FILE.open() as _f:
    _DEFAULTS = yaml.load(_f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

dask.config.update_defaults(_DEFAULTS)
dask.config.refresh()


def get(key: str, default: Any = None) -> Any:
    """Read ``dtf.<key>`` (kebab-case, dotted)."""
    return dask.config.get(f"dtf.{key}", default=default)


def seconds(key: str) -> float:
    """Read a duration setting as seconds (``"0.5s"``, ``"2m"`` or a number)."""
    value = get(key)
    return float(dask.utils.parse_timedelta(value, default="s"))


def whole_number(key: str, minimum: int = 1) -> int:
    """Read a count setting; a bad value is an OptionError that names the
    setting and its environment variable, not a traceback."""
    value = get(key)
    try:
        number = int(value)
        ok = number == value or (isinstance(value, str) and value.strip().isdigit())
    except (TypeError, ValueError):
        ok = False
    if not ok or number < minimum:
        env = "DASK_DTF__" + key.upper().replace(".", "__").replace("-", "_")
        raise OptionError(
            f"dtf.{key} = {value!r}: must be a whole number >= {minimum} "
            f"(set it in a Dask config file or as {env})"
        )
    return number
