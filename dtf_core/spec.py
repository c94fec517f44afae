"""Load a suite file (TOML) into a validated, matrix-expanded :class:`~dtf_core.model.Suite`.

Every bad input becomes one :class:`~dtf_core.errors.SpecError` whose one-line message names
the file, the task and the key, says what is wrong and how to fix it. Loading never touches a
database or a cluster. By default benchmark modules are imported to prove they exist, under
throwaway names that are dropped afterwards (:mod:`dtf_core.codeload`); modules they import from
outside the suite directory (installed packages) stay imported. ``run_code=False`` (what
``dtf-core serve`` uses) checks them statically instead (:func:`dtf_core.codeload.check_static`).
The format is documented in ``docs/suite-format.md``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import itertools
import math
import os
import re
import shlex
import tomllib
from collections.abc import Iterable
from typing import Any, NoReturn

from dtf_core import codeload
from dtf_core.errors import SpecError
from dtf_core.model import ClusterSpec, Suite, TaskKind, TaskSpec

__all__ = ["MAX_EXPANSION", "load_suite", "parse_duration"]

MAX_EXPANSION = 10_000  # per [[task]] entry: a typo in a matrix should not queue a million tasks
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 2

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTION_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_DURATION_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
_DURATION_RE = re.compile(rf"(?:{_DURATION_PART})+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_TOP_KEYS = ("suite", "defaults", "cluster", "task", "dtf")
_DTF_KEYS = ("speculation",)
_SUITE_KEYS = ("name", "description")
_CLUSTER_KEYS = ("workers", "threads_per_worker", "worker_resources")
_DEFAULT_KEYS = (
    *("timeout", "retries", "rerun_failures", "requires", "env", "pytest_args"),
    *("repeat", "warmup"),
)
_COMMON_KEYS = ("name", "kind", "timeout", "retries", "rerun_failures", "requires", "env", "cwd")
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "pytest": ("path", "pytest_args"),
    "benchmark": ("function", "params", "repeat", "warmup", "unit", "higher_is_better"),
    "command": ("command", "params"),
}
_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}


class _Where:
    """Where an error is: the file, the task label and a key prefix like ``defaults.``."""

    def __init__(self, file: str, task: str | None = None, prefix: str = "") -> None:
        self.file, self.task, self.prefix = file, task, prefix

    def fail(self, key: str | None, message: str) -> NoReturn:
        one_line = " ".join(message.split())  # exception texts may span lines; errors must not
        full_key = f"{self.prefix}{key}" if key else (self.prefix.rstrip(".") or None)
        raise SpecError(self.file, one_line, task=self.task, key=full_key)


def _type_name(value: Any) -> str:
    return (
        "table" if isinstance(value, dict) else _TOML_TYPES.get(type(value), type(value).__name__)
    )


def _got(value: Any) -> str:
    return f"{_type_name(value)} {value!r}"


def parse_duration(
    value: Any, *, file: str = "<input>", task: str | None = None, key: str | None = "timeout"
) -> float:
    """Seconds from ``30``, ``1.5``, ``"60s"``, ``"1.5m"``, ``"2h"``, ``"500ms"`` or ``"1h30m"``."""
    where = _Where(file, task)
    hint = "expected a positive duration like '60s', '2m', '1h30m' or a number of seconds"
    if isinstance(value, bool):
        where.fail(key, f"{hint}, got {_got(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if _DURATION_RE.fullmatch(text):
            parts = re.findall(_DURATION_PART, text)
            seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in parts)
        else:
            try:
                seconds = float(text)
            except ValueError:
                where.fail(key, f"{hint}, got {value!r}")
    else:
        where.fail(key, f"{hint}, got {_got(value)}")
    if not math.isfinite(seconds) or seconds <= 0:
        where.fail(key, f"{hint}, got {value!r} (it must be greater than zero)")
    return seconds


def _check_keys(where: _Where, table: dict[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(allowed)}"
            where.fail(key, f"unknown key '{key}'; {hint}")


def _table(where: _Where, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        where.fail(key, f"expected a table like {key} = {{ ... }}, got {_got(value)}")
    return value


def _int(where: _Where, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    fix = "; remove the quotes" if isinstance(value, str) and value.strip().isdigit() else ""
    where.fail(key, f"expected {what} like {key} = {max(minimum, 2)}, got {_got(value)}{fix}")


def _str(where: _Where, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        where.fail(key, f'expected a non-empty string like {key} = "...", got {_got(value)}')
    return value


def _name(where: _Where, key: str, value: Any) -> str:
    name = _str(where, key, value)
    if not _NAME_RE.fullmatch(name):
        where.fail(key, f"{name!r} has characters outside [A-Za-z0-9_.-]; rename it")
    return name


def _str_list(where: _Where, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        # A plain string is a convenience: split it the way a shell would.
        try:
            return shlex.split(value)
        except ValueError as exc:
            where.fail(key, f"cannot split {value!r} like a shell would ({exc}); use a list")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        where.fail(key, f'expected a list of strings like {key} = ["a", "b"], got {_got(value)}')
    return list(value)


def _env(where: _Where, key: str, value: Any) -> dict[str, str]:
    table = _table(where, key, value)
    for name, val in table.items():
        if not isinstance(val, str):
            where.fail(key, f'{name} must be a string, got {_got(val)}; quote it: {name} = "{val}"')
    return dict(table)


def _resources(where: _Where, key: str, value: Any) -> dict[str, float]:
    table = _table(where, key, value)
    out: dict[str, float] = {}
    for name, amount in table.items():
        if not _IDENT_RE.fullmatch(name):
            where.fail(key, f"resource name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
        number = isinstance(amount, int | float) and not isinstance(amount, bool)
        if not number or not math.isfinite(amount) or amount <= 0:
            where.fail(key, f"{name} must be a positive number like {name} = 1, got {_got(amount)}")
        out[name] = float(amount)
    return out


def _common(where: _Where, table: dict[str, Any]) -> dict[str, Any]:
    """Validate the keys that may sit in [defaults] as well as in a task."""
    checks: dict[str, Any] = {
        "timeout": lambda k, v: parse_duration(
            v, file=where.file, task=where.task, key=where.prefix + k
        ),
        "retries": lambda k, v: _int(where, k, v, 0),
        "rerun_failures": lambda k, v: _int(where, k, v, 0),
        "requires": lambda k, v: _resources(where, k, v),
        "env": lambda k, v: _env(where, k, v),
        "pytest_args": lambda k, v: _str_list(where, k, v),
        "repeat": lambda k, v: _int(where, k, v, 1),
        "warmup": lambda k, v: _int(where, k, v, 0),
    }
    return {k: checks[k](k, v) for k, v in table.items() if k in checks}


def _params(where: _Where, value: Any) -> dict[str, list[Any]]:
    table = _table(where, "params", value)
    out: dict[str, list[Any]] = {}
    for name, values in table.items():
        if not _IDENT_RE.fullmatch(name):
            where.fail("params", f"parameter name {name!r} must be a Python identifier")
        values = values if isinstance(values, list) else [values]
        if not values:
            where.fail("params", f"{name} is an empty list; give at least one value")
        for v in values:
            if isinstance(v, dict | list) or type(v) not in _TOML_TYPES:
                where.fail(
                    "params", f"{name} values must be strings, numbers or booleans, got {_got(v)}"
                )
        out[name] = values
    return out


def _fmt(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _expand(where: _Where, name: str, params: dict[str, list[Any]]) -> list[tuple[str, dict]]:
    if not params:
        return [(name, {})]
    keys = sorted(params)
    total = math.prod(len(params[k]) for k in keys)
    if total > MAX_EXPANSION:
        sizes = " x ".join(f"{k}={len(params[k])}" for k in keys)
        where.fail(
            "params",
            f"the matrix expands to {total:,} tasks ({sizes}); the limit is "
            f"{MAX_EXPANSION:,} per [[task]]: split it into several tasks or drop values",
        )
    out = []
    for combo in itertools.product(*(params[k] for k in keys)):
        chosen = dict(zip(keys, combo, strict=True))
        label = ",".join(f"{k}={_fmt(v)}" for k, v in chosen.items())
        out.append((f"{name}[{label}]", chosen))
    return out


def _substitute(text: str, params: dict[str, Any]) -> str:
    # Plain replace, not str.format: argv like `python -c "d = {}"` must survive untouched.
    for k, v in params.items():
        text = text.replace("{" + k + "}", _fmt(v))
    return text


def _check_function(where: _Where, space: codeload.CodeSpace, target: str, run_code: bool) -> None:
    """Without ``run_code``: locate and parse the module, run nothing
    (:func:`dtf_core.codeload.check_static`). With it: import the module into ``space`` (the
    suite's code under throwaway names, dropped when loading ends: no global
    ``sys.path`` or ``sys.modules`` change)."""
    if not _FUNCTION_RE.fullmatch(target):
        where.fail(
            "function", f"expected 'module:callable' like 'demo.bench:matmul', got {target!r}"
        )
    module, attr = target.split(":", 1)
    if not run_code:
        why = codeload.check_static(space.root, module, attr, space.is_local(module.split(".")[0]))
        if why is not None:
            where.fail("function", why)
        return
    if not space.is_local(module.partition(".")[0]):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None  # a parent package is missing
        except Exception as exc:
            where.fail("function", f"importing {module!r} raised {type(exc).__name__}: {exc}")
        if found is None:
            where.fail(
                "function", f"module {module!r} not found (looked in {space.root} and sys.path)"
            )
    try:
        obj: Any = space.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module or module.startswith(missing + "."):
            where.fail("function", f"module {module!r} not found ({exc})")
        # A dependency this machine lacks (cupy on a CPU-only coordinator) may exist on the
        # worker that runs the benchmark, so the attribute check is left to the worker.
        return
    except (Exception, SystemExit) as exc:  # user code may even call sys.exit on import
        where.fail("function", f"importing {module!r} raised {type(exc).__name__}: {exc}")
    for part in attr.split("."):
        if not hasattr(obj, part):
            where.fail("function", f"module {module!r} has no callable {attr!r}; check the name")
        obj = getattr(obj, part)
    if not callable(obj):
        where.fail("function", f"{target!r} is a {type(obj).__name__}, not a callable")


def _existing(where: _Where, key: str, root: str, value: Any, want_dir: bool) -> str:
    raw = _str(where, key, value)
    # pytest accepts node ids (file.py::test_x); only the file part has to exist.
    file_part, sep, node = raw.partition("::") if key == "path" else (raw, "", "")
    full = os.path.normpath(os.path.join(root, file_part))
    ok = os.path.isdir(full) if want_dir else os.path.exists(full)
    if not ok:
        what = "directory" if want_dir else "file or directory"
        where.fail(key, f"{what} {raw!r} does not exist (resolved to {full}; relative to {root})")
    return full + sep + node


def _task(
    file: str,
    space: codeload.CodeSpace,
    index: int,
    raw: Any,
    defaults: dict[str, Any],
    run_code: bool,
) -> list[TaskSpec]:
    root = space.root
    label = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else None
    where = _Where(file, label or f"#{index + 1}")
    if not isinstance(raw, dict):
        where.fail(None, f"each [[task]] must be a table, got {_got(raw)}")
    if "name" not in raw:
        where.fail("name", 'missing required key; add name = "..." to this [[task]]')
    name = _name(where, "name", raw["name"])
    if "kind" not in raw:
        where.fail("kind", 'missing required key; add kind = "pytest", "benchmark" or "command"')
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in _KIND_KEYS:
        where.fail("kind", f"expected one of 'pytest', 'benchmark', 'command', got {_got(kind)}")
    mine = _COMMON_KEYS + _KIND_KEYS[kind]
    for key in raw:
        owners = [k for k, keys in _KIND_KEYS.items() if key in keys and key not in mine]
        if owners:
            only = " or ".join(owners)
            where.fail(
                key, f"'{key}' only applies to {only} tasks; remove it from this {kind} task"
            )
    _check_keys(where, raw, mine)

    values = {k: v for k, v in defaults.items() if k in mine}
    values.update(_common(where, raw))
    for merged in ("requires", "env"):  # tables merge key by key; the task's value wins
        values[merged] = {**defaults.get(merged, {}), **values.get(merged, {})}
    fields: dict[str, Any] = {
        "name": name,
        "kind": TaskKind(kind),
        "root": root,
        "timeout": values.get("timeout", DEFAULT_TIMEOUT),
        "retries": values.get("retries", DEFAULT_RETRIES),
        "rerun_failures": values.get("rerun_failures", 0),
        "requires": values["requires"],
        "env": values["env"],
        "cwd": _existing(where, "cwd", root, raw["cwd"], True) if "cwd" in raw else None,
    }
    for key in ("pytest_args", "repeat", "warmup"):
        if key in values:
            fields[key] = values[key]
    if kind == "pytest":
        if "path" not in raw:
            where.fail("path", 'missing required key; add path = "tests" (relative to the suite)')
        fields["path"] = _existing(where, "path", root, raw["path"], False)
    elif kind == "benchmark":
        if "function" not in raw:
            where.fail("function", 'missing required key; add function = "module:callable"')
        fields["function"] = _str(where, "function", raw["function"])
        _check_function(where, space, fields["function"], run_code)
        if "unit" in raw:
            fields["unit"] = _str(where, "unit", raw["unit"])
        if "higher_is_better" in raw:
            if not isinstance(raw["higher_is_better"], bool):
                where.fail(
                    "higher_is_better",
                    f"expected true or false, got {_got(raw['higher_is_better'])}",
                )
            fields["higher_is_better"] = raw["higher_is_better"]
    else:
        if "command" not in raw:
            where.fail("command", 'missing required key; add command = ["program", "arg"]')
        fields["command"] = _str_list(where, "command", raw["command"])
        if not fields["command"] or not fields["command"][0]:
            where.fail("command", 'is empty; give the program and its arguments: ["python", "-V"]')

    params = _params(where, raw["params"]) if "params" in raw else {}
    tasks = []
    for task_id, chosen in _expand(where, name, params):
        spec = dict(fields, task_id=task_id, params=chosen)
        if kind == "command" and chosen:
            spec["command"] = [_substitute(arg, chosen) for arg in fields["command"]]
            spec["env"] = {k: _substitute(v, chosen) for k, v in fields["env"].items()}
        tasks.append(TaskSpec(**spec))
    return tasks


def _cluster(file: str, raw: Any) -> ClusterSpec:
    where = _Where(file, prefix="cluster.")
    table = _table(_Where(file), "cluster", raw)
    _check_keys(where, table, _CLUSTER_KEYS)
    workers = _int(where, "workers", table["workers"], 1) if "workers" in table else None
    threads = table.get("threads_per_worker")
    threads = _int(where, "threads_per_worker", threads, 1) if threads is not None else None
    resources: list[dict[str, float]] = []
    raw_res = table.get("worker_resources", [])
    if not isinstance(raw_res, list):
        where.fail(
            "worker_resources",
            f"expected a list of tables like [{{}}, {{ GPU = 1 }}], got {_got(raw_res)}",
        )
    for i, entry in enumerate(raw_res):
        resources.append(_resources(where, f"worker_resources[{i}]", entry))
    if workers is not None and len(resources) > workers:
        where.fail(
            "worker_resources",
            f"has {len(resources)} entries but workers = {workers}; "
            "give at most one table per worker or raise workers",
        )
    return ClusterSpec(workers=workers, threads_per_worker=threads, worker_resources=resources)


def _settings(file: str, raw: Any) -> dict[str, Any]:
    """The ``[dtf]`` table: dtf settings for this suite's runs."""
    where = _Where(file, prefix="dtf.")
    table = _table(_Where(file), "dtf", raw)
    _check_keys(where, table, _DTF_KEYS)
    if "speculation" in table and not isinstance(table["speculation"], bool):
        where.fail("speculation", f"expected true or false, got {_got(table['speculation'])}")
    return dict(table)


