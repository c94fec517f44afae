"""What a dtf scheduler agrees to unpickle: dtf's own task graphs, nothing else.

Why: distributed 2026.8 unpickles in the scheduler process every graph a client
submits (``update-graph``: ``Scheduler.update_graph`` deserializes the pickled
expression, then materializes it), and *any* ``ToPickle`` / ``Pickled`` value
inside *any* message, before a handler is even chosen
(``distributed.protocol.core.loads``). Dask authenticates no client, and a task
can open one, so unrestricted unpickling would let any task run code in the
scheduler (the key that admits workers lives there). Refusing handlers does not
help: the pickle runs while the message is read.

:func:`install` routes every unpickling distributed does in the scheduler
process through :func:`graph_loads`, a pure-Python unpickler that

* resolves only the names in :data:`ALLOWED` (plain builtins, dask's task and
  expression classes, dtf's payload dataclasses and its one task function),
  without importing anything else;
* *calls* only allowed classes (to build instances) and two vetted
  reconstructors whose class argument is checked; never a function, never an
  instance (a dask ``Task`` is callable: calling it would run the task here);
* fills (``BUILD``, ``APPEND``, ``SETITEM``) only instances of allowed classes.

Anything else raises :class:`RefusedGraphError`: the message is dropped (the
client's future errs or its connection closes) and nothing it named ran.
Measured against what dtf submits (``Coordinator._submit``: one
``execute_batch_plain`` task per batch, payloads of dtf dataclasses).
Consequence: a dtf scheduler runs no graph but dtf's own — tasks that submit
their own tasks (``get_client().submit``, ``worker_client``), ``Client.compute``
of collections and P2P shuffles are refused there (docs/security.md).
"""

from __future__ import annotations

import builtins
import copyreg
import importlib
import io
import logging
import pickle
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("distributed.dtf")

_PLAIN = ("int", "float", "complex", "str", "bytes", "bytearray", "bool", "list", "tuple",
          "dict", "set", "frozenset", "slice", "range", "object")  # fmt: skip
# Everything a dtf graph names (module, qualified name). Task functions are
# referenced, never called here; classes may be instantiated.
_TASK_FUNCTIONS = (("dtf_core.worker.runner", "execute_batch_plain"),)
_CLASSES = (
    ("dask._task_spec", "Task"),
    ("dask._task_spec", "TaskRef"),
    ("dask._task_spec", "Alias"),
    ("dask._task_spec", "DataNode"),
    ("dask._expr", "LLGExpr"),
    ("dtf_core.model", "TaskPayload"),
    ("dtf_core.model", "TaskSpec"),
    ("dtf_core.model", "TaskKind"),
    # update-graph's `code` when distributed.diagnostics.computations.nframes > 0
    ("distributed.client", "SourceCode"),
    # How distributed ships an exception's traceback (plain holders); the scheduler
    # checks that its own error replies unpickle before it sends them.
    ("tblib", "Frame"),
    ("tblib", "Code"),
    ("tblib", "Traceback"),
)
# Functions that only build an instance of their first argument: called only when
# it is an allowed class (never an instance: calling a Task would run it).
_BUILDERS = (
    ("dask._expr", "Expr._reconstruct"),  # (type, *operands, token, cache)
    ("tblib.pickling_support", "unpickle_exception_with_attrs"),
    ("tblib.pickling_support", "unpickle_exception"),
)
_TRACEBACK = ("tblib.pickling_support", "unpickle_traceback")  # (tblib.Frame, lineno, next)
# How pickle rebuilds plain class instances; each is called with the class first.
_COPYREG = {n: getattr(copyreg, n) for n in ("_reconstructor", "__newobj__", "__newobj_ex__")}
refusals = 0  # how many payloads this process refused (tests read it)


class RefusedGraphError(pickle.UnpicklingError):
    """A pickle sent to the scheduler asked for something dtf does not rebuild there."""


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class _Allowed:
    """The allow-list, resolved on first use (the scheduler imports dtf lazily)."""

    def __init__(self) -> None:
        self.names: dict[tuple[str, str], Any] = {}
        self.classes: set[type] = set()
        self.builders: list[Any] = []

    def load(self) -> None:
        if self.names:
            return
        names: dict[tuple[str, str], Any] = {("builtins", n): getattr(builtins, n) for n in _PLAIN}
        for key in (*_TASK_FUNCTIONS, *_CLASSES, *_BUILDERS, _TRACEBACK):
            names[key] = _resolve(*key)
        for name in dir(builtins):  # exceptions carry no code; the scheduler relays errors
            obj = getattr(builtins, name)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                names[("builtins", name)] = obj
        for fn, obj in _COPYREG.items():
            names[("copyreg", fn)] = obj
        self.classes = {v for v in names.values() if isinstance(v, type)}
        self.builders = [names[key] for key in _BUILDERS] + list(_COPYREG.values())
        self.names = names


