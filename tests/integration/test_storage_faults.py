"""Storage faults with real files and real processes: a disk that fills up in
the middle of a run (a tmpfs), files that are damaged or too new, and the DuckDB
lock between a run, a second writer and readers.

Every fault ends a command with exit 3 and one line on stderr, never a
traceback; a run stopped by a full disk finishes with ``--resume`` once space
is freed, every task passed exactly once and every sample stored.

Every process a test starts is killed by pid (or by the process group it leads)
in a finally block; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from dtf_core.store import MIGRATIONS, Store, StoreReader

pytestmark = [pytest.mark.slow]
PY = sys.executable
DTF = [PY, "-m", "dtf_core.cli"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
DATA = Path(__file__).resolve().parents[1] / "data"
TASKS, REPEAT = 40, 4000


def _dtf(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DTF, *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )  # fmt: skip


def _one_error_line(stderr: str) -> str:
    """The command's only output on stderr: one ``dtf-core: error:`` line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("dtf-core: error: "), stderr
    return lines[0]


def _command_suite(tmp_path: Path, n: int = 3) -> Path:
    tasks = "".join(
        f'[[task]]\nname = "c{i}"\nkind = "command"\ncommand = ["python", "-c", "pass"]\n'
        for i in range(n)
    )
    path = tmp_path / "cmd.toml"
    path.write_text(f'[suite]\nname = "cmd"\n{tasks}')
    return path


def _bench_suite(tmp_path: Path) -> Path:
    # Each sample spins ~20 us: a task takes ~0.1 s, so a run of 40 tasks on two
    # workers has several flushes to fail in, and each flush carries ~100k samples.
    (tmp_path / "spin.py").write_text(
        "import time\n\n\ndef spin(i):\n    t = time.perf_counter()\n"
        "    while time.perf_counter() - t < 2e-5:\n        pass\n"
    )
    path = tmp_path / "bench.toml"
    path.write_text(
        '[suite]\nname = "fill"\n[[task]]\nname = "spin"\nkind = "benchmark"\n'
        f'function = "spin:spin"\nrepeat = {REPEAT}\nwarmup = 0\n'
        f"params = {{ i = {list(range(TASKS))} }}\n"
    )
    return path