def load_suite(path: str | os.PathLike[str], *, run_code: bool = True) -> Suite:
    """Read, validate and expand a suite file. Raises :class:`SpecError` for every bad input.

    ``run_code=True`` (local use: your own suite on your own machine) imports
    each benchmark module to prove its callable exists. ``run_code=False``
    (every service path: the suite is someone else's) only reads files and
    parses them; nothing of the suite executes in this process."""
    file = os.fspath(path)
    where = _Where(file)
    try:
        with open(file, "rb") as fh:
            data = tomllib.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        where.fail(None, "file not found; check the path (it is relative to the current directory)")
    except IsADirectoryError:
        where.fail(None, "is a directory; give the path of a .toml suite file")
    except OSError as exc:
        where.fail(None, f"cannot read the file: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        where.fail(None, f"is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8")
    except tomllib.TOMLDecodeError as exc:
        where.fail(None, f"invalid TOML: {exc}; fix the syntax there")

    root = os.path.dirname(os.path.abspath(file))
    _check_keys(where, data, _TOP_KEYS)
    if "suite" not in data:
        where.fail("suite", 'missing [suite] table; add [suite] with name = "my-suite"')
    suite = _table(where, "suite", data["suite"])
    suite_where = _Where(file, prefix="suite.")
    _check_keys(suite_where, suite, _SUITE_KEYS)
    if "name" not in suite:
        suite_where.fail("name", 'missing required key; add name = "my-suite" under [suite]')
    name = _name(suite_where, "name", suite["name"])
    metadata: dict[str, Any] = {}
    if "description" in suite:
        metadata["description"] = _str(suite_where, "description", suite["description"])

    defaults_raw = _table(where, "defaults", data.get("defaults", {}))
    defaults_where = _Where(file, prefix="defaults.")
    _check_keys(defaults_where, defaults_raw, _DEFAULT_KEYS)
    defaults = _common(defaults_where, defaults_raw)
    cluster = _cluster(file, data["cluster"]) if "cluster" in data else ClusterSpec()
    settings = _settings(file, data["dtf"]) if "dtf" in data else {}

    raw_tasks = data.get("task", [])
    if isinstance(raw_tasks, dict):
        where.fail("task", "found [task]; write [[task]] (double brackets) for each task")
    if not isinstance(raw_tasks, list):
        where.fail("task", f"expected [[task]] tables, got {_got(raw_tasks)}")
    if not raw_tasks:
        where.fail("task", "the suite has no tasks; add at least one [[task]] table")
    tasks: list[TaskSpec] = []
    seen: set[str] = set()
    space = codeload.scratch_space(root)
    try:
        for index, raw in enumerate(raw_tasks):
            expanded = _task(file, space, index, raw, defaults, run_code)
            task_name = expanded[0].name
            if task_name in seen:
                _Where(file, task_name).fail(
                    "name", "duplicate task name; give each [[task]] a unique name"
                )
            seen.add(task_name)
            tasks.extend(expanded)
    finally:
        space.forget()
    return Suite(
        name=name, path=os.path.abspath(file), tasks=tasks, cluster=cluster, metadata=metadata,
        settings=settings,
    )  # fmt: skip
