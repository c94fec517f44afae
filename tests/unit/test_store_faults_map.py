"""DuckDB's exceptions become dtf's StoreError tree; typed rows match what the
store returns; a read-only store has no way to write.

The exception texts below are the ones DuckDB 2.0 raised in the trials described
in ``dtf_core/store/faults.py`` (the I/O-error and newer-DuckDB texts are DuckDB's
own messages, not produced here); the processes that raise them for real are in
``tests/integration/test_storage_faults.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from dtf_core import errors, model
from dtf_core.store import MIGRATIONS, Store, StoreReader, faults, rows

DATA = Path(__file__).resolve().parents[1] / "data" / "store"
DB = "/data/dtf.duckdb"

CASES = [
    (
        duckdb.TransactionException(
            'TransactionContext Error: Failed to commit: Could not write file "/data/dtf.duckdb'
            '.wal": No space left on device'
        ),
        errors.StorageFullError,
    ),
    (
        duckdb.IOException(
            'IO Error: Could not write file "/data/dtf.duckdb": No space left on device'
        ),
        errors.StorageFullError,
    ),
    (
        duckdb.FatalException(
            "FATAL Error: Failed to create checkpoint because of error: Could not write file "
            '"/data/dtf.duckdb": No space left on device'
        ),
        errors.StorageFullError,
    ),
    (
        duckdb.IOException('IO Error: Could not write file "/data/dtf.duckdb": File too large'),
        errors.StorageFullError,
    ),
    (
        duckdb.IOException('IO Error: Could not read from file "/data/dtf.duckdb": I/O error'),
        errors.StoreIOError,
    ),
    (
        duckdb.FatalException(
            "FATAL Error: Failed: database has been invalidated because of a previous fatal "
            'error.\nOriginal error: "Invalid memory"'
        ),
        errors.StoreIOError,
    ),
    (
        duckdb.IOException(
            'IO Error: The file "/data/dtf.duckdb" exists, but it is not a valid DuckDB '
            "database file!"
        ),
        errors.CorruptDatabaseError,
    ),
    (
        duckdb.Error(
            "Corrupt database file: computed checksum 1 does not match stored checksum 2 in "
            "block at location 274432"
        ),
        errors.CorruptDatabaseError,
    ),
    (
        duckdb.IOException(
            'IO Error: Could not read enough bytes from file "/data/dtf.duckdb": attempted to '
            "read 262144 bytes from location 2109440"
        ),
        errors.CorruptDatabaseError,
    ),
    (
        duckdb.IOException(
            "IO Error: Trying to read a database file with version number 70, but we can only "
            "read versions between 64 and 69.\nThe database file was created with a newer "
            "version of DuckDB."
        ),
        errors.SchemaTooNewError,
    ),
]


@pytest.mark.parametrize(("exc", "kind"), CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_storage_faults_map_to_one_line_naming_the_file(exc: duckdb.Error, kind: type) -> None:
    err = faults.storage_error(exc, DB, run_id="r-42")
    assert type(err) is kind
    text = str(err)
    assert DB in text and "\n" not in text
    if isinstance(err, errors.StoreIOError):
        assert "dtf-core run --resume r-42 --db /data/dtf.duckdb" in text


def test_dtf_bugs_are_not_storage_faults() -> None:
    for exc in (
        duckdb.BinderException('Binder Error: Referenced column "nope" not found'),
        duckdb.ParserException("Parser Error: syntax error at or near"),
        duckdb.ConstraintException("Constraint Error: Duplicate key"),
    ):
        assert faults.storage_error(exc, DB) is None


def test_garbage_file_in_test_data_is_a_corrupt_database(tmp_path: Path) -> None:
    for opener in (Store, StoreReader):
        path = tmp_path / "copy.duckdb"
        path.write_bytes((DATA / "not_a_database.duckdb").read_bytes())
        with pytest.raises(errors.CorruptDatabaseError, match="not a DuckDB database") as info:
            opener(path)
        assert str(path) in str(info.value) and isinstance(info.value.__cause__, duckdb.Error)


def test_newer_schema_is_refused_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, 0)", [len(MIGRATIONS) + 1])
    con.close()
    before = path.read_bytes()
    for opener in (Store, StoreReader):
        with pytest.raises(errors.SchemaTooNewError, match="newer than this dtf"):
            opener(path)
    assert path.read_bytes() == before


def _seed(path: Path) -> None:
    spec = model.TaskSpec(
        task_id="b[n=1]",
        name="b",
        kind=model.TaskKind("benchmark"),
        root="/",
        timeout=1.0,
        retries=0,
        params={"n": 1},
    )
    with Store(path) as s:
        s.create_run("r1", "demo", "/s.toml", {"commit": "abc"}, 10.0)
        s.add_tasks("r1", [spec])
        s.add_attempt(
            model.AttemptResult(
                run_id="r1", task_id="b[n=1]", attempt=1, outcome="passed",
                samples=[1.0, 2.0], unit="ms", hardware="hw", started_at=11.0, finished_at=12.0,
            )
        )  # fmt: skip
        s.add_attempt(
            model.AttemptResult(
                run_id="r1", task_id="c", attempt=1, outcome="failed", category="test-failure",
                message="no", tests=[model.TestResult("t.py::a", "failed", 0.5, "boom")],
            )
        )  # fmt: skip
        s.finish_task("r1", model.TaskFinal("b[n=1]", "passed", None, "", 1, False, 1.0, "w"))
        s.record_workers("r1", [{"address": "tcp://w", "name": "w", "host": "h"}])


def test_typed_rows_name_exactly_the_columns_returned(tmp_path: Path) -> None:
    path = tmp_path / "rows.duckdb"
    _seed(path)
    with StoreReader(path) as r:
        checks = [
            (r.get_run("r1"), rows.RunRecord),
            (r.list_runs()[0], rows.RunSummaryRecord),
            (r.tasks("r1")[0], rows.TaskRecord),
            (r.attempts("r1")[0], rows.AttemptRecord),
            (r.final_tests("r1")[0], rows.FinalTestRecord),
            (r.errors("r1")[0], rows.ErrorRecord),
            (r.errors_with_context("r1")[0], rows.ErrorContextRecord),
            (r.workers("r1")[0], rows.WorkerRecord),
        ]
        for row, kind in checks:
            assert set(row) == set(kind.__annotations__), kind.__name__
        assert tuple(r.benchmark_samples("r1").columns) == rows.SAMPLE_COLUMNS
        assert tuple(r.samples_of_runs(["r1"]).columns) == rows.RUN_SAMPLE_COLUMNS
        assert r.get_run("r1")["metadata"] == {"commit": "abc"}
        json.dumps(r.list_runs())  # what `serve` sends


def test_a_reader_has_no_write_methods(tmp_path: Path) -> None:
    path = tmp_path / "ro.duckdb"
    _seed(path)
    writes = {"create_run", "add_tasks", "add_attempt", "finish_task", "flush", "finish_run",
              "record_workers", "import_samples", "should_flush"}  # fmt: skip
    with Store.open_readonly(path) as r:
        assert type(r) is StoreReader
        assert not writes & set(dir(r))
        assert r.latest_run_id() == "r1"
    with Store(path) as w:  # the writer reads too
        assert writes <= set(dir(w)) and w.latest_run_id() == "r1"
