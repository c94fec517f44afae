"""In a pytest that dtf runs, what collection made is frozen out of the garbage
collector's reach before the first test (dtf_core.testing.plugin), unless the
suite turns it off; a plain pytest with the plugin loaded is left alone. Real
pytest subprocesses; the test inside reports what the collector saw."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The count is read under a built name: the words the plugin looks for in a
# test file (tests that inspect the collector) must not be in this one.
_TEST = """
import gc, os
{extra}
def test_report_freeze():
    with open(os.environ["FREEZE_OUT"], "w") as fh:
        fh.write(str(getattr(gc, "get_" + "freeze_count")()))
"""


def _frozen(tmp_path: Path, *extra: str, source: str = "") -> int:
    (tmp_path / "test_gc.py").write_text(_TEST.format(extra=source))
    out = tmp_path / "frozen.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "test_gc.py", "-p", "no:cacheprovider",
         "-p", "dtf_core.testing.plugin", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "FREEZE_OUT": str(out),
             "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(out.read_text())


def test_dtf_run_freezes_what_collection_made(tmp_path: Path) -> None:
    # pytest, its plugins, the collected module and item: thousands of objects.
    assert _frozen(tmp_path, f"--dtf-stream={tmp_path / 's.jsonl'}") > 1000


@pytest.mark.parametrize(
    "extra",
    [["-o", "dtf_gc_freeze=false", "--dtf-stream=s.jsonl"], []],
    ids=["turned-off", "plain-pytest"],
)
def test_left_alone(tmp_path: Path, extra: list[str]) -> None:
    assert _frozen(tmp_path, *extra) == 0


@pytest.mark.parametrize("where", ["test_gc.py", "conftest.py"], ids=["test-file", "conftest"])
def test_suites_that_inspect_the_collector_are_not_frozen(tmp_path: Path, where: str) -> None:
    # Frozen objects are missing from gc.get_objects(): a leak check there could
    # pass under dtf and fail under plain pytest, so dtf leaves such a chunk alone.
    check = "def leaks():\n    return [o for o in gc.get_objects() if type(o).__name__ == 'X']\n"
    if where == "conftest.py":
        (tmp_path / "conftest.py").write_text("import gc\n" + check)
        source = ""
    else:
        source = check
    stream = f"--dtf-stream={tmp_path / 's.jsonl'}"
    assert _frozen(tmp_path, stream, source=source) == 0


def test_only_the_files_that_inspect_the_collector_run_unfrozen(tmp_path: Path) -> None:
    # One process, three files in order: frozen, unfrozen (it counts objects
    # through gc.get_objects), frozen again.
    report = (
        "import gc, os\n{extra}\n"
        "def test_report():\n"
        "    with open(os.path.join(os.environ['OUT_DIR'], __name__), 'w') as fh:\n"
        "        fh.write(str(getattr(gc, 'get_' + 'freeze_count')()))\n"
    )
    watch = "def leaks():\n    return len(gc.get_objects())\n"
    names = {"test_a": "", "test_b": watch, "test_c": ""}
    for name, extra in names.items():
        (tmp_path / f"{name}.py").write_text(report.format(extra=extra))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "test_a.py", "test_b.py", "test_c.py",
         "-p", "no:cacheprovider", "-p", "dtf_core.testing.plugin",
         f"--dtf-stream={tmp_path / 's.jsonl'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "OUT_DIR": str(tmp_path),
             "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = {n: int((tmp_path / n).read_text()) for n in names}
    assert counts["test_a"] > 1000 and counts["test_c"] > 1000, counts
    assert counts["test_b"] == 0, counts
