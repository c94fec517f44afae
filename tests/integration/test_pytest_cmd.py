"""`dtf-core test`: a distributed pytest whose counts equal a serial pytest run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dtf_core.testing import split as testsplit

SUITE = {
    "test_math.py": """
        import pytest

        @pytest.mark.parametrize("i", range(12))
        def test_square(i):
            assert i * i >= 0

        def test_wrong():
            assert 1 + 1 == 3

        @pytest.mark.xfail(reason="known")
        def test_known_bug():
            assert False

        @pytest.mark.xfail(reason="fixed?")
        def test_unexpected_pass():
            pass

        @pytest.mark.skip(reason="not here")
        def test_skipped():
            pass
        """,
    "test_fixtures.py": """
        import pytest

        @pytest.fixture(scope="module")
        def resource():
            return {"n": 3}

        @pytest.fixture
        def broken():
            raise RuntimeError("setup broke")

        class TestGroup:
            def test_uses(self, resource):
                assert resource["n"] == 3

            def test_error(self, broken):
                pass

        def test_teardown_error(request):
            request.addfinalizer(lambda: 1 / 0)
        """,
    "test_optional.py": """
        import pytest

        pytest.importorskip("a_module_nobody_has_xyz")

        def test_never_collected():
            pass
        """,
    "sub/test_deep.py": """
        def test_deep_one():
            pass

        def test_deep_two():
            pass
        """,
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _pytest_counts(output: str) -> dict[str, int]:
    """pytest's own terminal summary line, e.g. '1 failed, 23 passed, 1 error in 0.1s'."""
    line = [ln for ln in output.strip().splitlines() if " in " in ln][-1]
    counts = {}
    for n, word in re.findall(r"(\d+) (\w+)", line):
        key = {"error": "errors", "errors": "errors"}.get(word, word)
        counts[key] = int(n)
    return counts


def _dtf(
    args: list[str], cwd: Path, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dtf_core.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_counts_and_failures_equal_serial_pytest_then_history_is_used(tmp_path: Path) -> None:
    _write(tmp_path, SUITE)
    serial = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    expected = _pytest_counts(serial.stdout)
    serial_failures = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", serial.stdout, re.MULTILINE))
    assert serial.returncode == 1

    out = _dtf(["test", ".", "--db", "h.duckdb", "--json", "s.json", "--junit", "j.xml"], tmp_path)
    assert out.returncode == 1, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    got = {k: v for k, v in summary["counts"].items() if k in expected}
    assert got == expected, (out.stderr, serial.stdout)
    assert set(summary["failures"]) == serial_failures
    assert "history for 0 test(s)" in out.stderr
    assert "4 test files in" in out.stderr  # a first run splits by file, collects nowhere else

    # Second run: every test has history now.
    again = _dtf(["test", ".", "--db", "h.duckdb"], tmp_path)
    assert again.returncode == 1
    n_tests = sum(expected.values()) - expected.get("errors", 0) + 1  # teardown error's test ran
    assert "(as last collected; each chunk runs what pytest collects now)" in again.stderr
    assert re.search(r"history for (\d+) test", again.stderr), again.stderr
    known = int(re.search(r"history for (\d+) test", again.stderr).group(1))
    assert known >= n_tests - 3  # errored-in-setup tests have no duration history


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_crash_and_hang_reported_once_and_the_rest_still_runs(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "test_bad.py": """
                import os, signal, time

                def test_before():
                    pass

                def test_segfault():
                    os.kill(os.getpid(), signal.SIGSEGV)

                def test_between():
                    pass

                def test_hangs():
                    time.sleep(60)

                def test_after():
                    pass
                """
        },
    )
    out = _dtf(
        ["test", ".", "--db", "c.duckdb", "--json", "s.json", "--workers", "1", "--timeout", "2"],
        tmp_path,
    )
    assert out.returncode == 1, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["counts"]["passed"] == 3
    assert summary["counts"]["failed"] == 2
    assert sorted(summary["failures"]) == ["test_bad.py::test_hangs", "test_bad.py::test_segfault"]
    details = {d["nodeid"]: d["message"] for d in summary["failure_details"]}
    assert "SIGSEGV" in details["test_bad.py::test_segfault"]
    assert "per-test timeout" in details["test_bad.py::test_hangs"]


