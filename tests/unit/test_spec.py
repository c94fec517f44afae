"""The suite loader: every broken file under tests/data/bad fails with one precise line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dtf_core.errors import BadInputError, SpecError
from dtf_core.model import TaskKind
from dtf_core.spec import MAX_EXPANSION, load_suite, parse_duration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
BAD = DATA / "bad"
EXAMPLES = REPO / "configs" / "examples"

# file stem -> (task named in the error, key named in the error, a phrase of the message)
BAD_CASES: dict[str, tuple[str | None, str | None, str]] = {
    "syntax_error": (None, None, "line 7"),
    "unclosed_array": (None, None, "invalid TOML"),
    "not_utf8": (None, None, "not UTF-8"),
    "unknown_key": ("unit", "timout", "did you mean 'timeout'?"),
    "unknown_top_key": (None, "tasks", "did you mean 'task'?"),
    "unknown_default_key": (None, "defaults.retry", "did you mean 'retries'?"),
    "wrong_type_retries": ("unit", "retries", "remove the quotes"),
    "missing_kind": ("unit", "kind", "missing required key"),
    "missing_name": ("#1", "name", "missing required key"),
    "missing_suite": (None, "suite", "missing [suite]"),
    "missing_suite_name": (None, "suite.name", "missing required key"),
    "bad_suite_name": (None, "suite.name", "[A-Za-z0-9_.-]"),
    "bad_task_name": ("unit tests", "name", "[A-Za-z0-9_.-]"),
    "bad_duration": ("unit", "timeout", "expected a positive duration like '60s'"),
    "negative_duration": ("unit", "timeout", "greater than zero"),
    "bad_default_duration": (None, "defaults.timeout", "'10 minutes'"),
    "nonpositive_requires": ("gpu", "requires", "GPU must be a positive number"),
    "bad_resource_name": ("gpu", "requires", "'GPU-A100'"),
    "missing_path": ("unit", "path", "does not exist"),
    "missing_pytest_path_key": ("unit", "path", "missing required key"),
    "missing_cwd": ("unit", "cwd", "does not exist"),
    "unimportable_function": ("bench", "function", "module 'dtf_no_such_module_xyz' not found"),
    "missing_callable": ("bench", "function", "has no callable 'no_such_function'"),
    "not_callable": ("bench", "function", "not a callable"),
    "import_raises": ("bench", "function", "raised ValueError: this module is broken"),
    "bad_function_format": ("bench", "function", "'module:callable'"),
    "duplicate_names": ("unit", "name", "duplicate task name"),
    "no_tasks": (None, "task", "no tasks"),
    "single_bracket_task": (None, "task", "[[task]]"),
    "bad_kind": ("unit", "kind", "'unittest'"),
    "function_on_pytest": ("unit", "function", "only applies to benchmark tasks"),
    "params_on_pytest": ("unit", "params", "only applies to benchmark or command tasks"),
    "empty_command": ("smoke", "command", "is empty"),
    "command_wrong_type": ("smoke", "command", "list of strings"),
    "bad_params": ("bench", "params", "empty list"),
    "nested_params": ("bench", "params", "strings, numbers or booleans"),
    "tune_and_params_share_a_key": ("bench", "tune.block", "'block' is in params and in tune"),
    "too_many_tasks": ("huge", "params", f"limit is {MAX_EXPANSION:,}"),
    "env_not_string": ("smoke", "env", 'quote it: OMP_NUM_THREADS = "1"'),
    "repeat_zero": ("bench", "repeat", "positive integer"),
    "higher_is_better_string": ("bench", "higher_is_better", "true or false"),
    "cluster_zero_workers": (None, "cluster.workers", "positive integer"),
    "cluster_too_many_resources": (None, "cluster.worker_resources", "2 entries"),
}


def test_every_bad_file_has_a_case() -> None:
    assert {p.stem for p in BAD.glob("*.toml")} == set(BAD_CASES)


@pytest.mark.parametrize("stem", sorted(BAD_CASES))
def test_bad_file_fails_with_one_precise_line(stem: str) -> None:
    task, key, phrase = BAD_CASES[stem]
    path = BAD / f"{stem}.toml"
    with pytest.raises(SpecError) as info:
        load_suite(path)
    err = info.value
    message = str(err)
    assert isinstance(err, BadInputError)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert phrase in message
    assert err.task == task
    assert err.key == key
    if task:
        assert f"task '{task}'" in message
    if key:
        assert f"key '{key}'" in message


def test_missing_file() -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_suite(DATA / "no_such_suite.toml")


def test_directory_instead_of_file() -> None:
    with pytest.raises(SpecError, match="is a directory"):
        load_suite(DATA)


def test_quickstart_expands_the_matrix() -> None:
    suite = load_suite(EXAMPLES / "quickstart.toml")
    assert suite.name == "quickstart"
    assert [t.task_id for t in suite.tasks] == [
        "unit",
        "matmul[n=64,block=16]",
        "matmul[n=64,block=64]",
        "matmul[n=128,block=16]",
        "matmul[n=128,block=64]",
        "sort[size=1000]",
        "sort[size=10000]",
        "smoke",
        "gpu-smoke",
    ]
    by_id = {t.task_id: t for t in suite.tasks}
    mm = by_id["matmul[n=128,block=64]"]
    assert mm.params == {"n": 128, "block": 64}  # the benchmark gets both as kwargs
    assert mm.tune == ["block"]  # and the store learns which one is a knob
    assert by_id["sort[size=1000]"].tune == []
    assert mm.repeat == 15
    assert mm.warmup == 2
    assert mm.kind is TaskKind.BENCHMARK
    assert by_id["gpu-smoke"].requires == {"GPU": 1}
    assert by_id["smoke"].command == ["python", "-c", "print('ok')"]
    assert suite.cluster.workers == 2
    assert suite.cluster.threads_per_worker == 1
    assert suite.cluster.worker_resources == [{}, {"GPU": 1}]
    assert suite.metadata["description"]


def test_paths_are_absolute() -> None:
    suite = load_suite(os.path.relpath(EXAMPLES / "quickstart.toml"))
    assert suite.path == str(EXAMPLES / "quickstart.toml")
    unit = suite.tasks[0]
    assert unit.root == str(EXAMPLES)
    assert unit.path == str(EXAMPLES / "demo" / "tests")
    assert all(os.path.isabs(t.root) for t in suite.tasks)


def test_defaults_merge_and_task_wins() -> None:
    suite = load_suite(EXAMPLES / "matrix.toml")
    by_id = {t.task_id: t for t in suite.tasks}
    json_task = by_id["json[records=100]"]
    assert json_task.timeout == 120.0
    assert json_task.retries == 1
    assert json_task.rerun_failures == 1
    assert json_task.repeat == 5
    assert json_task.requires == {"MEM_GB": 1}
    assert by_id["matmul[n=32]"].repeat == 8  # task overrides [defaults]
    echo = by_id["echo[seed=2,shape=wide]"]
    assert echo.timeout == 30.0
    assert echo.env == {"DTF_EXAMPLE": "matrix", "PYTHONHASHSEED": "0", "SHAPE": "wide"}
    assert echo.command is not None
    assert echo.command[-2:] == ["wide", "2"]
    assert "{}" not in " ".join(echo.command)  # only known placeholders are replaced
    # pytest-only and benchmark-only defaults do not leak onto other kinds
    assert by_id["stats-tests"].repeat == 10


def test_builtin_defaults(tmp_path: Path) -> None:
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(
        '[suite]\nname = "s"\n[[task]]\nname = "c"\nkind = "command"\ncommand = "echo \'a b\'"\n'
    )
    (task,) = load_suite(suite_file).tasks
    assert task.command == ["echo", "a b"]  # a plain string is split like a shell would
    assert (task.timeout, task.retries, task.rerun_failures) == (600.0, 2, 0)
    assert task.cwd is None
    assert task.params == {}


def test_command_params_substitute_and_ids_sort_keys(tmp_path: Path) -> None:
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(
        '[suite]\nname = "s"\n[[task]]\nname = "c"\nkind = "command"\ncwd = "."\n'
        'command = ["echo", "{z}-{a}", "{unknown}"]\nparams = { z = [true], a = 1.5 }\n'
    )
    (task,) = load_suite(suite_file).tasks
    assert task.task_id == "c[a=1.5,z=true]"
    assert task.command == ["echo", "true-1.5", "{unknown}"]
    assert task.cwd == str(tmp_path)


def test_missing_dependency_of_a_benchmark_module_is_accepted() -> None:
    # The module exists but imports a package this machine lacks: the worker may have it.
    (task,) = load_suite(DATA / "good" / "missing_dependency.toml").tasks
    assert task.function == "dtf_needs_missing_dep:run"


def test_sys_path_is_restored() -> None:
    import sys

    before = list(sys.path)
    load_suite(EXAMPLES / "quickstart.toml")
    with pytest.raises(SpecError):
        load_suite(BAD / "import_raises.toml")
    assert sys.path == before


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("60s", 60.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1d", 86400.0),
        ("45", 45.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, file="f.toml", task="t", key="timeout") == seconds


@pytest.mark.parametrize("value", [0, -1, "0s", "-5s", "soon", "10 minutes", "", True, [1], "nan"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(SpecError) as info:
        parse_duration(value, file="f.toml", task="t", key="timeout")
    assert str(info.value).startswith(
        "f.toml: task 't': key 'timeout': expected a positive duration"
    )


def test_tune_expands_with_params_inputs_first(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        '[suite]\nname = "t"\n[[task]]\nname = "b"\nkind = "benchmark"\n'
        'function = "json:dumps"\nparams = { n = [1, 2] }\n'
        'tune = { order = ["ijk", "ikj"], block = 8 }\n'
    )
    tasks = load_suite(tmp_path / "s.toml").tasks
    assert [t.task_id for t in tasks] == [
        "b[n=1,block=8,order=ijk]", "b[n=1,block=8,order=ikj]",
        "b[n=2,block=8,order=ijk]", "b[n=2,block=8,order=ikj]",
    ]  # fmt: skip
    assert {tuple(t.tune) for t in tasks} == {("block", "order")}


def test_tune_only_on_benchmarks(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        '[suite]\nname = "t"\n[[task]]\nname = "c"\nkind = "command"\n'
        'command = ["true"]\ntune = { x = [1] }\n'
    )
    with pytest.raises(SpecError, match="'tune' only applies to benchmark tasks") as info:
        load_suite(tmp_path / "s.toml")
    assert info.value.key == "tune"
