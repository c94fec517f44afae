"""The field checks of suite files: where an error is, and each value's type
and range, every failure one :class:`~dtf_core.errors.SpecError` naming the
file, the task and the key (:mod:`dtf_core.spec` loads the file)."""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Iterable
from typing import Any, NoReturn

from dtf_core.errors import SpecError
from dtf_core.model import PRIORITY_LIMIT

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FUNCTION_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
DURATION_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
DURATION_RE = re.compile(rf"(?:{DURATION_PART})+")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}


class Where:
    """Where an error is: the file, the task label and a key prefix like ``defaults.``."""

    def __init__(self, file: str, task: str | None = None, prefix: str = "") -> None:
        self.file, self.task, self.prefix = file, task, prefix

    def fail(self, key: str | None, message: str) -> NoReturn:
        one_line = " ".join(message.split())  # exception texts may span lines; errors must not
        full_key = f"{self.prefix}{key}" if key else (self.prefix.rstrip(".") or None)
        raise SpecError(self.file, one_line, task=self.task, key=full_key)


def type_name(value: Any) -> str:
    return "table" if isinstance(value, dict) else TOML_TYPES.get(type(value), type(value).__name__)


def got(value: Any) -> str:
    return f"{type_name(value)} {value!r}"


def parse_duration(
    value: Any, *, file: str = "<input>", task: str | None = None, key: str | None = "timeout"
) -> float:
    """Seconds from ``30``, ``1.5``, ``"60s"``, ``"1.5m"``, ``"2h"``, ``"500ms"`` or ``"1h30m"``."""
    where = Where(file, task)
    hint = "expected a positive duration like '60s', '2m', '1h30m' or a number of seconds"
    if isinstance(value, bool):
        where.fail(key, f"{hint}, got {got(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if DURATION_RE.fullmatch(text):
            parts = re.findall(DURATION_PART, text)
            seconds = sum(float(num) * UNIT_SECONDS[unit] for num, unit in parts)
        else:
            try:
                seconds = float(text)
            except ValueError:
                where.fail(key, f"{hint}, got {value!r}")
    else:
        where.fail(key, f"{hint}, got {got(value)}")
    if not math.isfinite(seconds) or seconds <= 0:
        where.fail(key, f"{hint}, got {value!r} (it must be greater than zero)")
    return seconds


def check_keys(where: Where, table: dict[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(allowed)}"
            where.fail(key, f"unknown key '{key}'; {hint}")


def as_table(where: Where, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        where.fail(key, f"expected a table like {key} = {{ ... }}, got {got(value)}")
    return value


def as_int(where: Where, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    fix = "; remove the quotes" if isinstance(value, str) and value.strip().isdigit() else ""
    where.fail(key, f"expected {what} like {key} = {max(minimum, 2)}, got {got(value)}{fix}")


def as_priority(where: Where, key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= PRIORITY_LIMIT:
        return value
    span = f"from -{PRIORITY_LIMIT} to {PRIORITY_LIMIT}"
    where.fail(key, f"expected an integer {span} like {key} = 10 (higher first), got {got(value)}")


def as_str(where: Where, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        where.fail(key, f'expected a non-empty string like {key} = "...", got {got(value)}')
    return value


def as_name(where: Where, key: str, value: Any) -> str:
    name = as_str(where, key, value)
    if not NAME_RE.fullmatch(name):
        where.fail(key, f"{name!r} has characters outside [A-Za-z0-9_.-]; rename it")
    return name


def as_str_list(where: Where, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        # A plain string is a convenience: split it the way a shell would.
        try:
            return shlex.split(value)
        except ValueError as exc:
            where.fail(key, f"cannot split {value!r} like a shell would ({exc}); use a list")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        where.fail(key, f'expected a list of strings like {key} = ["a", "b"], got {got(value)}')
    return list(value)


def as_env(where: Where, key: str, value: Any) -> dict[str, str]:
    table = as_table(where, key, value)
    for name, val in table.items():
        if not isinstance(val, str):
            where.fail(key, f'{name} must be a string, got {got(val)}; quote it: {name} = "{val}"')
    return dict(table)


def as_resources(where: Where, key: str, value: Any) -> dict[str, float]:
    table = as_table(where, key, value)
    out: dict[str, float] = {}
    for name, amount in table.items():
        if not IDENT_RE.fullmatch(name):
            where.fail(key, f"resource name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
        number = isinstance(amount, int | float) and not isinstance(amount, bool)
        if not number or not math.isfinite(amount) or amount <= 0:
            where.fail(key, f"{name} must be a positive number like {name} = 1, got {got(amount)}")
        out[name] = float(amount)
    return out
