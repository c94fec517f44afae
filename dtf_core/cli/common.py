"""What the ``dtf-core`` and ``dtf-tui`` commands share: error handling, the
options that mean the same in every command (declared here once each, with one
help text: docs/cli.md; their old spellings are in :mod:`dtf_core.cli.deprecation`),
and running a suite with a progress view.

Exit codes (:func:`dtf_core.errors.exit_code`): 0 everything passed, 1 something
failed / timed out / was unschedulable, 2 bad input (one line on stderr, nothing
written), 3 dtf could not do its job (database locked, scheduler unreachable),
130 cancelled.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dtf_core import config as dtf_config

# The embedded cluster's options live beside, re-exported: commands import every option from here.
from dtf_core.cli.clusteropts import WorkersType as WorkersType
from dtf_core.cli.clusteropts import cluster_options as cluster_options
from dtf_core.cli.clusteropts import dashboard_option as dashboard_option
from dtf_core.cli.clusteropts import usable_cores as usable_cores
from dtf_core.cli.deprecation import renamed

# The exit codes are re-exported: commands import them with the options from here.
from dtf_core.errors import EXIT_BAD_INPUT as EXIT_BAD_INPUT
from dtf_core.errors import EXIT_CANCELLED as EXIT_CANCELLED
from dtf_core.errors import EXIT_FAILED as EXIT_FAILED
from dtf_core.errors import EXIT_OK as EXIT_OK
from dtf_core.errors import EXIT_OPERATIONAL as EXIT_OPERATIONAL
from dtf_core.errors import BadInputError, DtfError, OptionError, RunNotFoundError

if TYPE_CHECKING:
    from dtf_core.analysis.baseline import BaselineSpec
    from dtf_core.store import StoreReader

F = TypeVar("F", bound=Callable[..., Any])


# ---- errors ------------------------------------------------------------------------


def _prog() -> str:
    # The root group's name: "dtf-core" or "dtf-tui", whichever command is running.
    ctx = click.get_current_context(silent=True)
    return (ctx.find_root().command.name if ctx else None) or "dtf"


def fail(message: str, code: int) -> None:
    click.echo(f"{_prog()}: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Turn dtf's errors into one line and an exit code: never a traceback for bad input."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BadInputError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except DtfError as exc:
            fail(str(exc), EXIT_OPERATIONAL)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_CANCELLED)

    return wrapper  # type: ignore[return-value]


# ---- options that mean the same in every command ----------------------------------

DB_HELP = "DuckDB file of the results (default: dask config dtf.db, .dtf/dtf.duckdb)."
RUN_HELP = "Run id (default: the latest run); `dtf-core runs` lists them."
RUNS_HELP = "Only this run; repeat for several (default: every run). `dtf-core runs` lists them."
SINCE_HELP = "Only runs started within SPAN before now: 30d, 12h, 2w."
BENCHMARK_HELP = "Only benchmarks whose name matches NAME, a glob such as 'matmul*'."
BRANCH_HELP = (
    "Only runs on branch NAME (the CI's branch, else git's, as stored with each run); "
    "compare: the run is the latest on NAME."
)
BASELINE_HELP = (
    "What to compare with: branch:NAME (its latest passed run), run:ID, or latest (the latest "
    "passed run on any branch). Default: the latest passed run of the suite on the same "
    "hardware on the run's target branch, else the default branch, else its own branch."
)
FORMAT_HELP = "What to print on stdout (or write to --output)."
OUTPUT_HELP = "Write what would be printed to FILE instead of stdout."


def default_db() -> str:
    return str(dtf_config.get("db"))


def db_option(fn: F) -> F:
    """``--db FILE``: the database a command reads (or, for run/test/serve/import, writes)."""
    return click.option(
        "--db", type=click.Path(dir_okay=False), default=None, metavar="FILE", help=DB_HELP
    )(fn)


def run_option(fn: F) -> F:
    """``--run RUN``: one run, the latest by default."""
    return click.option("--run", "run_id", default=None, metavar="RUN", help=RUN_HELP)(fn)


def runs_option(fn: F) -> F:
    """``--run RUN`` repeated: a filter over runs (``stats``), every run by default."""
    return click.option("--run", "run_ids", multiple=True, metavar="RUN", help=RUNS_HELP)(fn)


def since_option(fn: F) -> F:
    return click.option("--since", default=None, metavar="SPAN", help=SINCE_HELP)(fn)


def benchmark_option(fn: F) -> F:
    return click.option("--benchmark", default=None, metavar="NAME", help=BENCHMARK_HELP)(fn)


def branch_option(fn: F) -> F:
    return click.option("--branch", default=None, metavar="NAME", help=BRANCH_HELP)(fn)


def baseline_option(fn: F) -> F:
    """``--baseline branch:NAME|run:ID|latest``, parsed before any work into a
    :class:`~dtf_core.analysis.baseline.BaselineSpec` (a bad one: one line, exit 2);
    None when not given (the branch rule)."""

    @functools.wraps(fn)
    def parsed(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("baseline") is None:
            return fn(*args, **kwargs)  # the default; a run without benchmarks needs no analysis
        from dtf_core.analysis.baseline import parse

        try:
            kwargs["baseline"] = parse(kwargs["baseline"])
        except OptionError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        return fn(*args, **kwargs)

    return click.option(
        "--baseline", default=None, metavar="branch:NAME|run:ID|latest", help=BASELINE_HELP
    )(parsed)  # type: ignore[return-value]


def format_option(*choices: str, json_alias: bool = False) -> Callable[[F], F]:
    """``--format`` (the first choice is the default) and ``-o/--output FILE``.

    ``json_alias``: the command once took ``--json`` as a flag meaning "print
    JSON"; it stays, hidden, as ``--format json``. (Everywhere else ``--json``
    takes a FILE: an analysis command's flag cannot become that without making
    ``discover --json tests/`` write over a path.)
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:  # before any work: a `compare` can take a while
                check_writable(kwargs.get("output"))
            except OptionError as exc:
                fail(str(exc), EXIT_BAD_INPUT)
            return command(*args, **kwargs)

        fn: F = checked  # type: ignore[assignment]
        if json_alias:
            fn = renamed("--json", "--format json", "fmt",
                         "--json without a file is deprecated; use --format json",
                         is_flag=True, flag_value="json")(fn)  # fmt: skip
        fn = click.option(
            "--output", "-o", type=click.Path(dir_okay=False), default=None, metavar="FILE",
            help=OUTPUT_HELP,
        )(fn)  # fmt: skip
        fn = click.option(
            "--format", "fmt", type=click.Choice(choices), default=choices[0],
            show_default=True, help=FORMAT_HELP,
        )(fn)  # fmt: skip
        return fn

    return decorate


