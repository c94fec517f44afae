"""``dtf-core test`` (a distributed ``pytest -n``) and ``dtf-core discover``.

Exit codes follow pytest's convention: 0 all passed, 1 failures, 2 usage error
(or collection errors, as pytest's "Interrupted"), 5 no tests collected.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from dtf_core.cli.clusterplan import plan_cluster
from dtf_core.cli.common import (
    EXIT_BAD_INPUT,
    RunOptions,
    cluster_options,
    db_option,
    default_db,
    emit,
    failure_options,
    format_option,
    handle_errors,
    lock_timeout_option,
    output_options,
    priority_option,
    speculation_option,
)
from dtf_core.cli.execution import execute
from dtf_core.errors import OptionError, exit_code

if TYPE_CHECKING:
    from dtf_core.cluster.embedded import ClusterHandle
    from dtf_core.model import Suite
    from dtf_core.store import Store

EXIT_NO_TESTS = 5


def split_pytest_args(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """PATHs, then pytest's own arguments.

    Click drops the ``--`` separator, so its position is read from ``sys.argv``
    when the command runs as a program; otherwise everything from the first
    token that starts with ``-`` on is for pytest.
    """
    argv = sys.argv[1:]
    if "--" in argv:
        n_after = len(argv) - argv.index("--") - 1
        if 0 < n_after <= len(args):
            return list(args[: len(args) - n_after]), list(args[len(args) - n_after :])
    for i, a in enumerate(args):
        if a.startswith("-"):
            return list(args[:i]), list(args[i:])
    return list(args), []


def _check_paths(paths: list[str], pytest_args: list[str], cwd: str) -> None:
    if "--pyargs" not in pytest_args:
        missing = [p for p in paths if not os.path.exists(os.path.join(cwd, p.split("::")[0]))]
        if missing:
            raise OptionError(f"file or directory not found: {missing[0]}")


def _collect(
    paths: list[str], pytest_args: list[str], cwd: str, cache_dir: str | None = None
) -> Any:
    from dtf_core.testing import split as testsplit

    _check_paths(paths, pytest_args, cwd)
    return testsplit.collect_cached(paths, pytest_args, cwd, cache_dir)


def _stop_on_collection_errors(collection: Any, pytest_args: list[str]) -> None:
    """pytest stops before running anything when collection fails: so do we."""
    if collection.exit_code not in (0, EXIT_NO_TESTS) or (
        collection.errors and "--continue-on-collection-errors" not in pytest_args
    ):
        click.echo(collection.output.rstrip(), err=True)
        click.echo(
            f"dtf-core: error: pytest collection failed (pytest exited {collection.exit_code}); "
            "nothing was run",
            err=True,
        )
        sys.exit(EXIT_BAD_INPUT)


class _Background:
    """A call run on a thread from now on; :meth:`result` waits for it and
    returns its value or raises what it raised (``SystemExit`` included)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class _Split:
    """What the chunks are made of: collected tests, plus whole files on a
    first run (``files``: every file pytest lists, in its order; ``whole``:
    those not collected here, each chunk's pytest collects them itself)."""

    def __init__(self, collection: Any, files: list[str] | None = None) -> None:
        self.collection = collection
        self.files = files
        collected = {i.file for i in collection.items}
        self.whole = [f for f in files or [] if f not in collected]


