"""A chunk's task without the tests it gave away (dtf_core.run.balance.without)."""

from __future__ import annotations

from dtf_core.model import TaskKind, TaskSpec
from dtf_core.run.balance import without
from dtf_core.testing.plugin import in_share


def _spec(nodeids: list[str], select: dict | None = None) -> TaskSpec:
    return TaskSpec(
        task_id="pytest-1", name="pytest", kind=TaskKind.PYTEST, root=".", timeout=60.0,
        retries=0, nodeids=nodeids, select=select,
    )  # fmt: skip


def _runs(spec: TaskSpec, collected: list[str]) -> list[str]:
    """What a retry of ``spec`` runs of what pytest collects in its files."""
    sel = spec.select or {}
    out = []
    for n in collected:
        file = n.partition("::")[0]
        if n in spec.nodeids or (
            file in spec.nodeids and in_share(sel.get("keep") or {}, sel.get("drop") or {}, n)
        ):
            out.append(n)
    return out


def test_given_node_ids_leave_every_kind_of_target() -> None:
    a = [f"a.py::t{i}" for i in range(4)]
    b = [f"b.py::t{i}" for i in range(4)]
    c = [f"c.py::t{i}" for i in range(4)]
    # a.py whole, b.py shared (this chunk owns it: drops t3), c.py by node id.
    spec = _spec(["a.py", "b.py", *c[:2]], {"keep": {}, "drop": {"b.py": [b[3]]}})
    given = {a[2], a[3], b[2], c[1]}
    left = without(spec, given)
    assert _runs(left, a + b + c) == [a[0], a[1], b[0], b[1], c[0]]
    # A file this chunk only holds a share of (keep): the given leave the share.
    shared = _spec(["b.py"], {"keep": {"b.py": b[:3]}, "drop": {}})
    assert _runs(without(shared, {b[1]}), a + b + c) == [b[0], b[2]]
    # Nothing given, nothing changes.
    assert _runs(without(spec, set()), a + b + c) == _runs(spec, a + b + c)
