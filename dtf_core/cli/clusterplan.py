"""The embedded cluster a command asks for: ``--workers``, ``--threads-per-worker`` and
``--resources`` (declared in :func:`dtf_core.cli.common.cluster_options`) and the suite's
``[cluster]`` table turned into worker plans, checked before anything starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dtf_core.cli.clusteropts import parse_resource_options
from dtf_core.cli.common import RunOptions, check_writable
from dtf_core.errors import OptionError

if TYPE_CHECKING:
    from dtf_core.cluster.embedded import WorkerPlan
    from dtf_core.model import ClusterSpec


def plan_cluster(opts: RunOptions, wanted: ClusterSpec | None) -> list[WorkerPlan] | None:
    """Worker plans for the embedded cluster (None with --scheduler); checks the
    options and the output paths before anything starts."""
    from dtf_core.cluster import embedded as cluster

    check_writable(*opts.files())
    per_worker, everyone = parse_resource_options(opts.resources)
    if opts.scheduler is not None:
        if opts.workers or opts.threads_per_worker or opts.resources or opts.dashboard:
            raise OptionError(
                "--workers, --threads-per-worker, --resources and --dashboard describe the "
                "embedded cluster; they cannot be used with --scheduler (whose dashboard "
                "is its own: `dtf-core scheduler --dashboard-address`)"
            )
        return None
    for name, value in (
        ("--workers", opts.workers),
        ("--threads-per-worker", opts.threads_per_worker),
    ):
        if value is not None and value < 1:
            raise OptionError(f"{name} must be at least 1, got {value}")
    n = opts.workers or (wanted.workers if wanted else None) or 2
    t = opts.threads_per_worker or (wanted.threads_per_worker if wanted else None) or 1
    tags = [dict(x) for x in (per_worker or (wanted.worker_resources if wanted else []))]
    if everyone:
        tags = [{**everyone, **tag} for tag in (tags + [{}] * max(0, n - len(tags)))]
    return cluster.plan_workers(n, t, tags)
