"""Everything about the Dask cluster: the embedded cluster and client, hardware detection and the
resources derived from it, the worker supervisor and the credentials it hands its worker, the
scheduler and worker preloads, what the scheduler agrees to unpickle, keys, tokens, revocation and
result signatures, and the mutual-TLS helper (docs/security.md)."""