def emit(text: str, output: str | None) -> None:
    """Print ``text``, or write it to ``output`` (``-o FILE``); nothing prints nothing."""
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    elif text:
        click.echo(text, nl=not text.endswith("\n"))


def check_writable(*paths: str | None) -> None:
    """Bad input, before any work: a file to write whose directory does not exist."""
    for target in paths:
        if target and not os.path.isdir(os.path.dirname(os.path.abspath(target))):
            raise OptionError(f"cannot write {target}: its directory does not exist")


def pick_run(
    store: StoreReader, run_id: str | None, db_path: str, *, branch: str | None = None
) -> str:
    """``--run``, or the latest run (on ``branch``: ``--branch``); a missing one is bad input."""
    if run_id is None:
        run_id = store.latest_run_id(branch=branch)
        if run_id is None:
            if branch is not None:
                raise RunNotFoundError(f"no run on branch {branch!r} in {db_path}")
            raise RunNotFoundError(f"no runs in {db_path} yet; start one with `dtf-core run SUITE`")
        return str(run_id)
    store.get_run(run_id)
    return run_id


def client_tls_options(fn: F) -> F:
    """--ca FILE and --insecure: how a client of `dtf-core serve` trusts its transport."""
    fn = click.option(
        "--insecure", is_flag=True,
        help=(
            "Send the token over plain http:// to a host that is not loopback (a trusted "
            "network only). Certificates of https:// are checked all the same."
        ),
    )(fn)  # fmt: skip
    return click.option(
        "--ca", "ca_file", type=click.Path(dir_okay=False, exists=True), default=None,
        metavar="FILE",
        help="CA certificate (PEM) the coordinator's HTTPS certificate must chain to "
        "(default: the system's trust store).",
    )(fn)  # fmt: skip


def priority_option(fn: F) -> F:
    """``--priority N``: the run's priority over other runs on the same cluster."""
    from dtf_core.model import PRIORITY_LIMIT

    return click.option(
        "--priority", type=click.IntRange(-PRIORITY_LIMIT, PRIORITY_LIMIT), default=None,
        metavar="N",
        help=(
            "The run's priority: its queued tasks start before those of runs with a lower "
            "one (running tasks are never preempted). Default 0; with submit, what the "
            "service grants you (dtf.service.priority)."
        ),
    )(fn)  # fmt: skip


