"""History import: the table format, pytest-benchmark and asv files, bad files, atomicity."""

from __future__ import annotations

import json
import pathlib

import duckdb
import pytest
from click.testing import CliRunner

from dtf_core import cli
from dtf_core.store import StoreReader

DATA = pathlib.Path(__file__).parents[1] / "data" / "import"


def run_cli(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def counts(db: pathlib.Path) -> dict[str, int]:
    with StoreReader(db) as s:
        return {
            t: int(s._one(f"SELECT count(*) FROM {t}")[0])
            for t in ("runs", "tasks", "attempts", "samples")
        }  # type: ignore[index]


def test_csv_import_writes_runs_and_samples(tmp_path):
    db = tmp_path / "h.duckdb"
    res = run_cli("import", "--db", str(db), str(DATA / "good.csv"))
    assert res.exit_code == 0, res.output
    assert "imported 9 samples in 2 runs" in res.output
    # Imported runs are runs and samples: nothing ran, so no tasks or attempts.
    assert counts(db) == {"runs": 2, "tasks": 0, "attempts": 0, "samples": 9}
    with StoreReader(db) as s:
        r1 = s.get_run("r1")
        assert r1["status"] == "imported"
        assert r1["metadata"]["commit"] == "aaa111"
        assert r1["started_at"] == pytest.approx(1714564800.0)  # 2024-05-01T12:00:00Z
        smp = s.benchmark_samples("r1")
        assert set(smp.task_id) == {"matmul[n=256]", "matmul[n=1024]", "tokenize"}
        assert sorted(smp[smp.task_id == "matmul[n=256]"].idx) == [0, 1, 2]
    # The same file again: refused as a whole, nothing added.
    res = run_cli("import", "--db", str(db), str(DATA / "good.csv"))
    assert res.exit_code == 2
    assert "run_id 'r1' (and 1 more) is already in" in res.output
    assert counts(db)["samples"] == 9


def test_higher_is_better_column_overrides_the_unit(tmp_path):
    src = tmp_path / "h.csv"
    src.write_text(
        "benchmark,params,hardware,run_id,timestamp,commit,value,unit,higher_is_better\n"
        + "".join(
            f"score,{{}},x,r{r},{1000 + r},c,{v},points,true\n" for r in (1, 2) for v in range(5)
        )
    )
    db = tmp_path / "h.duckdb"
    assert run_cli("import", "--db", str(db), str(src)).exit_code == 0
    with StoreReader(db) as s:
        assert s.samples_of_runs(["r1"]).higher_is_better.tolist() == [True] * 5
        keys, _, _ = s.benchmark_history()
        assert keys.higher_is_better.tolist() == [True]


def test_imported_history_compares(tmp_path):
    db = tmp_path / "h.duckdb"
    assert run_cli("import", "--db", str(db), str(DATA / "good.csv")).exit_code == 0
    res = run_cli("compare", "--db", str(db), "--baseline", "r1", "--run", "r2", "--json")
    doc = json.loads(res.output)
    verdicts = {(c["benchmark"], json.dumps(c["params"])): c for c in doc["comparisons"]}
    assert verdicts[("tokenize", "{}")]["higher_is_better"] is True
    assert doc["counts"]["insufficient data"] == 3  # two or three samples a side


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("bad_value.csv", "row 2, column 'value': 'fast' is not a finite number"),
        ("missing_column.csv", "missing column(s) commit"),
        ("bad_params.csv", "row 2, column 'params': 'n=256' is not a JSON object"),
        ("bad_timestamp.csv", "row 1, column 'timestamp': 'yesterday' is neither"),
        ("empty_run_id.csv", "row 1, column 'run_id'"),
        ("ragged.csv", "not a readable csv file"),
    ],
)
def test_bad_files_are_one_line_and_write_nothing(tmp_path, name, needle):
    db = tmp_path / "h.duckdb"
    res = run_cli("import", "--db", str(db), str(DATA / name))
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert str(DATA / name) in res.output
    assert res.output.strip().count("\n") == 0
    assert not db.exists()  # validated before the database is even opened


