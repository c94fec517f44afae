"""`split.assign`: each chunk's targets and selection, table-style, no pytest run."""

from __future__ import annotations

from dtf_core.testing.plugin import in_share
from dtf_core.testing.split import Chunk, assign


def chunk(*ids: str) -> Chunk:
    return Chunk(nodeids=list(ids), files=sorted({i.partition("::")[0] for i in ids}),
                 requires={}, estimate_s=1.0)  # fmt: skip


def test_a_file_held_by_one_chunk_is_given_as_the_file() -> None:
    out = assign([chunk("a.py::t0", "a.py::t1", "b.py::t0"), chunk("c.py::t0")])
    assert out == [(["a.py", "b.py"], None), (["c.py"], None)]


def test_whole_file_units_pass_through() -> None:
    assert assign([chunk("new.py")]) == [(["new.py"], None)]


def test_a_split_file_has_one_owner_that_runs_all_but_the_others_share() -> None:
    out = assign(
        [chunk("a.py::t0", "a.py::t1", "b.py::t0"), chunk("a.py::t2", "c.py"), chunk("a.py::t3")]
    )
    (t0, s0), (t1, s1), (t2, s2) = out
    assert t0 == ["a.py", "b.py"] and t1 == ["a.py", "c.py"] and t2 == ["a.py"]
    # The owner drops exactly what the others keep: every test, old or new, runs once.
    assert s0 == {"keep": {}, "drop": {"a.py": ["a.py::t2", "a.py::t3"]}}
    assert s1 == {"keep": {"a.py": ["a.py::t2"]}, "drop": {}}
    assert s2 == {"keep": {"a.py": ["a.py::t3"]}, "drop": {}}


def test_selection_semantics_cover_every_collected_test_exactly_once() -> None:
    chunks = [chunk("a.py::t0", "a.py::t1"), chunk("a.py::t2")]
    now = ["a.py::t0", "a.py::t2", "a.py::t4", "a.py::t5"]  # t1 vanished, t4 and t5 appeared

    def wanted(select: dict | None, nodeid: str) -> bool:
        return select is None or in_share(select["keep"], select["drop"], nodeid)

    runs = [[n for n in now if wanted(sel, n)] for _, sel in assign(chunks)]
    assert sorted(n for r in runs for n in r) == sorted(now)
    assert runs == [["a.py::t0", "a.py::t4", "a.py::t5"], ["a.py::t2"]]
