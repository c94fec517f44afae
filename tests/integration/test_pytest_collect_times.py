"""dtf's plugin records what collecting each test file cost (the module's
import), on the file's first test, so the next run packs chunks by it too: a
real pytest subprocess, read back through dtf_core.testing.stream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dtf_core.testing import split as testsplit
from dtf_core.testing import stream as pyteststream


def test_the_stream_carries_each_files_collection_time(tmp_path: Path) -> None:
    (tmp_path / "test_slow_import.py").write_text(
        "import time\ntime.sleep(0.4)\n\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n"
    )
    (tmp_path / "test_fast_import.py").write_text("def test_c():\n    pass\n")
    stream = tmp_path / "stream.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "test_slow_import.py", "test_fast_import.py",
         "-p", "no:cacheprovider", "-p", "dtf_core.testing.plugin", f"--dtf-stream={stream}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = pyteststream.read(stream).collected
    assert records is not None
    items = [testsplit.item_of(r) for r in records]
    assert [i.nodeid for i in items] == [
        "test_slow_import.py::test_a", "test_slow_import.py::test_b", "test_fast_import.py::test_c"
    ]  # fmt: skip
    slow, second, fast = (i.collect_s for i in items)
    assert slow >= 0.4 and second == 0.0  # once per file, on its first test
    assert 0.0 < fast < 0.4
    # Progress still counts tests, not files (stream.Tail skips only problems).
    assert sum(1 for r in records if "problem" not in r) == 3
