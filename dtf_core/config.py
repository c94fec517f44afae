"""dtf's defaults, registered with ``dask.config`` under the ``dtf:`` namespace."""

from __future__ import annotations

import pathlib
from typing import Any

import dask.config
import yaml

_FILE = pathlib.Path(__file__).with_name("dtf.yaml")
with _FILE.open() as _f:
    _DEFAULTS = yaml.safe_load(_f)

dask.config.update_defaults(_DEFAULTS)
dask.config.refresh()


def get(key: str, default: Any = None) -> Any:
    """Read ``dtf.<key>`` (kebab-case, dotted)."""
    return dask.config.get(f"dtf.{key}", default=default)


def seconds(key: str) -> float:
    """Read a duration setting as seconds (``"0.5s"``, ``"2m"`` or a number)."""
    value = get(key)
    return float(dask.utils.parse_timedelta(value, default="s"))