@pytest.mark.timeout(240)
def test_marker_routing_reruns_and_unschedulable(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "test_hw.py": """
                import os, pytest

                @pytest.mark.dtf(GPU=1)
                def test_on_gpu_worker():
                    assert os.environ["DTF_WORKER"] == "dtf-1"

                def test_flaky():
                    marker = "flaky.once"
                    first = not os.path.exists(marker)
                    open(marker, "w").close()
                    assert not first
                """,
            "test_cuda.py": """
                def test_uses_cuda():
                    import torch  # noqa: F401  (never imported: routing decides first)
                    assert torch.cuda.is_available()
                """,
        },
    )
    disc = _dtf(["discover", ".", "--json"], tmp_path)
    assert disc.returncode == 0, disc.stderr
    files = {e["file"]: e for e in json.loads(disc.stdout)}
    assert files["test_cuda.py"]["resources"] == {"GPU": 1.0}
    assert files["test_hw.py"]["resources"] == {"GPU": 1.0}  # the marker of one of its tests

    # No worker has a GPU: the GPU tests end unschedulable instead of hanging.
    out = _dtf(["test", "test_cuda.py", "--db", "u.duckdb", "--json", "u.json"], tmp_path)
    assert out.returncode == 1, out.stderr
    counts = json.loads((tmp_path / "u.json").read_text())["counts"]
    assert counts["unschedulable"] == 1
    assert "no worker has GPU=1" in out.stderr

    # One worker tagged GPU=1: the marked test runs there; a flaky test passes on rerun.
    out = _dtf(
        ["test", "test_hw.py", "--db", "r.duckdb", "--json", "r.json", "-r", "", "-r", "GPU=1",
         "--reruns", "1"],
        tmp_path,
    )  # fmt: skip
    summary = json.loads((tmp_path / "r.json").read_text())
    assert out.returncode == 0, out.stderr
    assert summary["counts"]["passed"] == 2
    assert summary["counts"]["flaky"] == 1


def test_exit_codes_follow_pytest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert _dtf(["test", "empty", "--db", "x.duckdb"], tmp_path).returncode == 5
    missing = _dtf(["test", "nope", "--db", "x.duckdb"], tmp_path)
    assert missing.returncode == 2 and "not found: nope" in missing.stderr
    (tmp_path / "some").mkdir()
    (tmp_path / "some" / "test_one.py").write_text("def test_one():\n    pass\n")
    # Files exist, but -k deselects every test: found by the chunks on a first run.
    none = _dtf(["test", "some", "--db", "k.duckdb", "--", "-k", "nothing_matches"], tmp_path)
    assert none.returncode == 5, none.stderr
    bad_args = _dtf(["test", "empty", "--db", "x.duckdb", "--", "--no-such-flag"], tmp_path)
    assert bad_args.returncode == 2 and "--no-such-flag" in bad_args.stderr
    env = {"DASK_DTF__PYTEST__CHUNKS_PER_THREAD": "two"}
    bad_setting = _dtf(["test", "some", "--db", "x.duckdb"], tmp_path, env=env)
    assert bad_setting.returncode == 2, bad_setting.stderr
    assert bad_setting.stderr.strip().splitlines() == [
        "dtf-core: error: dtf.pytest.chunks-per-thread = 'two': must be a whole number >= 1 "
        "(set it in a Dask config file or as DASK_DTF__PYTEST__CHUNKS_PER_THREAD)"
    ]
    assert not (tmp_path / "x.duckdb").exists()  # usage errors: nothing written


