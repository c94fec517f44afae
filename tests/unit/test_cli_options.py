"""The grammar shared by dtf's command lines, read from the click commands
themselves: an option spelled the same means the same (docs/cli.md)."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from dtf_core.cli import common
from dtf_core.cli import main as dtf_core
from dtf_core.errors import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_OPERATIONAL,
    exit_code,
)
from dtf_tui.cli import main as dtf_tui


def commands() -> Iterator[tuple[str, click.Command]]:
    """Every command of both programs, groups included (dtf-tui's group has options)."""

    def walk(prefix: str, cmd: click.Command) -> Iterator[tuple[str, click.Command]]:
        yield prefix, cmd
        if isinstance(cmd, click.Group):
            for name, sub in sorted(cmd.commands.items()):
                yield from walk(f"{prefix} {name}", sub)

    yield from walk("dtf-core", dtf_core)
    yield from walk("dtf-tui", dtf_tui)


def options(spelling: str, *, hidden: bool = False) -> dict[str, click.Option]:
    found = {}
    for path, cmd in commands():
        for p in cmd.params:
            if isinstance(p, click.Option) and spelling in p.opts and p.hidden == hidden:
                found[path] = p
    return found


def test_every_db_is_the_one_shared_option() -> None:
    dbs = options("--db")
    assert set(dbs) == {
        "dtf-core run", "dtf-core test", "dtf-core report", "dtf-core runs", "dtf-core serve",
        "dtf-core compare", "dtf-core regressions", "dtf-core trends", "dtf-core stats",
        "dtf-core best", "dtf-core import", "dtf-core badge", "dtf-core workers", "dtf-tui",
        "dtf-tui run",
    }  # fmt: skip
    for path, opt in dbs.items():
        assert opt.help == common.DB_HELP, path
        assert isinstance(opt.type, click.Path) and opt.metavar == "FILE", path
    # submit's --db is only there to say that the service owns the database.
    assert set(options("--db", hidden=True)) == {"dtf-core submit"}


def test_baseline_and_branch_are_declared_once() -> None:
    baselines = options("--baseline")
    assert set(baselines) == {"dtf-core compare", "dtf-core run", "dtf-core report"}
    assert {o.help for o in baselines.values()} == {common.BASELINE_HELP}
    branches = options("--branch")
    assert set(branches) == {"dtf-core compare", "dtf-core regressions", "dtf-core trends"}
    assert {o.help for o in branches.values()} == {common.BRANCH_HELP}


@pytest.mark.parametrize(
    "spelling",
    ["--json", "--markdown", "--junit", "--html", "--output", "--pr-comment", "--metrics-report"],
)
def test_every_file_output_takes_a_file(spelling: str) -> None:
    found = options(spelling)
    assert found, spelling
    for path, opt in found.items():
        assert not opt.is_flag and opt.nargs == 1, f"{path} {spelling} must take a FILE"
        assert opt.metavar == "FILE" and isinstance(opt.type, click.Path), path


def test_report_files_are_the_same_in_run_test_and_submit() -> None:
    spellings = ("--markdown", "--junit", "--json", "--html", "--quiet")
    for spelling in spellings:
        found = options(spelling)
        assert set(found) == {"dtf-core run", "dtf-core test", "dtf-core submit"}, spelling
        assert len({o.help for o in found.values()}) == 1, spelling
    assert set(options("--report", hidden=True)) == {
        "dtf-core run", "dtf-core test", "dtf-core submit",
    }  # fmt: skip
    # The files a CI shows beside the reports: also rebuilt by `report`.
    for spelling in ("--pr-comment", "--metrics-report"):
        found = options(spelling)
        assert set(found) == {"dtf-core run", "dtf-core test", "dtf-core submit",
                              "dtf-core report"}, spelling  # fmt: skip
        assert len({o.help for o in found.values()}) == 1, spelling


def test_the_old_json_flag_survives_only_beside_format_json() -> None:
    flags = options("--json", hidden=True)
    assert set(flags) == {
        "dtf-core compare", "dtf-core regressions", "dtf-core trends", "dtf-core stats",
        "dtf-core best", "dtf-core discover",
    }  # fmt: skip
    for path, cmd in commands():
        if path in flags:
            assert flags[path].is_flag
            fmt = next(p for p in cmd.params if "--format" in getattr(p, "opts", ()))
            assert "json" in fmt.type.choices, path  # type: ignore[attr-defined]


def test_format_means_what_to_print_and_comes_with_output() -> None:
    formats = options("--format")
    assert set(formats) >= {"dtf-core report", "dtf-core compare", "dtf-core runs"}
    outputs = options("--output")
    for path, opt in formats.items():
        assert opt.help == common.FORMAT_HELP, path
        assert isinstance(opt.type, click.Choice) and opt.default == opt.type.choices[0], path
        assert path in outputs and outputs[path].help == common.OUTPUT_HELP, path
    # import's --format named its input: now --input-format, the old one hidden.
    assert set(options("--format", hidden=True)) == {"dtf-core import"}


@pytest.mark.parametrize(
    ("spelling", "helps"),
    [
        ("--run", {common.RUN_HELP, common.RUNS_HELP}),
        ("--since", {common.SINCE_HELP}),
        ("--benchmark", {common.BENCHMARK_HELP}),
    ],
)
def test_shared_options_have_one_help(spelling: str, helps: set[str]) -> None:
    found = options(spelling)
    assert found
    assert {o.help for o in found.values()} <= helps
    for path, opt in found.items():
        # One run with a default, or a repeatable filter (stats): never something else.
        assert (opt.help == common.RUNS_HELP) == opt.multiple, path


def test_run_defaults_to_the_latest_run_everywhere_it_names_one_run() -> None:
    for path, opt in options("--run").items():
        assert not opt.required, path


def test_every_option_is_explained() -> None:
    for path, cmd in commands():
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert p.help and p.help.strip(), f"{path} {p.opts[0]} has no help"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("passed", EXIT_OK),
        ("accepted", EXIT_OK),  # submit --no-wait: the service took the run
        ("failed", EXIT_FAILED),
        ("timed_out", EXIT_FAILED),
        ("unschedulable", EXIT_FAILED),
        ("cancelled", EXIT_CANCELLED),
        ("", EXIT_FAILED),
        ("a-status-from-a-newer-dtf", EXIT_FAILED),  # unknown is never success
    ],
)
def test_exit_code_of_a_run_status(status: str, code: int) -> None:
    assert exit_code(status) == code


def test_exit_code_values_are_the_documented_ones() -> None:
    assert (EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_OPERATIONAL, EXIT_CANCELLED) == (
        0, 1, 2, 3, 130,
    )  # fmt: skip


def test_workers_auto_is_one_per_usable_core() -> None:
    import os

    from dtf_core.cli.common import WorkersType, usable_cores

    assert usable_cores() == len(os.sched_getaffinity(0))
    assert WorkersType().convert("auto", None, None) == usable_cores()
    assert WorkersType().convert("3", None, None) == 3
    with pytest.raises(click.BadParameter):
        WorkersType().convert("many", None, None)


def test_priority_is_one_option_on_the_commands_that_start_a_run() -> None:
    found = options("--priority")
    assert set(found) == {"dtf-core run", "dtf-core test", "dtf-core submit"}
    helps = {opt.help for opt in found.values()}
    assert len(helps) == 1, helps
    for path, opt in found.items():
        assert isinstance(opt.type, click.IntRange) and opt.default is None, path
        assert (opt.type.min, opt.type.max) == (-1000, 1000), path
