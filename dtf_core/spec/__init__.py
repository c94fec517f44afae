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

import importlib
import importlib.util
import itertools
import math
import os
import tomllib
from typing import Any

from dtf_core import codeload
from dtf_core.model import ClusterSpec, Suite, TaskKind, TaskSpec
from dtf_core.spec.fields import (
    FUNCTION_RE,
    IDENT_RE,
    TOML_TYPES,
    Where,
    as_env,
    as_int,
    as_name,
    as_priority,
    as_resources,
    as_str,
    as_str_list,
    as_table,
    check_keys,
    got,
    parse_duration,
)

__all__ = ["MAX_EXPANSION", "load_suite", "parse_duration"]

MAX_EXPANSION = 10_000  # per [[task]] entry: a typo in a matrix should not queue a million tasks
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 2

_TOP_KEYS = ("suite", "defaults", "cluster", "task", "dtf")
_DTF_KEYS = ("speculation",)
_SUITE_KEYS = ("name", "description")
_CLUSTER_KEYS = ("workers", "threads_per_worker", "worker_resources")
_DEFAULT_KEYS = (
    *("timeout", "retries", "rerun_failures", "requires", "env", "pytest_args"),
    *("repeat", "warmup", "priority"),
)
_COMMON_KEYS = (
    *("name", "kind", "timeout", "retries", "rerun_failures", "requires", "env", "cwd"),
    "priority",
)
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "pytest": ("path", "pytest_args"),
    "benchmark": ("function", "params", "tune", "repeat", "warmup", "unit", "higher_is_better"),
    "command": ("command", "params"),
}


def _common(where: Where, table: dict[str, Any]) -> dict[str, Any]:
    """Validate the keys that may sit in [defaults] as well as in a task."""
    checks: dict[str, Any] = {
        "timeout": lambda k, v: parse_duration(
            v, file=where.file, task=where.task, key=where.prefix + k
        ),
        "retries": lambda k, v: as_int(where, k, v, 0),
        "rerun_failures": lambda k, v: as_int(where, k, v, 0),
        "requires": lambda k, v: as_resources(where, k, v),
        "env": lambda k, v: as_env(where, k, v),
        "pytest_args": lambda k, v: as_str_list(where, k, v),
        "repeat": lambda k, v: as_int(where, k, v, 1),
        "warmup": lambda k, v: as_int(where, k, v, 0),
        "priority": lambda k, v: as_priority(where, k, v),
    }
    return {k: checks[k](k, v) for k, v in table.items() if k in checks}


def _params(where: Where, value: Any, key: str = "params") -> dict[str, list[Any]]:
    table = as_table(where, key, value)
    out: dict[str, list[Any]] = {}
    for name, values in table.items():
        if not IDENT_RE.fullmatch(name):
            where.fail(key, f"parameter name {name!r} must be a Python identifier")
        values = values if isinstance(values, list) else [values]
        if not values:
            where.fail(key, f"{name} is an empty list; give at least one value")
        for v in values:
            if isinstance(v, dict | list) or type(v) not in TOML_TYPES:
                where.fail(key, f"{name} values must be strings, numbers or booleans, got {got(v)}")
        out[name] = values
    return out