def test_collection_error_ends_as_pytest_would(tmp_path: Path) -> None:
    """A module that cannot be imported: exit 2 naming it and why, as pytest. On a
    first run the chunk holding it finds it (a suite this small is one chunk, so
    nothing else runs either: pytest's own counts)."""
    _write(tmp_path, {"sub/test_deep.py": SUITE["sub/test_deep.py"]})
    (tmp_path / "test_broken.py").write_text("import no_such_module_xyz\n")
    for attempt in ("first", "second"):  # nothing is cached from a broken suite
        out = _dtf(["test", ".", "--db", "x.duckdb", "--json", "x.json"], tmp_path)
        assert out.returncode == 2, (attempt, out.stderr)
        assert "collection failed" in out.stderr
        assert "test_broken.py: E   ModuleNotFoundError" in out.stderr
        counts = json.loads((tmp_path / "x.json").read_text())["counts"]
        assert counts["errors"] == 1 and counts["passed"] == 0, counts
    # Asked to go on, as pytest: the counts are pytest's, exit 1 for the error.
    on = _dtf(
        ["test", ".", "--db", "x.duckdb", "--json", "y.json", "--",
         "--continue-on-collection-errors"], tmp_path,
    )  # fmt: skip
    assert on.returncode == 1, on.stderr
    counts = json.loads((tmp_path / "y.json").read_text())["counts"]
    assert counts["errors"] == 1 and counts["passed"] == 2, counts


def test_idle_worker_takes_half_of_a_running_chunk(tmp_path: Path) -> None:
    """One chunk holds everything (a first run sizes files by bytes, and these
    are tiny): the idle worker asks it to yield, the tests it has not started
    are split, and every test still runs exactly once."""
    _write(
        tmp_path,
        {
            "test_slow.py": """
                import time, pytest

                @pytest.mark.parametrize("i", range(30))
                def test_slow(i):
                    time.sleep(0.25)
                """,
            "test_quick.py": SUITE["sub/test_deep.py"],
        },
    )
    out = subprocess.run(
        [sys.executable, "-m", "dtf_core.cli", "test", ".", "--db", "s.duckdb", "--json", "s.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
        env={**os.environ, "DASK_DTF__PYTEST__SPLIT_MIN": "1s"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "in 1 chunk(s)" in out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["counts"]["passed"] == 32, summary["counts"]
    import duckdb

    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        tasks = [r[0] for r in con.execute("SELECT task_id FROM tasks ORDER BY 1").fetchall()]
        per_test = con.execute(
            "SELECT nodeid, count(*) FROM test_results GROUP BY 1 HAVING count(*) > 1"
        ).fetchall()
        workers = con.execute("SELECT count(DISTINCT worker) FROM attempts").fetchone()
    assert tasks[0] == "pytest-1" and "pytest-1.s1" in tasks, tasks
    assert per_test == []  # nothing ran twice
    assert workers == (2,)


def test_listing_files_follows_pytest_and_imports_nothing(tmp_path: Path) -> None:
    """The first-run listing is pytest's own traversal (ini `python_files`,
    `--ignore`, conftest `collect_ignore`), without importing a test module."""
    _write(
        tmp_path,
        {
            "pytest.ini": "[pytest]\npython_files = test_*.py check_*.py\n",
            "conftest.py": "collect_ignore = ['legacy']\n",
            "a/test_one.py": "raise SystemExit('imported!')\n",
            "a/check_two.py": "def test_x():\n    pass\n",
            "a/helper.py": "def test_not_a_test_file():\n    pass\n",
            "legacy/test_old.py": "def test_old():\n    pass\n",
            "skipme/test_three.py": "def test_y():\n    pass\n",
        },
    )
    files, code, output = testsplit.list_files(["."], ["--ignore=skipme"], str(tmp_path))
    assert code in (0, 5), output
    assert files == ["a/check_two.py", "a/test_one.py"]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--ignore=skipme", "a/check_two.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "1 test collected" in collected.stdout  # and pytest agrees on what is a test file
    assert testsplit.uses_marker(tmp_path / "a" / "helper.py") is False
    (tmp_path / "a" / "test_gpu.py").write_text(
        "import pytest\n\n@pytest.mark.dtf(GPU=1)\ndef t(): ...\n"
    )
    assert testsplit.uses_marker(tmp_path / "a" / "test_gpu.py") is True
