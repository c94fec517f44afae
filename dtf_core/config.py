"""dtf's defaults, registered with ``dask.config`` under the ``dtf:`` namespace."""

from __future__ import annotations

import pathlib
from typing import Any

import dask.config
import yaml

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
