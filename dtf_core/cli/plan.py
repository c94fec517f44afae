"""``dtf-core plan``: what a suite or a pytest tree would ask of a cluster, and
whether the cluster there now can give it, before a pipeline queues anything.

Exit 2 when a task or test file can never be scheduled on the cluster given
(no worker has a resource it needs: Dask would keep it waiting), else 0.
A suite is validated without importing its code (as the service does).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dtf_core.cli.common import EXIT_BAD_INPUT, emit, fail, format_option, handle_errors
from dtf_core.errors import OptionError
from dtf_core.run.feasibility import needs_text

if TYPE_CHECKING:
    from dtf_core.run.feasibility import Fit


def _units(targets: list[str]) -> list[Fit]:
    """The tasks of a suite file, or the test files under pytest paths."""
    from dtf_core import spec
    from dtf_core.cli.testcmd import discovered_files
    from dtf_core.run.feasibility import Fit

    if len(targets) == 1 and targets[0].endswith(".toml"):
        loaded = spec.load_suite(targets[0], run_code=False)
        return [Fit(t.task_id, t.kind.value, dict(t.requires)) for t in loaded.tasks]
    if any(t.endswith(".toml") for t in targets):
        raise OptionError("give one suite file, or pytest paths (files, directories, node ids)")
    rows = discovered_files(targets or ["."], os.getcwd())
    return [Fit(r["file"], "pytest-file", dict(r["resources"]), tests=r["tests"]) for r in rows]


def _workers(scheduler: str | None, coordinator: str | None, token_file: str | None) -> Any:
    """The connected workers (``name``, ``resources``), or None when no cluster is given."""
    if scheduler and coordinator:
        raise OptionError("give --scheduler or --coordinator, not both")
    if coordinator:
        from dtf_core.service.client import CoordinatorClient

        token = Path(token_file).read_text().strip() if token_file else None
        return CoordinatorClient(coordinator, token).workers()
    if scheduler:
        from dtf_core.cluster import embedded as cluster

        with cluster.open_cluster(scheduler) as handle:
            return list(cluster.current_workers(handle.client).values())
    return None


@click.command("plan")
@click.argument("targets", nargs=-1, metavar="SUITE|PATH...")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Check against the workers of this Dask scheduler (tcp://host:8786).",
)
@click.option(
    "--coordinator",
    metavar="URL",
    default=None,
    help="Check against the workers of this `dtf-core serve` (token: $DTF_TOKEN or --token-file).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="File holding a bearer token for --coordinator (role viewer is enough).",
)
@format_option("text", "json")
@handle_errors
def plan_cmd(
    targets: tuple[str, ...], scheduler: str | None, coordinator: str | None,
    token_file: str | None, fmt: str, output: str | None,
) -> None:  # fmt: skip
    """List the tasks of SUITE (or the test files under PATH...) with the resources each
    needs and, given a cluster, whether one of its workers can run each now.

    Exit 2 when something can never be scheduled there (the resources it lacks are named)."""
    from dtf_core.run.feasibility import check, summary_lines

    fits = _units(list(targets))
    workers = _workers(scheduler, coordinator, token_file)
    fits = [check(f, workers) for f in fits]
    if fmt == "json":
        doc = {
            "cluster": scheduler or coordinator,
            "workers": None if workers is None else [
                {"name": w["name"], "resources": w.get("resources") or {}} for w in workers
            ],
            "units": [f.to_dict() for f in fits],
            "schedulable": all(f.runnable for f in fits),
        }  # fmt: skip
        emit(json.dumps(doc, indent=2), output)
    else:
        lines = []
        for f in fits:
            what = f"{f.kind:<11} {f.name}" + (
                f"  {f.tests} test(s)" if f.tests is not None else ""
            )
            line = f"{what}  needs {needs_text(f.requires)}"
            if f.checked:
                line += f"  ok on {', '.join(f.workers)}" if f.workers else f"  NEVER: {_why(f)}"
            lines.append(line)
        emit("\n".join(lines + summary_lines(fits, workers)), output)
    blocked = [f for f in fits if not f.runnable]
    if blocked:
        where = scheduler or coordinator
        fail(f"{len(blocked)} of {len(fits)} unit(s) can never be scheduled on {where}: "
             f"{blocked[0].name}: {_why(blocked[0])}", EXIT_BAD_INPUT)  # fmt: skip


def _why(f: Fit) -> str:
    return f"no worker has {needs_text(f.missing)}" if f.missing else "no worker is connected"


def register(group: click.Group) -> None:
    group.add_command(plan_cmd)