@pytest.fixture
def tmpfs(tmp_path: Path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
        capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(directory: Path) -> Path:
    """Write a file until the disk says it is full."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@pytest.mark.timeout(600)
def test_disk_full_mid_run_exits_3_then_resume_finishes_every_task_once(
    tmp_path: Path, tmpfs: Path
) -> None:
    db = tmpfs / "dtf.duckdb"
    proc = subprocess.Popen(
        [*DTF, "run", str(_bench_suite(tmp_path)), "--db", str(db), "--workers", "2", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        start_new_session=True,
    )  # fmt: skip
    try:
        # --quiet keeps stderr for errors only, so the file tells how far the run
        # got: once its flushes have added a few MB, fill the disk.
        deadline = time.monotonic() + 300
        start_size = None
        while proc.poll() is None and time.monotonic() < deadline:
            size = sum(f.stat().st_size for f in tmpfs.iterdir())
            if start_size is None and size:
                start_size = size
            if start_size is not None and size - start_size > 2 << 20:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the disk was filled: make it longer"
        filler = _fill(tmpfs)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _kill_group(proc)
    assert proc.returncode == 3, stdout + stderr
    line = _one_error_line(stderr)
    assert "no space left" in line and str(db) in line
    m = re.search(
        rf"`dtf-core run --resume (\S+) --db {re.escape(str(db))}` finishes the run", line
    )
    assert m, line
    run_id = m.group(1)

    filler.unlink()  # space is freed
    with StoreReader(db) as r:
        assert r.get_run(run_id)["status"] == "running"
        before = {t["task_id"] for t in r.tasks(run_id) if t["status"] == "passed"}
        kept = {(a["task_id"], a["attempt"]) for a in r.attempts(run_id)}
        samples_before = r.benchmark_samples(run_id)
    assert 0 < len(before) < TASKS, "nothing was committed before the disk filled up"
    assert len(samples_before) == REPEAT * len(before)

    out = _dtf("run", "--resume", run_id, "--db", str(db), "--workers", "2", "--quiet")
    assert out.returncode == 0, out.stdout + out.stderr
    with StoreReader(db) as r:
        run = r.get_run(run_id)
        tasks = r.tasks(run_id)
        attempts = r.attempts(run_id)
        samples = r.samples_of_runs([run_id])
        by_attempt = r.benchmark_samples(run_id)
    assert run["status"] == "passed"
    assert len(tasks) == TASKS and all(t["status"] == "passed" for t in tasks)
    passed = Counter(a["task_id"] for a in attempts if a["outcome"] == "passed")
    assert len(passed) == TASKS and set(passed.values()) == {1}  # exactly once
    keys = [(a["task_id"], a["attempt"]) for a in attempts]
    assert len(keys) == len(set(keys)) and kept <= set(keys)
    for a in attempts:  # what was committed before the fault was not run again
        if a["task_id"] in before:
            assert a["attempt"] == 1
    assert len(samples) == TASKS * REPEAT  # every sample, none twice
    counts = by_attempt.groupby("task_id")["idx"].agg(["count", "nunique"])
    assert (counts["count"] == REPEAT).all() and (counts["nunique"] == REPEAT).all()


def test_newer_schema_and_garbage_files_exit_3_with_one_line(tmp_path: Path) -> None:
    newer = tmp_path / "newer.duckdb"
    Store(newer).close()
    con = duckdb.connect(str(newer))
    con.execute("INSERT INTO schema_version VALUES (?, 0)", [len(MIGRATIONS) + 1])
    con.close()
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes((DATA / "store" / "not_a_database.duckdb").read_bytes())
    suite = _command_suite(tmp_path)
    for db, words in ((newer, "newer than this dtf"), (garbage, "not a DuckDB database")):
        for args in (["run", str(suite), "--workers", "1"], ["runs"], ["report"]):
            out = _dtf(*args, "--db", str(db), timeout=120)
            assert out.returncode == 3, (args, out.stdout, out.stderr)
            line = _one_error_line(out.stderr)
            assert str(db) in line and words in line, line


def test_damaged_blocks_are_a_corrupt_database(tmp_path: Path) -> None:
    from dtf_core import model

    db = tmp_path / "damaged.duckdb"
    with Store(db) as s:
        s.create_run("r1", "x", "/x.toml", {}, 1.0)
        s.add_attempt(
            model.AttemptResult(
                run_id="r1", task_id="b", attempt=1, outcome="passed",
                samples=[float(i) for i in range(300_000)],
            )
        )  # fmt: skip
    size = db.stat().st_size
    with open(db, "r+b") as fh:  # 64 bytes of noise in every block after the headers
        for offset in range(12288 + 262144 + 1000, size, 262144):
            fh.seek(offset)
            fh.write(os.urandom(64))
    out = _dtf("stats", "--db", str(db), timeout=120)
    assert out.returncode == 3, out.stdout + out.stderr
    line = _one_error_line(out.stderr)
    assert "damaged" in line and str(db) in line


def _holder(db: Path, mode: str) -> subprocess.Popen:
    """A process holding ``db`` (``write``: a Store; ``read``: a StoreReader in the
    middle of a slow question) until a line arrives on its stdin."""
    opener = "Store(sys.argv[1])" if mode == "write" else "StoreReader(sys.argv[1])"
    code = (
        "import sys; from dtf_core.store import Store, StoreReader; "
        f"s = {opener}; s.list_runs(); print('holding', flush=True); "
        "sys.stdin.readline(); s.close()"
    )
    proc = subprocess.Popen(
        [PY, "-c", code, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=ENV,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


@pytest.mark.timeout(300)
def test_second_writer_waits_lock_timeout_then_exits_3_naming_the_holder(
    tmp_path: Path,
) -> None:
    db = tmp_path / "held.duckdb"
    Store(db).close()
    holder = _holder(db, "write")
    try:
        t0 = time.monotonic()
        out = _dtf("import", str(DATA / "import" / "good.csv"), "--db", str(db),
                   "--lock-timeout", "2", timeout=120)  # fmt: skip
        waited = time.monotonic() - t0
        assert out.returncode == 3, out.stdout + out.stderr
        assert "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 2, out.stderr
        assert lines[0].startswith(f"dtf: waiting for the lock on {db} held by process "
                                   f"{holder.pid}")  # fmt: skip
        assert lines[1].startswith("dtf-core: error: ")
        assert f"still locked by process {holder.pid}" in lines[1] and "after 2 s" in lines[1]
        assert waited >= 2.0

        out = _dtf("run", str(_command_suite(tmp_path)), "--db", str(db), "--workers", "1",
                   "--lock-timeout", "0.5", timeout=120)  # fmt: skip
        assert out.returncode == 3 and f"process {holder.pid}" in out.stderr, out.stderr

        # A reader retries briefly (dtf.store.read-wait), then names the holder.
        out = _dtf("runs", "--db", str(db), timeout=120)
        assert out.returncode == 3, out.stdout + out.stderr
        assert f"locked by process {holder.pid}" in _one_error_line(out.stderr)
    finally:
        holder.kill()
        holder.wait(timeout=10)


@pytest.mark.timeout(400)
def test_readers_in_a_loop_never_make_a_starting_run_fail(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    Store(db).close()
    readers = subprocess.Popen(
        ["bash", "-c",
         f"while true; do {PY} -m dtf_core.cli runs --db {db} >/dev/null 2>&1; sleep 0.05; done"],
        start_new_session=True, env=ENV,
    )  # fmt: skip
    slow = _holder(db, "read")  # a reader in the middle of a slow question
    run = None
    try:
        run = subprocess.Popen(
            [*DTF, "run", str(_command_suite(tmp_path, 4)), "--db", str(db), "--workers", "1",
             "--lock-timeout", "120", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
            start_new_session=True,
        )  # fmt: skip
        assert run.stderr is not None
        seen: list[str] = []
        drain = threading.Thread(target=lambda: seen.extend(run.stderr), daemon=True)  # type: ignore[union-attr, arg-type]
        drain.start()
        deadline = time.monotonic() + 120
        while not any("waiting for the lock" in line for line in seen):
            assert run.poll() is None, "".join(seen)
            assert time.monotonic() < deadline, "the run never waited for the reader"
            time.sleep(0.05)
        time.sleep(1.0)  # the run keeps waiting while the reader holds the file
        assert run.poll() is None
        assert slow.stdin is not None
        slow.stdin.write("done\n")
        slow.stdin.flush()
        slow.wait(timeout=30)
        stdout, _ = run.communicate(timeout=300)
        drain.join(timeout=10)
        assert run.returncode == 0, stdout + "".join(seen)
        waits = [line for line in seen if line.strip()]
        assert len(waits) == 1 and waits[0].startswith(f"dtf: waiting for the lock on {db}")
        assert "PASSED" in stdout
    finally:
        _kill_group(readers)
        slow.kill()
        slow.wait(timeout=10)
        if run is not None:
            _kill_group(run)
    with StoreReader(db) as r:
        (only,) = r.list_runs()
        assert only["status"] == "passed" and only["tasks"] == 4
