"""The scheduler's unpickler (issue 13, item 2): dtf's own task graphs decode,
nothing a client or a task crafts runs. No cluster: the messages are built the way
``Client.submit`` builds them and read the way the scheduler reads them."""

from __future__ import annotations

import shutil
import types
import uuid
from pathlib import Path

import distributed.protocol.pickle as dpickle
import distributed.scheduler as dscheduler
import pytest
from dask._expr import Expr, LLGExpr
from dask._task_spec import Task, parse_input
from distributed.core import error_message
from distributed.protocol.core import dumps, loads
from distributed.protocol.serialize import ToPickle, deserialize, serialize, to_serialize

from dtf_core.cluster import graphpickle
from dtf_core.model import TaskKind, TaskPayload, TaskSpec
from dtf_core.worker import runner


@pytest.fixture
def scheduler_side(monkeypatch: pytest.MonkeyPatch) -> None:
    # install() patches the process; monkeypatch puts distributed's loaders back.
    monkeypatch.setattr(dpickle, "loads", dpickle.loads)
    monkeypatch.setattr(dscheduler, "loads", dscheduler.loads)
    graphpickle.install()


def _graph(n: int = 3) -> LLGExpr:
    spec = TaskSpec("t[n=1]", "t", TaskKind.PYTEST, "/r", 60.0, 2, requires={"GPU": 1.0},
                    params={"n": [1, 2]}, path="/r/tests", nodeids=["a.py::b"],
                    select={"keep": {"a.py": ["a.py::b"]}, "drop": {}})  # fmt: skip
    payloads = [TaskPayload("run", spec, i, "dtf-run-k", ["a.py::b"], "abc") for i in range(n)]
    key = "dtf-run-k"
    task = Task(key, runner.execute_batch_plain, *(parse_input(a) for a in (payloads,)))
    return LLGExpr({key: task}, _determ_token=uuid.uuid4().hex)


def test_dtf_submissions_decode_unchanged(scheduler_side: None) -> None:
    expr = _graph()
    header, frames = serialize(to_serialize(expr), on_error="raise")  # as Client._graph_to_futures
    back = deserialize(header, frames)  # as Scheduler.update_graph
    (task,) = back.__dask_graph__().values()
    assert task.func is runner.execute_batch_plain
    assert task.args[0] == expr.__dask_graph__()["dtf-run-k"].args[0]
    # update-graph's other pickled fields are plain.
    msg = loads(dumps({"op": "update-graph", "annotations": ToPickle({"resources": {"GPU": 1}}),
                       "code": ToPickle(()), "span_metadata": ToPickle({"collections": []})}))  # fmt: skip
    assert msg["annotations"] == {"resources": {"GPU": 1}}


class _Remove:
    def __reduce__(self) -> tuple:
        return (shutil.rmtree, ("/nonexistent-dtf",))


class _CallsATask:
    # A dask Task is callable: calling it while unpickling would run the task here.
    def __reduce__(self) -> tuple:
        return (Task("k", runner.execute_batch_plain, []), ())


class _ReconstructsFromATask:
    # Expr._reconstruct calls its first argument: it must be a class, never a Task.
    def __reduce__(self) -> tuple:
        return (Expr._reconstruct, (Task("k", runner.execute_batch_plain, []), "token", {}))


class _ByValue:
    pass


@pytest.mark.parametrize(
    "payload, named",
    [
        (_Remove(), "shutil.rmtree"),
        (lambda: 1, "cloudpickle"),
        (_CallsATask(), "a call of Task"),
        (_ReconstructsFromATask(), "a call of Expr._reconstruct"),
        (_ByValue(), "test_graphpickle._ByValue"),
    ],
)
def test_anything_else_is_refused_while_the_message_is_read(
    scheduler_side: None, payload: object, named: str, tmp_path: Path
) -> None:
    before = graphpickle.refusals
    # A raw message to any handler, as a task's own connection could send it.
    with pytest.raises(graphpickle.RefusedGraphError, match=named):
        loads(dumps({"op": "identity", "x": ToPickle(payload)}))
    # And as a graph.
    header, frames = serialize(to_serialize(payload), on_error="raise")
    with pytest.raises(graphpickle.RefusedGraphError):
        deserialize(header, frames)
    assert graphpickle.refusals == before + 2


def test_guarded_opcodes() -> None:
    fn = b"cdtf_core.worker.runner\nexecute_batch_plain\n"
    # BUILD on a function (state into a task function), APPEND into a non-list.
    for crafted, why in (
        (fn + b"(S'a'\nI1\ndb.", "setting the state of a function"),
        (fn + b"I1\na.", "filling a function"),
        (b"cbuiltins\ngetattr\n(S'x'\nS'y'\ntR.", "builtins.getattr"),
    ):
        with pytest.raises(graphpickle.RefusedGraphError, match=why):
            graphpickle.graph_loads(crafted)
    assert graphpickle.graph_loads(b"(lp0\nI1\naI2\na.") == [1, 2]


def test_the_schedulers_error_replies_keep_their_exception(scheduler_side: None) -> None:
    # distributed checks that an error reply unpickles before sending it; a
    # traceback it cannot rebuild would reach the client as a bare AssertionError.
    try:
        raise PermissionError("dtf: the scheduler refuses 'run_function'")
    except PermissionError as exc:
        msg = error_message(exc)
    back = graphpickle.graph_loads(msg["exception"].data)
    assert isinstance(back, PermissionError) and "refuses" in str(back)
    assert isinstance(graphpickle.graph_loads(msg["traceback"].data), types.TracebackType)


def test_dtf_uses_none_of_the_features_its_scheduler_refuses() -> None:
    import ast

    refused = {"run_on_scheduler", "register_scheduler_plugin", "unregister_scheduler_plugin",
               "dump_cluster_state", "worker_client", "get_client"}  # fmt: skip
    root = Path(__file__).parents[2]
    nodes = [
        (path.relative_to(root), node)
        for pkg in ("dtf_core", "dtf_tui")
        for path in sorted((root / pkg).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
    ]
    name = lambda n: getattr(n.func, "attr", getattr(n.func, "id", None))  # noqa: E731
    assert [f"{p}:{n.lineno}" for p, n in nodes if name(n) in refused] == []
    # Every Dask submission names the task function the scheduler lets through.
    submitted = {
        ast.unparse(n.args[0])
        for _, n in nodes
        if ast.unparse(n.func) == "self.client.submit"  # the Dask client (not the HTTP one)
    }
    assert submitted == {"runner.execute_batch_plain"}
    assert ("dtf_core.worker.runner", "execute_batch_plain") in graphpickle._TASK_FUNCTIONS
