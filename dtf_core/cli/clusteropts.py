"""The embedded cluster's options (``--workers N|auto``, ``--threads-per-worker``,
``--resources``, ``--scheduler``, ``--unschedulable-timeout``, ``--dashboard``) and how the
``--resources`` values read; :mod:`dtf_core.cli.common` re-exports them with the
other shared options and turns them into worker plans (``plan_cluster``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class WorkersType(click.ParamType):
    """``--workers N`` or ``--workers auto``: one worker per usable core."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        if str(value).strip().lower() == "auto":
            return usable_cores()
        try:
            return int(value)  # a count below 1 is refused with the other cluster checks
        except ValueError:
            self.fail(f"{value!r} is not a number of workers or 'auto'", param, ctx)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


DASHBOARD_DEFAULT = "127.0.0.1:8787"
DASHBOARD_HELP = (
    "Turn on Dask's dashboard (of the embedded cluster; with serve, of the scheduler it "
    f"starts) at ADDRESS, default {DASHBOARD_DEFAULT}; the console and the reports link to it."
)


def _dashboard_address(ctx: Any, param: Any, value: str | None) -> str | None:
    # The value is optional, so `--dashboard suite.toml` would take the suite
    # as the address: anything but HOST:PORT, :PORT or PORT is refused.
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit() or any(c in host for c in "/\\"):
        raise click.BadParameter(
            f"{value!r} is not HOST:PORT; write --dashboard={DASHBOARD_DEFAULT}, or put "
            "--dashboard after the suite",
            ctx, param,
        )  # fmt: skip
    return f"{host or '127.0.0.1'}:{port}"


def dashboard_option(fn: F) -> F:
    """``--dashboard [ADDRESS]``: Dask's dashboard (run, test, dtf-tui run, serve)."""
    return click.option(
        "--dashboard", is_flag=False, flag_value=DASHBOARD_DEFAULT, default=None,
        metavar="[ADDRESS]", callback=_dashboard_address, help=DASHBOARD_HELP,
    )(fn)  # fmt: skip


def cluster_options(fn: F) -> F:
    """--workers/--threads-per-worker/--resources (embedded), --scheduler and --dashboard."""
    fn = dashboard_option(fn)
    options = [
        click.option(
            "--workers", "-w", type=WorkersType(), default=None,
            help=(
                "Embedded cluster: worker processes, or `auto` for one per usable core "
                "(default: the suite's [cluster], else 2)."
            ),
        ),
        click.option(
            "--threads-per-worker", "-t", type=int, default=None,
            help="Embedded cluster: threads per worker (default 1).",
        ),
        click.option(
            "--resources", "-r", multiple=True, metavar="NAME=N[,NAME=N]",
            help=(
                "Embedded cluster: extra resource tags. The i-th --resources tags worker i "
                "(so `-r GPU=1` tags one worker); prefix with `*:` to tag every worker. "
                "Adds to or overrides what was detected."
            ),
        ),
        click.option(
            "--scheduler", metavar="ADDRESS", default=None,
            help="Use an existing Dask scheduler (tcp://host:8786) instead of an embedded cluster.",
        ),
        click.option(
            "--unschedulable-timeout", type=float, default=None,
            help=(
                "Seconds a task waits for a worker with its resources before it ends as "
                "unschedulable (default: 0 embedded, 30 with --scheduler)."
            ),
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def parse_resource_options(
    values: tuple[str, ...],
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """``--resources`` values: the i-th tags worker i; ``*:`` prefix tags every worker."""
    from dtf_core.cluster.hardware import parse_resources

    per_worker: list[dict[str, float]] = []
    everyone: dict[str, float] = {}
    for value in values:
        if value.startswith("*:"):
            everyone.update(parse_resources(value[2:]))
        else:
            per_worker.append(parse_resources(value))
    return per_worker, everyone