def lock_timeout_option(fn: F) -> F:
    """--lock-timeout: how long a writer waits for another process to let go of --db."""
    return click.option(
        "--lock-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
        help="Seconds to wait for another process holding --db (dtf.store.lock-timeout: 10).",
    )(fn)  # fmt: skip


def ci_file_options(fn: F) -> F:
    """``--pr-comment FILE`` and ``--metrics-report FILE``: what a CI shows beside the reports
    (docs/ci.md); ``run``, ``test``, ``submit`` and ``report`` write them."""
    options = [
        click.option(
            "--pr-comment", type=click.Path(dir_okay=False), default=None, metavar="FILE",
            help="Write a pull-request comment body (Markdown: counts, failures, regressions "
            "against the baseline with a sparkline each) to FILE.",
        ),
        click.option(
            "--metrics-report", type=click.Path(dir_okay=False), default=None, metavar="FILE",
            help="Write GitLab's metrics report (OpenMetrics text) to FILE "
            "(default in a GitLab job: metrics.txt).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def output_options(fn: F) -> F:
    """The files a run writes (``--markdown/--junit/--json/--html FILE``, the CI files) and
    ``--quiet``; ``--report FILE`` is the old spelling of ``--markdown FILE``."""
    fn = renamed("--report", "--markdown", "markdown", type=click.Path(dir_okay=False))(fn)
    fn = ci_file_options(fn)
    options = [
        click.option(
            "--markdown", type=click.Path(dir_okay=False), default=None, metavar="FILE",
            help="Write the Markdown report to FILE.",
        ),
        click.option(
            "--junit", type=click.Path(dir_okay=False), default=None, metavar="FILE",
            help="Write JUnit XML to FILE.",
        ),
        click.option(
            "--json", "json_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
            help="Write the JSON summary to FILE.",
        ),
        click.option(
            "--html", "html_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
            help="Write a self-contained HTML report (inline SVG charts) to FILE.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="Print only the final line."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


# pytest's --tb styles; dtf prints tracebacks for all but "no" and "line".
TB_STYLES = ("short", "long", "line", "native", "auto", "no")


def failure_options(fn: F) -> F:
    """-x/--maxfail (stop the whole run) and --tb (tracebacks at the end), as in pytest."""
    options = [
        click.option(
            "-x", "--exitfirst", is_flag=True,
            help="Stop the whole run at the first failing test or task (as --maxfail 1).",
        ),
        click.option(
            "--maxfail", type=click.IntRange(min=1), default=None, metavar="N",
            help=(
                "Stop the whole run after N failing tests or tasks: running chunks stop "
                "after their current test, what never ran is recorded as cancelled."
            ),
        ),
        click.option(
            "--tb", type=click.Choice(TB_STYLES), default=None,
            help=(
                "Traceback style at the end of the run (and for pytest chunks, passed to "
                "pytest): short (default), long, line, native, auto, no."
            ),
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def speculation_option(fn: F) -> F:
    """--speculation on|off: copies of straggling tasks on idle workers (docs/cli.md)."""
    return click.option(
        "--speculation", type=click.Choice(["on", "off"]), default=None,
        help=(
            "Run a copy of a task that runs far past its expected time on an idle worker; "
            "the first to finish counts (default: the suite's [dtf] speculation, else "
            "dtf.speculation.enabled: on; benchmarks are never copied)."
        ),
    )(fn)  # fmt: skip


@dataclass
class RunOptions:
    workers: int | None = None
    threads_per_worker: int | None = None
    resources: tuple[str, ...] = ()
    scheduler: str | None = None
    unschedulable_timeout: float | None = None
    dashboard: str | None = None
    db: str | None = None
    lock_timeout: float | None = None
    markdown: str | None = None
    junit: str | None = None
    json_path: str | None = None
    html_path: str | None = None
    pr_comment: str | None = None
    metrics_report: str | None = None
    quiet: bool = False
    exitfirst: bool = False
    maxfail: int | None = None
    tb: str | None = None
    baseline: BaselineSpec | None = None
    priority: int | None = None
    speculation: str | None = None  # on | off | None (the suite's, else the config's)
    extra: dict[str, Any] = field(default_factory=dict)

    def files(self) -> tuple[str | None, ...]:
        """Every file the run was asked to write."""
        return (self.markdown, self.junit, self.json_path, self.html_path, self.pr_comment,
                self.metrics_report)  # fmt: skip

    @property
    def max_failures(self) -> int | None:
        return 1 if self.exitfirst else self.maxfail

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> RunOptions:
        names = set(cls.__dataclass_fields__) - {"extra"}
        opts = cls(**{k: v for k, v in kwargs.items() if k in names})
        opts.extra = {k: v for k, v in kwargs.items() if k not in names}
        return opts
