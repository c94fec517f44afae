"""Public path of the scheduler preload (`dask scheduler --preload dtf_core.scheduler_preload`);
the code lives in :mod:`dtf_core.cluster.scheduler_preload`. Kept because deployments name it."""

from dtf_core.cluster.scheduler_preload import dask_setup

__all__ = ["dask_setup"]