def test_a_clash_inside_the_transaction_leaves_nothing(tmp_path):
    db = tmp_path / "h.duckdb"
    assert run_cli("import", "--db", str(db), str(DATA / "good.csv")).exit_code == 0
    before = counts(db)
    res = run_cli("import", "--db", str(db), str(DATA / "clash.csv"))  # r9 is new, r1 is not
    assert res.exit_code == 2 and "run_id 'r1'" in res.output
    assert counts(db) == before
    with StoreReader(db) as s:
        assert [r["run_id"] for r in s.list_runs()] == ["r2", "r1"]


def test_parquet(tmp_path):
    pq = tmp_path / "h.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE (value::DOUBLE AS value) FROM read_csv('{DATA / 'good.csv'}',"
        f" all_varchar = true)) TO '{pq}' (FORMAT parquet)"
    )
    con.close()
    db = tmp_path / "h.duckdb"
    res = run_cli("import", "--db", str(db), str(pq))
    assert res.exit_code == 0, res.output
    assert counts(db)["samples"] == 9
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    res = run_cli("import", "--db", str(tmp_path / "b.duckdb"), str(bad))
    assert res.exit_code == 2 and "not a readable parquet file" in res.output


def test_pytest_benchmark_json(tmp_path):
    db = tmp_path / "h.duckdb"
    res = run_cli("import", "--db", str(db), str(DATA / "pytest_benchmark.json"))
    assert res.exit_code == 0, res.output
    with StoreReader(db) as s:
        run = s.get_run("pytest_benchmark")
        assert run["metadata"]["commit"] == "0123456789abcdef"
        assert run["metadata"]["branch"] == "main"
        smp = s.samples_of_runs(["pytest_benchmark"])
    sort = smp[smp.benchmark == "tests/test_perf.py::test_sort"]
    assert sorted(sort.value) == [0.001, 0.0011, 0.0012, 0.0013]
    assert json.loads(sort.params.iloc[0]) == {"n": 1000}
    assert sort.hardware.iloc[0] == "x86_64 AMD EPYC 7B13"
    assert list(smp[smp.benchmark == "tests/test_perf.py::test_startup"].value) == [0.24]


def test_asv_result_with_param_names(tmp_path):
    db = tmp_path / "h.duckdb"
    path = DATA / "asv" / "results" / "ci-box" / "4f2a1b3c-virtualenv-py3.12.json"
    res = run_cli("import", "--db", str(db), str(path))
    assert res.exit_code == 0, res.output
    with StoreReader(db) as s:
        smp = s.samples_of_runs([path.stem])
        assert s.get_run(path.stem)["metadata"]["commit"] == "4f2a1b3c9d8e7f60"
    sort = smp[smp.benchmark == "bench.TimeSuite.time_sort"]
    by_params = sort.groupby("params").value.apply(sorted).to_dict()
    assert by_params == {
        json.dumps({"kind": "quick", "n": 100}): [0.00098, 0.001, 0.0012],
        json.dumps({"kind": "merge", "n": 100}): [0.011, 0.012, 0.013],
        json.dumps({"kind": "quick", "n": 1000}): [0.0011],
    }
    thr = smp[smp.benchmark == "bench.track_throughput"]
    assert list(thr.value) == [1234.5] and thr.unit.iloc[0] == "ops/s"


def test_unknown_json_and_extension(tmp_path):
    odd = tmp_path / "x.json"
    odd.write_text('{"hello": 1}')
    res = run_cli("import", "--db", str(tmp_path / "h.duckdb"), str(odd))
    assert res.exit_code == 2 and "a JSON file dtf does not know" in res.output
    txt = tmp_path / "x.txt"
    txt.write_text("x")
    res = run_cli("import", "--db", str(tmp_path / "h.duckdb"), str(txt))
    assert res.exit_code == 2 and "unknown file type '.txt'" in res.output
    res = run_cli("import", "--db", str(tmp_path / "h.duckdb"), str(tmp_path / "nope.csv"))
    assert res.exit_code == 2 and "no such file" in res.output