ALLOWED = _Allowed()


def _refuse(what: str) -> RefusedGraphError:
    return RefusedGraphError(
        f"dtf: the scheduler refused to unpickle {what}: it runs only dtf's own task graphs "
        "(docs/security.md)"
    )


# The pure-Python unpickler: its opcodes are methods one can guard (typeshed
# describes only the C one's API, hence Any).
_PyUnpickler: Any = pickle._Unpickler


class _GraphUnpickler(_PyUnpickler):
    dispatch = dict(_PyUnpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        obj = ALLOWED.names.get((module, name))
        if obj is None:
            raise _refuse(f"{module}.{name}")
        return obj

    def _check_call(self, fn: Any, args: tuple) -> None:
        classes = ALLOWED.classes
        if isinstance(fn, type) and fn in classes:
            return
        first = args[0] if args else None
        if fn is _COPYREG["_reconstructor"] and len(args) > 1 and args[1] not in classes:
            raise _refuse("a reconstructor with a foreign base")
        if any(fn is b for b in ALLOWED.builders) and first in classes:
            return
        if fn is ALLOWED.names[_TRACEBACK] and type(first) is ALLOWED.names[("tblib", "Frame")]:
            return
        raise _refuse(f"a call of {getattr(fn, '__qualname__', type(fn).__name__)}")

    def _check_fill(self, obj: Any, container: type) -> None:
        if type(obj) is not container and type(obj) not in ALLOWED.classes:
            raise _refuse(f"filling a {type(obj).__name__}")

    def load_reduce(self) -> None:
        args = self.stack[-1]
        self._check_call(self.stack[-2], args if isinstance(args, tuple) else ())
        super().load_reduce()

    def load_newobj(self) -> None:
        self._check_call(self.stack[-2], ())
        super().load_newobj()

    def load_newobj_ex(self) -> None:
        self._check_call(self.stack[-3], ())
        super().load_newobj_ex()

    def _instantiate(self, klass: Any, args: Any) -> None:  # INST, OBJ (protocols 0, 1)
        self._check_call(klass, ())
        super()._instantiate(klass, args)

    def load_build(self) -> None:
        inst = self.stack[-2]
        if type(inst) not in ALLOWED.classes:
            raise _refuse(f"setting the state of a {type(inst).__name__}")
        super().load_build()

    def load_append(self) -> None:
        self._check_fill(self.stack[-2], list)
        super().load_append()

    def load_appends(self) -> None:  # the container sits below the MARK
        self._check_fill(self.metastack[-1][-1] if self.metastack else None, list)
        super().load_appends()

    def load_setitem(self) -> None:
        self._check_fill(self.stack[-3], dict)
        super().load_setitem()

    def load_setitems(self) -> None:
        self._check_fill(self.metastack[-1][-1] if self.metastack else None, dict)
        super().load_setitems()

    def load_additems(self) -> None:
        self._check_fill(self.metastack[-1][-1] if self.metastack else None, set)
        super().load_additems()


_GUARDED = {
    pickle.REDUCE: _GraphUnpickler.load_reduce, pickle.NEWOBJ: _GraphUnpickler.load_newobj,
    pickle.NEWOBJ_EX: _GraphUnpickler.load_newobj_ex, pickle.BUILD: _GraphUnpickler.load_build,
    pickle.APPEND: _GraphUnpickler.load_append, pickle.APPENDS: _GraphUnpickler.load_appends,
    pickle.SETITEM: _GraphUnpickler.load_setitem, pickle.SETITEMS: _GraphUnpickler.load_setitems,
    pickle.ADDITEMS: _GraphUnpickler.load_additems,
}  # fmt: skip
for _op, _load in _GUARDED.items():
    _GraphUnpickler.dispatch[_op[0]] = _load


def graph_loads(data: Any, *, buffers: Any = ()) -> Any:
    """:func:`pickle.loads` limited to what a dtf task graph holds."""
    global refusals
    ALLOWED.load()
    try:
        return _GraphUnpickler(io.BytesIO(bytes(data)), buffers=buffers or None).load()
    except RefusedGraphError as exc:
        refusals += 1
        logger.warning("%s", exc)
        raise


def install() -> Callable[..., Any]:
    """Make :func:`graph_loads` the scheduler process's only unpickler; the loader
    it replaced (tests put it back)."""
    import distributed.protocol.pickle as dpickle
    import distributed.scheduler as dscheduler

    previous: Callable[..., Any] = dpickle.loads
    dpickle.loads = graph_loads  # protocol.core (ToPickle), serialize (graphs, dask types)
    dscheduler.loads = graph_loads  # bound by name in scheduler.py
    return previous
