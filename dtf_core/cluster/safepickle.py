"""Keep a coordinator's Dask client from running code it is sent.

A Dask client unpickles what comes from the cluster: results, the type of a
result, a task's exception and traceback, ``warn`` events, and any frame whose
header says ``pickle``. Unpickling runs code (``__reduce__``), and code on a
worker (any task) can send whatever it likes, so a task could run code in
``dtf-core serve``. Two gates close that:

* the client reads data with ``deserializers=["msgpack", "error"]``
  (:data:`DESERIALIZERS`): workers send results as plain data
  (:mod:`dtf_core.worker.wire`), and distributed refuses a frame serialized otherwise;
* :func:`install` replaces ``distributed``'s ``loads`` in this process with
  :func:`safe_loads`, which rebuilds only plain values and exception classes
  already imported from the standard library, ``distributed``, ``dask``,
  ``tornado`` and ``dtf_core``; anything else (functions, by-value classes,
  ``os.system``...) raises :class:`RefusedPickleError` and is never called.

Only a process that hosts no scheduler may install it (the scheduler must
unpickle the graphs clients submit): ``dtf-core serve`` and the external-scheduler
path of ``dtf-core run``, never the embedded cluster.
"""

from __future__ import annotations

import builtins
import io
import logging
import pickle
import sys
import types
from typing import Any

logger = logging.getLogger("distributed.dtf")

DESERIALIZERS = ["msgpack", "error"]
_PLAIN_BUILTINS = frozenset(
    {"int", "float", "complex", "str", "bytes", "bytearray", "bool", "list", "tuple",
     "dict", "set", "frozenset", "slice", "range", "object"}
)  # fmt: skip
_EXCEPTION_MODULES = ("builtins", "distributed", "dask", "tornado", "asyncio", "concurrent",
                      "dtf_core", "socket", "ssl")  # fmt: skip
_TBLIB = frozenset(
    {("tblib.pickling_support", "unpickle_exception_with_attrs"),
     ("tblib.pickling_support", "unpickle_exception"),
     ("tblib.pickling_support", "unpickle_traceback"),
     ("tblib", "Frame"), ("tblib", "Code"), ("tblib", "Traceback")}
)  # fmt: skip
_installed = False
refusals = 0  # how many payloads this process refused (tests read it)


class RefusedPickleError(TypeError):
    """A pickle asked for something dtf does not rebuild. A TypeError because
    distributed tolerates that one where it unpickles tracebacks."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _PLAIN_BUILTINS:
            return getattr(builtins, name)
        if module == "copyreg" and name in ("_reconstructor", "__newobj__", "__newobj_ex__"):
            return super().find_class(module, name)
        if (module, name) in _TBLIB and module in sys.modules:
            # How distributed ships exceptions and tracebacks: plain holders.
            return getattr(sys.modules[module], name)
        top = module.partition(".")[0]
        loaded = sys.modules.get(module)  # never import: importing runs code
        obj = getattr(loaded, name, None) if loaded is not None else None
        if (
            top in _EXCEPTION_MODULES
            and isinstance(obj, type)
            and issubclass(obj, BaseException)
            and "." not in name
        ):
            return obj
        raise RefusedPickleError(f"dtf refused to unpickle {module}.{name} sent by the cluster")


def safe_loads(data: Any, *, buffers: Any = ()) -> Any:
    """:func:`pickle.loads` that rebuilds only plain values and known exceptions."""
    global refusals
    try:
        return _Unpickler(io.BytesIO(bytes(data)), buffers=buffers or None).load()
    except RefusedPickleError as exc:
        refusals += 1
        logger.warning("%s", exc)
        raise


def install() -> None:
    """Route every unpickling distributed does in this process through :func:`safe_loads`."""
    global _installed
    if _installed:
        return
    import distributed.client as dclient
    import distributed.protocol.pickle as dpickle

    dpickle.loads = safe_loads  # core, serialize, msgpack hooks
    dclient.loads = safe_loads  # bound by name in client.py
    # client.py's ``warn`` event handler uses the standard library's pickle.
    shim = types.SimpleNamespace(**{k: getattr(pickle, k) for k in dir(pickle) if k[:2] != "__"})
    shim.loads = safe_loads
    setattr(dclient, "pickle", shim)  # noqa: B010  (a module attribute mypy types as a module)
    _installed = True
