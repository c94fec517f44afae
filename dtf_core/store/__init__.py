"""DuckDB storage: the only package that imports duckdb.

:class:`StoreReader` opens a file read-only and only reads; :class:`Store` is the
single writer (it reads as well). Storage faults surface as
:class:`~dtf_core.errors.StoreError` subclasses; the rows it hands out are typed
in :mod:`.rows`.
"""

from dtf_core.store.facade import Store, StoreReader
from dtf_core.store.history import AGG_DIMENSIONS
from dtf_core.store.imports import read_table_file
from dtf_core.store.rows import (
    AttemptRecord,
    ErrorContextRecord,
    ErrorRecord,
    FinalTestRecord,
    RunRecord,
    RunSampleRecord,
    RunSummaryRecord,
    SampleRecord,
    TaskRecord,
    WorkerHealthRecord,
    WorkerRecord,
)
from dtf_core.store.schema import MIGRATIONS

__all__ = [
    "AGG_DIMENSIONS",
    "MIGRATIONS",
    "AttemptRecord",
    "ErrorContextRecord",
    "ErrorRecord",
    "FinalTestRecord",
    "RunRecord",
    "RunSampleRecord",
    "RunSummaryRecord",
    "SampleRecord",
    "Store",
    "StoreReader",
    "TaskRecord",
    "WorkerHealthRecord",
    "WorkerRecord",
    "read_table_file",
]