def _split(
    paths: list[str], pytest_args: list[str], cwd: str, cache: Any, use_cache: bool
) -> _Split:
    """What to pack: the files pytest lists now (never a cached list: a file
    added, removed or newly ignored counts at once), with the tests of each
    file as the last run collected them where there is such a cache entry.

    The cache only guides packing. Chunks are given whole files and pytest
    collects them again; :func:`dtf_core.testing.split.assign` makes a test
    the cache does not know run exactly once anyway. Files that use the
    ``dtf`` marker are collected here every time: their tests' resources
    decide where they may run."""
    from dtf_core.testing import split as testsplit

    _check_paths(paths, pytest_args, cwd)
    if any("::" in p for p in paths):
        collection = testsplit.collect(paths, pytest_args, cwd)
        _stop_on_collection_errors(collection, pytest_args)
        return _Split(collection)
    files, code, output = testsplit.list_files(paths, pytest_args, cwd)
    if code not in (0, EXIT_NO_TESTS):
        click.echo(output.rstrip(), err=True)
        click.echo(
            f"dtf-core: error: pytest could not list the tests (pytest exited {code}); "
            "nothing was run",
            err=True,
        )
        sys.exit(EXIT_BAD_INPUT)
    if not files:
        return _Split(testsplit.Collection([], EXIT_NO_TESTS, output))
    if testsplit.conftests_use_marker(files, cwd):
        central = files  # a conftest hook may mark any test: only collecting tells
    else:
        central = [f for f in files if testsplit.uses_marker(os.path.join(cwd, f))]
    collection = (
        testsplit.collect(central, pytest_args, cwd) if central else testsplit.Collection([], 0, "")
    )
    _stop_on_collection_errors(collection, pytest_args)
    cached = testsplit.cached_collection(cache) if use_cache else None
    if cached is not None:
        skip = set(central)
        listed = set(files)
        known = [i for i in cached.items if i.file in listed and i.file not in skip]
        collection.items = collection.items + known
        collection.cached = bool(known)
    return _Split(collection, files)


