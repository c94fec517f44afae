"""Suite files reach a worker on "another host" (a directory it does not have)
through its content-hash cache: a second run of an unchanged suite moves no
file bytes, a changed file moves only itself. A real worker process; the
counters are the ones each worker logs (``shipping.STATS``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster

from dtf_core.service import shipping

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with pytest.MonkeyPatch.context() as mp:
        # An environment variable, not dask.config.set: importing dtf_core.config
        # in the worker refreshes dask's config from files and the environment.
        mp.setenv("DASK_DTF__WORKER__FILE_CACHE", str(tmp_path_factory.mktemp("worker-cache")))
        with cluster_client(1) as c:
            yield c


@contextlib.contextmanager
def cluster_client(workers: int) -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,  # fmt: skip
        Client(cluster) as c,
    ):
        yield c


def stats(client: Client, dest: Path) -> dict[str, int]:
    def read(key: str = str(dest)) -> Any:
        from dtf_core.service import shipping as s

        return s.STATS.get(key)

    (out,) = client.run(read).values()
    return dict(out)


def run_once(client: Client, src: Path, run_id: str, tmp: Path) -> dict[str, int]:
    dest = tmp / "remote" / run_id
    blobs = shipping.ship(client, run_id, str(src), f"dtf-files-{run_id}", dest=str(dest))
    try:
        for f in src.rglob("*"):
            if f.is_file():
                assert (dest / f.relative_to(src)).read_bytes() == f.read_bytes()
        assert os.stat(dest / "run.sh").st_mode & 0o777 == 0o755
        return stats(client, dest)
    finally:
        shipping.withdraw(client, f"dtf-files-{run_id}", blobs)
        assert not dest.exists()
        assert not any(b in client.list_datasets() for b in blobs)


@pytest.mark.timeout(120)
def test_second_run_moves_no_bytes_and_a_changed_file_only_itself(
    client: Client, tmp_path: Path
) -> None:
    src = tmp_path / "suite"
    (src / "pkg").mkdir(parents=True)
    (src / "suite.toml").write_text("[suite]\nname = 'x'\n")
    (src / "pkg" / "bench.py").write_bytes(os.urandom(20_000))
    (src / "pkg" / "copy.py").write_bytes((src / "pkg" / "bench.py").read_bytes())  # same bytes
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    total = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())

    first = run_once(client, src, "r1", tmp_path)
    # One copy of the duplicated content travels.
    assert first["files"] == 4 and first["fetched_bytes"] == total - 20_000
    second = run_once(client, src, "r2", tmp_path)
    assert second["fetched_bytes"] == 0 and second["fetched_files"] == 0
    (src / "suite.toml").write_text("[suite]\nname = 'y'\n")
    third = run_once(client, src, "r3", tmp_path)
    assert third["fetched_files"] == 1
    assert third["fetched_bytes"] == (src / "suite.toml").stat().st_size
    print(f"\nbytes moved to the worker: run 1 {first['fetched_bytes']}, run 2 "
          f"{second['fetched_bytes']}, run 3 (one file changed) {third['fetched_bytes']}")  # fmt: skip


@pytest.mark.timeout(120)
def test_two_workers_on_one_host_share_the_directory(tmp_path: Path) -> None:
    src = tmp_path / "suite"
    src.mkdir()
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "data.bin").write_bytes(os.urandom(100_000))
    dest = tmp_path / "remote" / "r1"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DASK_DTF__WORKER__FILE_CACHE", str(tmp_path / "cache"))
        with cluster_client(2) as c:
            blobs = shipping.ship(c, "r1", str(src), "dtf-files-r1", dest=str(dest))
            # One of them made it, the other found it made (or made it first and
            # the other saw it): never one removing the other's files.
            assert (dest / "data.bin").read_bytes() == (src / "data.bin").read_bytes()
            assert not list(dest.parent.glob("r1.part-*"))
            shipping.withdraw(c, "dtf-files-r1", blobs)
            assert not dest.exists()
