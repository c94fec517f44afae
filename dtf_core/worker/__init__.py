"""What runs on a Dask worker: the task runner (subprocess in its own process group with a
timeout, in-process benchmarks) and process-group bookkeeping."""