@click.command(
    "test",
    context_settings={"ignore_unknown_options": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@cluster_options
@db_option
@output_options
@lock_timeout_option
@failure_options
@priority_option
@speculation_option
@click.option(
    "--reruns",
    type=int,
    default=0,
    show_default=True,
    help="Rerun failing tests up to N times; a test that then passes is recorded as flaky.",
)
@click.option(
    "--timeout",
    "test_timeout",
    type=float,
    default=None,
    help=(
        "Per-test timeout in seconds: the test's process group is killed and the "
        "rest of its chunk goes on in a fresh process."
    ),
)
@click.option(
    "--chunk-timeout",
    type=float,
    default=3600.0,
    show_default=True,
    help="Timeout of one chunk (one pytest process), seconds.",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help=(
        "Ignore the tests the last run collected (they only guide packing: what runs "
        "is always what pytest collects now)."
    ),
)
@handle_errors
def pytest_cmd(
    args: tuple[str, ...],
    reruns: int,
    test_timeout: float | None,
    chunk_timeout: float,
    no_cache: bool,
    **kwargs: Any,
) -> None:
    """Run an existing pytest suite across the cluster: PATH... [-- PYTEST_ARGS].

    Tests are collected once, packed into chunks by historical duration from the
    database (longest first, so that all workers finish together), routed by
    `@pytest.mark.dtf(GPU=1)` markers and by what each file uses, and run one
    pytest process per chunk. Counts and failures equal a serial `pytest`.
    """
    from dtf_core.model import Suite, TaskKind, TaskSpec
    from dtf_core.testing import split as testsplit

    paths, pytest_args = split_pytest_args(args)
    if not paths:
        paths = ["."]
    if reruns < 0:
        raise OptionError("--reruns must be 0 or more")
    if test_timeout is not None and test_timeout <= 0:
        raise OptionError("--timeout must be a positive number of seconds")
    opts = RunOptions.from_kwargs(kwargs)
    cwd = os.getcwd()
    _check_paths(paths, pytest_args, cwd)
    cache_dir = os.path.join(os.path.dirname(os.path.abspath(opts.db or default_db())), "cache")
    # The cache key leaves out what only changes how failures end the run.
    cache = testsplit.cache_file(paths, pytest_args, cwd, cache_dir)
    pytest_args = _failure_args(opts, pytest_args)
    # pytest lists the files (a process that imports the suite's conftest
    # files: ~2 s on networkx) while this process imports Dask. Waited for
    # before the database is opened and the cluster started: bad input it
    # finds ends the run with nothing started and nothing written.
    listing = _Background(_split, paths, pytest_args, cwd, cache, not no_cache)
    plans = plan_cluster(opts, None)
    split: _Split = listing.result()
    from dtf_core import config

    per_thread = config.whole_number("pytest.chunks-per-thread")  # bad: exit 2, nothing started
    collection = split.collection
    if not collection.items and not split.whole:
        click.echo("no tests collected", err=True)
        sys.exit(EXIT_NO_TESTS)
    units = collection.items + [testsplit.TestItem(f, f) for f in split.whole]
    requires = testsplit.requirements(units, cwd)
    file_tasks: list[str] = []

    def build(store: Store, handle: ClusterHandle) -> tuple[Suite, dict[str, float]]:
        from dtf_core.cluster.embedded import current_workers

        slots = sum(int(w.get("nthreads", 1)) for w in current_workers(handle.client).values())
        history = store.test_durations()
        chunks = testsplit.plan(
            units,
            max(1, slots),
            history,
            requires=requires,
            chunks_per_slot=per_thread,
            estimates=testsplit.file_estimates(split.whole, history, cwd),
        )
        width = len(str(len(chunks)))
        assigned = testsplit.assign(chunks)
        tasks = [
            TaskSpec(
                task_id=f"pytest-{i + 1:0{width}d}",
                name="pytest",
                kind=TaskKind.PYTEST,
                root=cwd,
                cwd=cwd,
                timeout=chunk_timeout,
                retries=2,
                rerun_failures=reruns,
                requires=c.requires,
                nodeids=targets,
                select=select,
                pytest_args=pytest_args,
                test_timeout=test_timeout,
            )
            for i, (c, (targets, select)) in enumerate(zip(chunks, assigned, strict=True))
        ]
        estimates = {t.task_id: c.estimate_s for t, c in zip(tasks, chunks, strict=True)}
        # Chunks given files report what pytest collected in them: the cache
        # for the next run's packing, and collection errors found only there.
        file_tasks.extend(t.task_id for t in tasks if any("::" not in n for n in t.nodeids))
        known = sum(1 for i in collection.items if i.nodeid in history)
        if not opts.quiet:
            parts = []
            if collection.items:
                parts.append(
                    f"{len(collection.items)} tests"
                    + (
                        " (as last collected; each chunk runs what pytest collects now)"
                        if collection.cached
                        else " from files with dtf markers"
                    )
                )
            if split.whole:
                # Files no collection here knows: each chunk collects its own.
                parts.append(f"{len(split.whole)} test files")
            what = " and ".join(parts)
            where = f"{len(chunks)} chunk(s) over {slots} slot(s)"
            click.echo(f"{what} in {where}; history for {known} test(s)", err=True)
        name = "pytest " + " ".join(shlex.quote(p) for p in paths)
        return Suite(name=name, path=os.path.join(cwd, "pytest"), tasks=tasks), estimates

    def write(store: Store, run_id: str, summary: dict[str, Any] | None) -> None:
        _write_test_reports(store, run_id, summary, opts)

    result = execute(opts, plans, build, write_reports=write, metadata_dir=cwd)
    if result.status == "cancelled":
        sys.exit(exit_code(result.status))
    if split.files is not None:
        _after_run(split, result, file_tasks, cache, pytest_args)
    sys.exit(exit_code(result.status))


def _after_run(
    split: _Split, result: Any, file_tasks: list[str], cache: Any, pytest_args: list[str]
) -> None:
    """The chunks collected their own files: cache what they found (for the
    next run's packing), and end as pytest would have when a module could not
    be collected."""
    from dtf_core.testing import split as testsplit

    records = [r for t in file_tasks for r in result.collected.get(t, [])]
    broken = {
        str(r["file"]): str(r.get("message") or "") for r in records if r.get("problem") == "error"
    }
    if broken and "--continue-on-collection-errors" not in pytest_args:
        # Found only when the chunk holding the module ran: the other chunks'
        # results are real and stay recorded, but pytest would have run nothing.
        for file, why in sorted(broken.items()):
            click.echo(f"ERROR collecting {file}: {why}", err=True)
        click.echo(
            f"dtf-core: error: pytest collection failed in {len(broken)} file(s); pytest "
            f"alone would have run nothing. Run {result.run_id} keeps the other chunks' results.",
            err=True,
        )
        sys.exit(EXIT_BAD_INPUT)
    complete = all(t in result.collected for t in file_tasks)
    if complete and not broken:
        if not records and not split.collection.items:
            click.echo("no tests collected", err=True)
            sys.exit(EXIT_NO_TESTS)
        seen: set[str] = set()
        items = []
        for r in records:
            if "problem" in r or r["nodeid"] in seen:
                continue
            seen.add(str(r["nodeid"]))
            items.append(testsplit.item_of(r))
        testsplit.save_collection(cache, items, split.files)


def _failure_args(opts: RunOptions, pytest_args: list[str]) -> list[str]:
    """-x/--maxfail/--tb given to dtf go to every chunk's pytest too; given to
    pytest (after PATH or --), they set dtf's own run-wide limit and style."""
    args = list(pytest_args)
    for i, a in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if a in ("-x", "--exitfirst"):
            opts.exitfirst = True
        elif a.startswith("--maxfail=") or (a == "--maxfail" and nxt.isdigit()):
            value = a.partition("=")[2] or nxt
            if value.isdigit() and opts.maxfail is None:
                opts.maxfail = int(value)
        elif a.startswith("--tb=") or (a == "--tb" and nxt):
            opts.tb = opts.tb or (a.partition("=")[2] or nxt)
    if opts.max_failures and not any(
        a in ("-x", "--exitfirst", "--maxfail") or a.startswith("--maxfail=") for a in args
    ):
        args.append(f"--maxfail={opts.max_failures}")
    if opts.tb and not any(a == "--tb" or a.startswith("--tb=") for a in args):
        args.append(f"--tb={opts.tb}")
    return args


def _write_test_reports(
    store: Store, run_id: str, summary: dict[str, Any] | None, opts: RunOptions
) -> None:
    """The run's reports, with the JSON `failures` as pytest node ids."""
    from dtf_core import reporting
    from dtf_core.reporting.jsonout import render_json

    if opts.json_path:
        summary = summary or reporting.build_summary(store, run_id)
        doc = dict(summary)
        doc["failure_details"] = summary.get("failures", [])
        doc["failures"] = sorted({f["nodeid"] or f["task_id"] for f in doc["failure_details"]})
        with open(opts.json_path, "w", encoding="utf-8") as fh:
            fh.write(render_json(doc))
    reporting.write_reports(
        store, run_id, markdown=opts.markdown, junit=opts.junit, html=opts.html_path,
        pr_comment=opts.pr_comment, metrics=opts.metrics_report, summary=summary,
    )  # fmt: skip


def discovered_files(paths: list[str], cwd: str) -> list[dict[str, Any]]:
    """Each test file under ``paths``: ``file``, ``tests`` (count), ``resources`` (the most
    any of its tests needs). pytest's collection output and exit 2 when it fails."""
    from dtf_core.testing import split as testsplit

    collection = _collect(paths, [], cwd)
    if collection.exit_code not in (0, EXIT_NO_TESTS):
        click.echo(collection.output.rstrip(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    requires = testsplit.requirements(collection.items, cwd)
    files: dict[str, dict[str, Any]] = {}
    for item in collection.items:
        entry = files.setdefault(item.file, {"file": item.file, "tests": 0, "resources": {}})
        entry["tests"] += 1
        for k, v in requires[item.nodeid].items():
            entry["resources"][k] = max(v, entry["resources"].get(k, 0.0))
    return sorted(files.values(), key=lambda e: e["file"])


@click.command("discover")
@click.argument("paths", nargs=-1)
@format_option("text", "json", json_alias=True)
@handle_errors
def discover_cmd(paths: tuple[str, ...], fmt: str, output: str | None) -> None:
    """List each test file under PATHS with the resources it needs.

    Resources come from `@pytest.mark.dtf(GPU=1, ...)` markers and from what a
    file visibly uses (torch.cuda, cupy, numba.cuda ... -> GPU=1).
    """
    rows = discovered_files(list(paths) or ["."], os.getcwd())
    if fmt == "json":
        emit(json.dumps(rows, indent=2), output)
        return
    lines = []
    for e in rows:
        need = ", ".join(f"{k}={v:g}" for k, v in sorted(e["resources"].items())) or "-"
        lines.append(f"{e['file']}  {e['tests']} test(s)  {need}")
    emit("\n".join(lines), output)


def register(group: click.Group) -> None:
    group.add_command(pytest_cmd)
    group.add_command(discover_cmd)