def _fmt(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _expand(where: Where, name: str, params: dict[str, list[Any]]) -> list[tuple[str, dict]]:
    """Every combination of ``params`` (measured inputs, then tuned settings: the order given)."""
    if not params:
        return [(name, {})]
    keys = list(params)
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


def _check_function(where: Where, space: codeload.CodeSpace, target: str, run_code: bool) -> None:
    """Without ``run_code``: locate and parse the module, run nothing
    (:func:`dtf_core.codeload.check_static`). With it: import the module into ``space`` (the
    suite's code under throwaway names, dropped when loading ends: no global
    ``sys.path`` or ``sys.modules`` change)."""
    if not FUNCTION_RE.fullmatch(target):
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


def _existing(where: Where, key: str, root: str, value: Any, want_dir: bool) -> str:
    raw = as_str(where, key, value)
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
    where = Where(file, label or f"#{index + 1}")
    if not isinstance(raw, dict):
        where.fail(None, f"each [[task]] must be a table, got {got(raw)}")
    if "name" not in raw:
        where.fail("name", 'missing required key; add name = "..." to this [[task]]')
    name = as_name(where, "name", raw["name"])
    if "kind" not in raw:
        where.fail("kind", 'missing required key; add kind = "pytest", "benchmark" or "command"')
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in _KIND_KEYS:
        where.fail("kind", f"expected one of 'pytest', 'benchmark', 'command', got {got(kind)}")
    mine = _COMMON_KEYS + _KIND_KEYS[kind]
    for key in raw:
        owners = [k for k, keys in _KIND_KEYS.items() if key in keys and key not in mine]
        if owners:
            only = " or ".join(owners)
            where.fail(
                key, f"'{key}' only applies to {only} tasks; remove it from this {kind} task"
            )
    check_keys(where, raw, mine)

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
    for key in ("pytest_args", "repeat", "warmup", "priority"):
        if key in values:
            fields[key] = values[key]
    if kind == "pytest":
        if "path" not in raw:
            where.fail("path", 'missing required key; add path = "tests" (relative to the suite)')
        fields["path"] = _existing(where, "path", root, raw["path"], False)
    elif kind == "benchmark":
        if "function" not in raw:
            where.fail("function", 'missing required key; add function = "module:callable"')
        fields["function"] = as_str(where, "function", raw["function"])
        _check_function(where, space, fields["function"], run_code)
        if "unit" in raw:
            fields["unit"] = as_str(where, "unit", raw["unit"])
        if "higher_is_better" in raw:
            if not isinstance(raw["higher_is_better"], bool):
                where.fail(
                    "higher_is_better",
                    f"expected true or false, got {got(raw['higher_is_better'])}",
                )
            fields["higher_is_better"] = raw["higher_is_better"]
    else:
        if "command" not in raw:
            where.fail("command", 'missing required key; add command = ["program", "arg"]')
        fields["command"] = as_str_list(where, "command", raw["command"])
        if not fields["command"] or not fields["command"][0]:
            where.fail("command", 'is empty; give the program and its arguments: ["python", "-V"]')

    params = _params(where, raw["params"]) if "params" in raw else {}
    # What is tuned (a knob to pick the best of) apart from what is measured (the input).
    tune = _params(where, raw["tune"], "tune") if "tune" in raw else {}
    for both in sorted(set(params) & set(tune)):
        where.fail(f"tune.{both}", f"'{both}' is in params and in tune; keep it in one of them")
    fields["tune"] = sorted(tune)
    tasks = []
    matrix = {k: params[k] for k in sorted(params)} | {k: tune[k] for k in sorted(tune)}
    for task_id, chosen in _expand(where, name, matrix):
        spec = dict(fields, task_id=task_id, params=chosen)
        if kind == "command" and chosen:
            spec["command"] = [_substitute(arg, chosen) for arg in fields["command"]]
            spec["env"] = {k: _substitute(v, chosen) for k, v in fields["env"].items()}
        tasks.append(TaskSpec(**spec))
    return tasks


def _cluster(file: str, raw: Any) -> ClusterSpec:
    where = Where(file, prefix="cluster.")
    table = as_table(Where(file), "cluster", raw)
    check_keys(where, table, _CLUSTER_KEYS)
    workers = as_int(where, "workers", table["workers"], 1) if "workers" in table else None
    threads = table.get("threads_per_worker")
    threads = as_int(where, "threads_per_worker", threads, 1) if threads is not None else None
    resources: list[dict[str, float]] = []
    raw_res = table.get("worker_resources", [])
    if not isinstance(raw_res, list):
        where.fail(
            "worker_resources",
            f"expected a list of tables like [{{}}, {{ GPU = 1 }}], got {got(raw_res)}",
        )
    for i, entry in enumerate(raw_res):
        resources.append(as_resources(where, f"worker_resources[{i}]", entry))
    if workers is not None and len(resources) > workers:
        where.fail(
            "worker_resources",
            f"has {len(resources)} entries but workers = {workers}; "
            "give at most one table per worker or raise workers",
        )
    return ClusterSpec(workers=workers, threads_per_worker=threads, worker_resources=resources)


def _settings(file: str, raw: Any) -> dict[str, Any]:
    """The ``[dtf]`` table: dtf settings for this suite's runs."""
    where = Where(file, prefix="dtf.")
    table = as_table(Where(file), "dtf", raw)
    check_keys(where, table, _DTF_KEYS)
    if "speculation" in table and not isinstance(table["speculation"], bool):
        where.fail("speculation", f"expected true or false, got {got(table['speculation'])}")
    return dict(table)


def load_suite(path: str | os.PathLike[str], *, run_code: bool = True) -> Suite:
    """Read, validate and expand a suite file. Raises :class:`SpecError` for every bad input.

    ``run_code=True`` (local use: your own suite on your own machine) imports
    each benchmark module to prove its callable exists. ``run_code=False``
    (every service path: the suite is someone else's) only reads files and
    parses them; nothing of the suite executes in this process."""
    file = os.fspath(path)
    where = Where(file)
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
    check_keys(where, data, _TOP_KEYS)
    if "suite" not in data:
        where.fail("suite", 'missing [suite] table; add [suite] with name = "my-suite"')
    suite = as_table(where, "suite", data["suite"])
    suite_where = Where(file, prefix="suite.")
    check_keys(suite_where, suite, _SUITE_KEYS)
    if "name" not in suite:
        suite_where.fail("name", 'missing required key; add name = "my-suite" under [suite]')
    name = as_name(suite_where, "name", suite["name"])
    metadata: dict[str, Any] = {}
    if "description" in suite:
        metadata["description"] = as_str(suite_where, "description", suite["description"])

    defaults_raw = as_table(where, "defaults", data.get("defaults", {}))
    defaults_where = Where(file, prefix="defaults.")
    check_keys(defaults_where, defaults_raw, _DEFAULT_KEYS)
    defaults = _common(defaults_where, defaults_raw)
    cluster = _cluster(file, data["cluster"]) if "cluster" in data else ClusterSpec()
    settings = _settings(file, data["dtf"]) if "dtf" in data else {}

    raw_tasks = data.get("task", [])
    if isinstance(raw_tasks, dict):
        where.fail("task", "found [task]; write [[task]] (double brackets) for each task")
    if not isinstance(raw_tasks, list):
        where.fail("task", f"expected [[task]] tables, got {got(raw_tasks)}")
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
                Where(file, task_name).fail(
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
