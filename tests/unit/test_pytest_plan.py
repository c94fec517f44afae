"""`dtf-core test` planning: chunks balanced by history, files kept whole, GPU use found."""

from __future__ import annotations

from pathlib import Path

from dtf_core.testing import split as testsplit


def _items(spec: dict[str, int]) -> list[testsplit.TestItem]:
    return [testsplit.TestItem(f"{f}::t{i}", f) for f, n in spec.items() for i in range(n)]


def test_plan_balances_by_history_longest_first() -> None:
    items = _items({"a.py": 10, "b.py": 10, "c.py": 10, "d.py": 10})
    history = {i.nodeid: (3.0 if i.file == "a.py" else 0.5) for i in items}
    chunks = testsplit.plan(items, 2, history, chunks_per_slot=1)
    assert sorted(n for c in chunks for n in c.nodeids) == sorted(i.nodeid for i in items)
    loads = sorted(c.estimate_s for c in chunks)
    # a.py alone is 30 s, the rest 15 s: a.py is split so both slots get ~22.5 s.
    assert loads[1] - loads[0] < 3.5, loads
    assert chunks[0].estimate_s >= chunks[-1].estimate_s


def test_plan_keeps_files_whole_and_groups_by_resources() -> None:
    items = [
        *_items({"a.py": 4, "b.py": 4}),
        testsplit.TestItem("g.py::t0", "g.py", {"GPU": 1.0}),
        testsplit.TestItem("g.py::t1", "g.py", {}),
    ]
    chunks = testsplit.plan(items, 2, {}, requires=None)
    gpu = [c for c in chunks if c.requires]
    assert [c.nodeids for c in gpu] == [["g.py::t0"]]
    for c in chunks:
        if not c.requires:
            for f in c.files:
                # a file's tests are never split between chunks when it fits a share
                assert all(n in c.nodeids for n in (f"{f}::t{i}" for i in range(4)) if f != "g.py")


def test_scan_file_detects_gpu_use(tmp_path: Path) -> None:
    cases = {
        "x = torch.cuda.device_count()": True,
        "import cupy as cp": True,
        "from numba import cuda": True,
        "model.cuda()": True,
        "import torch\nx = torch.zeros(3)": False,
        "# mentions cudf only in a comment: import cudf": False,
    }
    for text, gpu in cases.items():
        f = tmp_path / "t.py"
        f.write_text(text + "\n")
        assert (testsplit.scan_file(f) == {"GPU": 1.0}) is gpu, text


def test_plan_two_chunks_per_thread_with_history_or_without() -> None:
    items = _items({f"f{n}.py": 10 for n in range(12)})
    history = {i.nodeid: 1.0 for i in items}
    # With history too: a pytest process that collected fewer files runs its
    # tests faster, by more than a second process's start-up costs (split.py).
    assert len(testsplit.plan(items, 2, history)) == 4
    assert len(testsplit.plan(items, 2, {})) == 4
    assert len(testsplit.plan(items, 3, history)) == 6
    # Never more processes than the work pays for: 12 files of 0.01 s each.
    tiny = {i.nodeid: 0.01 for i in items}
    assert len(testsplit.plan(items, 2, tiny)) == 2


def test_plan_counts_what_collecting_a_file_costs() -> None:
    """Test durations leave out a module's import; the collection time the
    plugin recorded (on a file's first test) is packed with them."""
    items = _items({"a.py": 4, "b.py": 4, "c.py": 4})
    history = {i.nodeid: 1.0 for i in items}
    assert [len(c.files) for c in testsplit.plan(items, 2, history, chunks_per_slot=1)] == [2, 1]
    heavy = [
        testsplit.TestItem(i.nodeid, i.file, collect_s=4.0 if i.nodeid == "a.py::t0" else 0.0)
        for i in items
    ]
    chunks = testsplit.plan(heavy, 2, history, chunks_per_slot=1)
    assert [c.files for c in chunks] == [["a.py"], ["b.py", "c.py"]]
    assert [c.estimate_s for c in chunks] == [8.0 + testsplit.PROCESS_S] * 2


def test_item_of_reads_the_recorded_collection_time() -> None:
    rec = {"nodeid": "a.py::t0", "file": "a.py", "resources": {}, "collect_s": 1.5}
    assert testsplit.item_of(rec) == testsplit.TestItem("a.py::t0", "a.py", {}, 1.5)
    assert testsplit.item_of({"nodeid": "b.py::t", "file": "b.py"}).collect_s == 0.0
