"""Everything about the Dask cluster: the embedded cluster and client, hardware detection and the
resources derived from it, the worker supervisor, the scheduler and worker preloads, tokens and
result signatures, and the mutual-TLS helper."""
