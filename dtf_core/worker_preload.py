"""Public path of the worker preload (`dask worker --preload dtf_core.worker_preload`); the code
lives in :mod:`dtf_core.cluster.worker_preload`. Kept because deployments name this path."""

from dtf_core.cluster.worker_preload import dask_setup

__all__ = ["dask_setup"]
