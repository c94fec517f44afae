"""What serve accepts from a submitter, without a server: the archive reader's
limits (entries, size, bombs, unsafe paths), the queue limits, and retention of
upload directories on a real temporary directory."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest

from dtf_core.errors import OptionError, ServiceBusyError, UploadTooLargeError
from dtf_core.service import bundle
from dtf_core.service.limits import UploadLimits, check_archive, check_queue
from dtf_core.service.retention import prune_uploads

BOUNDS = {"unpacked_limit": 100_000, "entry_limit": 10}


def _archive(entries: dict[str, bytes | None]) -> bytes:
    """tar.gz of ``entries`` (None: a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_an_archive_within_the_limits_unpacks_with_its_marker(tmp_path: Path) -> None:
    data = _archive({"suite.toml": b"[suite]\n", "pkg": None, "pkg/m.py": b"x = 1\n"})
    bundle.unpack(data, tmp_path / "run", **BOUNDS)
    assert (tmp_path / "run" / "pkg" / "m.py").read_bytes() == b"x = 1\n"
    assert (tmp_path / "run" / bundle.MARKER).is_file()


@pytest.mark.parametrize(
    ("entries", "error", "match"),
    [
        ({f"f{i}": b"x" for i in range(11)}, UploadTooLargeError, "more than 10 files"),
        ({"big": b"\0" * 100_001}, UploadTooLargeError, "unpacks to more than"),
        ({"a": b"\0" * 60_000, "b": b"\0" * 60_000}, UploadTooLargeError, "unpacks to more"),
        ({"../escape.py": b"x"}, OptionError, "unsafe entry"),
        ({"/etc/evil": b"x"}, OptionError, "unsafe entry"),
    ],
)
def test_an_archive_past_a_limit_or_unsafe_leaves_nothing(
    tmp_path: Path, entries: dict[str, bytes | None], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        bundle.unpack(_archive(entries), tmp_path / "run", **BOUNDS)
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "escape.py").exists()


def test_links_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("secret")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(OptionError, match="unsafe entry: 'secret'"):
        bundle.unpack(buf.getvalue(), tmp_path / "run", **BOUNDS)
    assert not (tmp_path / "run").exists()


def test_a_header_bomb_stops_at_the_limit_without_filling_memory(tmp_path: Path) -> None:
    # One pax header claiming 64 MB of metadata (zeros: 64 kB compressed). tarfile
    # reads a pax header whole; read from the archive at once, it would hold 64 MB.
    claimed = 64 * 1024 * 1024
    header = tarfile.TarInfo("bomb")
    header.type, header.size = tarfile.XHDTYPE, claimed
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
        gz.write(header.tobuf(tarfile.USTAR_FORMAT))
        chunk = b"\0" * (1024 * 1024)
        for _ in range(claimed // len(chunk)):
            gz.write(chunk)
    data = buf.getvalue()
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(UploadTooLargeError, match="unpacks to more than"):
            bundle.unpack(data, tmp_path / "run", **BOUNDS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while refusing a 64 MB header"
    assert not (tmp_path / "run").exists()


def test_not_an_archive_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="cannot be unpacked"):
        bundle.unpack(b"not gzip at all", tmp_path / "run", **BOUNDS)
    assert not (tmp_path / "run").exists()


def _limits(**changes: object) -> UploadLimits:
    return UploadLimits.from_config(
        upload_limit="1kB", queue_limit=3, submitter_queue_limit=2, **changes
    )


def test_limits_come_from_the_options_else_the_config() -> None:
    limits = _limits(keep_uploads_for="2d")
    assert (limits.upload_limit, limits.queue_limit, limits.keep_uploads_for) == (1000, 3, 172800)
    assert limits.unpacked_limit == 200_000_000  # dtf.yaml
    with pytest.raises(OptionError, match=r"--entry-limit: 'lots' is not a whole number"):
        UploadLimits.from_config(entry_limit="lots")
    with pytest.raises(OptionError, match=r"--upload-limit: '-5' must not be negative"):
        UploadLimits.from_config(upload_limit="-5")
    with pytest.raises(UploadTooLargeError, match=r"above this service's 1\.0 kB limit"):
        check_archive(1001, limits)
    check_archive(1000, limits)


def test_queue_limits_per_submitter_then_overall() -> None:
    limits = _limits()
    check_queue("a", ["a", "b"], limits)
    with pytest.raises(ServiceBusyError, match="'a' already has 2 run") as mine:
        check_queue("a", ["a", "a"], limits)
    assert mine.value.retry_after == 30.0
    with pytest.raises(ServiceBusyError, match=r"already has 3 run.*--queue-limit"):
        check_queue("c", ["a", "b", "b"], limits)


def _upload_dir(workdir: Path, name: str, age_s: float, marker: bool = True) -> Path:
    d = workdir / name
    d.mkdir(parents=True)
    (d / "suite.toml").write_text("[suite]\n")
    if marker:
        (d / bundle.MARKER).touch()
    when = time.time() - age_s
    os.utime(d, (when, when))
    return d


def test_retention_removes_old_dirs_but_never_one_in_use(tmp_path: Path) -> None:
    old = _upload_dir(tmp_path, "r-old", 10 * 86400)
    running = _upload_dir(tmp_path, "r-running", 30 * 86400)
    fresh = _upload_dir(tmp_path, "r-fresh", 60)
    foreign = _upload_dir(tmp_path, "not-an-upload", 90 * 86400, marker=False)
    asked: list[bool] = []

    def in_use() -> set[str]:
        asked.append(True)
        return {"r-running"}

    removed = prune_uploads(tmp_path, in_use, keep=0, keep_for=7 * 86400)
    assert removed == ["r-old"] and asked
    assert not old.exists()
    assert running.exists() and fresh.exists() and foreign.exists()
    # Nothing to do with both rules off.
    assert prune_uploads(tmp_path, in_use, keep=0, keep_for=0) == []


def test_retention_keeps_the_newest_n(tmp_path: Path) -> None:
    for i in range(5):
        _upload_dir(tmp_path, f"r{i}", age_s=100 * (i + 1))  # r0 newest
    removed = prune_uploads(tmp_path, lambda: {"r4"}, keep=2, keep_for=0)
    assert sorted(removed) == ["r2", "r3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r0", "r1", "r4"]
