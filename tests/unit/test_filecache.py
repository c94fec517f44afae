"""The worker's content-hash file cache: stores by sha256, refuses bytes that
do not match, copies out (never links), and stays within its age and size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dtf_core.worker.filecache import FileCache, sha256


def test_put_copy_and_refuse_wrong_bytes(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "c", max_bytes=10**6, max_age_s=3600)
    data = b"print('hi')\n"
    digest = sha256(data)
    assert not cache.has(digest)
    cache.put(digest, data)
    assert cache.has(digest)
    out = tmp_path / "run" / "pkg" / "m.py"
    cache.copy_to(digest, out, 0o755)
    assert out.read_bytes() == data and os.stat(out).st_mode & 0o777 == 0o755
    out.write_bytes(b"changed by a test")  # a copy: the cache keeps the original
    assert cache.path(digest).read_bytes() == data
    with pytest.raises(ValueError, match="another sha256"):
        cache.put(sha256(b"other"), data)
    with pytest.raises(ValueError, match="not a sha256"):
        cache.path("../../etc/passwd")
    assert not list(cache.root.rglob(".part-*"))


def test_prune_drops_old_then_least_recently_used(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "c", max_bytes=250, max_age_s=100)
    blobs = {n: bytes([n]) * 100 for n in range(4)}
    now = 1_000_000.0
    for n, data in blobs.items():
        cache.put(sha256(data), data)
        # n=0 unused for 200 s (past the age); then 1, 2, 3 from oldest to newest
        os.utime(cache.path(sha256(data)), (now - 200 + 50 * n, now - 200 + 50 * n))
    assert cache.prune(now=now) == 2  # 0 by age, then 1 by size (300 > 250)
    left = {n for n, data in blobs.items() if cache.has(sha256(data))}
    assert left == {2, 3} and cache.size() == 200
    assert cache.prune(now=now) == 0
