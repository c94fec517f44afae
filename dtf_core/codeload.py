"""Suite code loaded fresh for each run, under run-unique module names.

Why: a worker process lives across runs (``dask worker`` on a cluster, the
workers behind ``dtf-core serve``), and ``sys.modules`` keeps the first import
of a name: importing ``bench`` again after ``bench.py`` changed returns the old
code. So suite code never goes into ``sys.modules`` under its own name.

A :class:`CodeSpace` is one run's copy of the code of one suite directory
(``root``). Its modules are named ``dtf_run_<run>_<root hash>__<name>``
(``bench`` -> ``dtf_run_20260101120000ab12cd_3f2a1b__bench``) and found by a
finder on ``sys.meta_path`` that answers only those names; neither the global
``sys.path`` nor the global names of ``sys.modules`` are touched, so two runs
in one process, even on concurrent threads, never see each other's modules.

* A name is *suite-local* when ``<root>/<name>.py`` or ``<root>/<name>/__init__.py``
  exists. Inside suite code every ``import`` of a suite-local name (absolute:
  ``import helpers``, ``from pkg import sub``; or relative: ``from . import sub``)
  resolves inside the same space, through the module's own ``__import__``
  (its ``__builtins__``): a package is loaded fresh with its submodules.
* Sources are read on every load and never taken from ``__pycache__``: the
  sha256 of the bytes that ran is what :meth:`CodeSpace.fingerprint` reports,
  and a stale ``.pyc`` (same size, same second) cannot creep in. The compiled
  code is kept in memory per (path, sha256): an unchanged file is not compiled
  again by the next run.
* Names that are not suite-local (installed packages, the standard library)
  are imported the normal way and stay cached like any library.
* Suite code that reaches a suite-local module some other way (by
  ``importlib.import_module("helpers")``, or through a library) would get a
  global, possibly stale, copy: the globals of each loaded module are checked
  and such a reference fails the load (:class:`StaleCodeError`).

:func:`forget` drops a run's modules (the coordinator calls it on every worker
when the run ends); at most ``_MAX_SPACES`` spaces stay, the least recently
used go first, for runs whose coordinator died before it could say so.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import os
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "CodeSpace", "StaleCodeError", "check_static", "forget", "load_callable", "module_file",
    "space_for",
]  # fmt: skip

_PREFIX = "dtf_run_"
_MAX_SPACES = 16
_lock = threading.Lock()
_spaces: dict[tuple[str, str], CodeSpace] = {}  # (run id, root) -> space
_by_prefix: dict[str, CodeSpace] = {}
_scratch = itertools.count(1)


class StaleCodeError(ImportError):
    """Suite code reached a suite-local module outside its run's code space."""


def space_for(run_id: str, root: str) -> CodeSpace:
    """The code space of ``run_id`` for the suite directory ``root`` (made on first use)."""
    space = _spaces.get((run_id, root))
    if space is None:
        with _lock:
            space = _spaces.get((run_id, root))
            if space is None:
                space = CodeSpace(run_id, root)
                _spaces[space.key] = space
                _by_prefix[space.prefix] = space
                _evict_locked()
    space.last_used = time.monotonic()
    return space


def scratch_space(root: str) -> CodeSpace:
    """A space of its own (validation): drop it with :meth:`CodeSpace.forget`."""
    return space_for(f"check{next(_scratch)}x{os.getpid()}", root)


def load_callable(run_id: str, root: str, function: str) -> tuple[Callable[..., Any], CodeSpace]:
    """``module:attr.path`` of ``run_id``'s copy of the suite in ``root``."""
    space = space_for(run_id, root)
    return space.callable(function), space


def forget(run_id: str) -> int:
    """Drop every module of ``run_id`` from this process; how many were dropped."""
    with _lock:
        gone = [s for (rid, _), s in _spaces.items() if rid == run_id]
        for s in gone:
            _drop_locked(s)
    return sum(s.unload() for s in gone)


def _evict_locked() -> None:
    excess = sorted(_spaces.values(), key=lambda s: s.last_used)[
        : max(0, len(_spaces) - _MAX_SPACES)
    ]
    for s in excess:
        _drop_locked(s)
        s.unload()


def _drop_locked(space: CodeSpace) -> None:
    _spaces.pop(space.key, None)
    _by_prefix.pop(space.prefix, None)


def _owner(value: Any) -> types.ModuleType | None:
    """The module that defined ``value`` (a function or class), if loaded."""
    try:
        owner = getattr(value, "__module__", None)
    except Exception:  # an odd proxy object; it cannot be suite code
        return None
    return sys.modules.get(owner) if isinstance(owner, str) else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_compiled: dict[tuple[str, bytes], types.CodeType] = {}  # (path, sha256 of source) -> code


def _compile(data: bytes, path: str) -> types.CodeType:
    """Compiled once per process for each distinct source: an unchanged module
    costs the next run a read and a hash, not a compile (code objects are
    immutable, so runs can share them; their module dicts stay apart)."""
    key = (path, hashlib.sha256(data).digest())
    code = _compiled.get(key)
    if code is None:
        code = compile(data, path, "exec", dont_inherit=True)
        if len(_compiled) >= 256:
            _compiled.pop(next(iter(_compiled)), None)
        _compiled[key] = code
    return code


class CodeSpace:
    """One run's modules from one suite directory; see the module docstring."""

    def __init__(self, run_id: str, root: str) -> None:
        self.key = (run_id, root)  # as given: how space_for finds it
        self.run_id, self.root = run_id, os.path.abspath(root)
        tag = hashlib.sha256(self.root.encode()).hexdigest()[:6]
        self.prefix = f"{_PREFIX}{re.sub(r'[^0-9A-Za-z]', '', run_id)}_{tag}__"
        self.last_used = time.monotonic()
        self._lock = threading.Lock()
        self._local: dict[str, bool] = {}
        self._callables: dict[str, Callable[..., Any]] = {}
        self.files: dict[str, tuple[str, str]] = {}  # module name -> (path from root, sha256)
        self._deps: dict[str, set[str]] = {}  # module name -> space modules it imported
        self._prints: dict[str, str] = {}  # module name -> fingerprint (cleared on changes)
        self.builtins = {**builtins.__dict__, "__import__": self._import}

    # ---------------------------------------------------------------- names
    def is_local(self, top: str) -> bool:
        found = self._local.get(top)
        if found is None:
            base = os.path.join(self.root, top)
            found = os.path.isfile(base + ".py") or os.path.isfile(
                os.path.join(base, "__init__.py")
            )
            self._local[top] = found
        return found

    def qualified(self, name: str) -> str:
        """The space's name for ``name`` if it is suite-local, else ``name``."""
        return self.prefix + name if self.is_local(name.partition(".")[0]) else name

    def local_name(self, name: str) -> str:
        return name[len(self.prefix) :] if name.startswith(self.prefix) else name

    # -------------------------------------------------------------- loading
    def import_module(self, name: str) -> types.ModuleType:
        """Import ``name`` (a dotted module name as a suite writes it) into this space."""
        full = self.qualified(name)
        try:
            module = importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(self.prefix):
                missing = self.local_name(exc.name)
                raise ModuleNotFoundError(f"No module named {missing!r}", name=missing) from None
            raise
        if full != name:
            self._check_fresh()
        return module

    def callable(self, function: str) -> Callable[..., Any]:
        fn = self._callables.get(function)
        if fn is not None:
            return fn
        module_name, sep, attr = function.partition(":")
        if not sep or not module_name or not attr:
            raise ImportError(f"function {function!r} is not 'module:callable'")
        obj: Any = self.import_module(module_name)
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            raise ImportError(f"{module_name} has no attribute {attr!r}") from exc
        if not callable(obj):
            raise ImportError(f"{function} is not callable")
        self._callables[function] = obj
        return obj

    def _import(
        self,
        name: str,
        globals: dict[str, Any] | None = None,
        locals: Any = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
        """``__import__`` of every module of this space: suite-local names stay inside it."""
        if level == 0:
            name = self.qualified(name)
        module = builtins.__import__(name, globals, locals, fromlist, level)
        importer = globals.get("__name__") if globals else None
        if isinstance(importer, str) and importer.startswith(self.prefix):
            try:
                base = (
                    name
                    if not level
                    else importlib.util.resolve_name(
                        "." * level + name, globals.get("__package__") if globals else None
                    )
                )
            except (ImportError, ValueError):
                return module
            targets = {base, *(f"{base}.{f}" for f in fromlist or ())}
            self._note_deps(importer, targets)
        return module

    def _note_deps(self, importer: str, targets: set[str]) -> None:
        mine = {t for t in targets if t in self.files and t != importer}
        if mine - self._deps.get(importer, set()):
            with self._lock:
                self._deps.setdefault(importer, set()).update(mine)
                self._prints.clear()

    def _executed(self, name: str, path: str, data: bytes) -> None:
        with self._lock:
            self.files[name] = (os.path.relpath(path, self.root), _sha256(data))
            self._prints.clear()

    def _check_fresh(self) -> None:
        """Fail when a loaded module holds a suite-local module from outside this space."""
        root = self.root + os.sep
        for name in list(self.files):
            module = sys.modules.get(name)
            for value in list(vars(module).values()) if module else ():
                other = value if isinstance(value, types.ModuleType) else _owner(value)
                if other is None or other.__name__.startswith(self.prefix):
                    continue
                where = getattr(other, "__file__", None) or ""
                if where.startswith(root) and self.is_local(other.__name__.partition(".")[0]):
                    raise StaleCodeError(
                        f"{self.local_name(name)} uses {other.__name__!r} from {where} loaded "
                        "outside dtf's per-run loader (importlib.import_module or a library?), "
                        "which may be an older copy: import it with an import statement"
                    )

    # ---------------------------------------------------------- fingerprint
    def fingerprint(self, module_name: str) -> str:
        """sha256 (12 hex) of the files the module ran, itself, its parent packages
        and the suite modules they imported, as ``sha256sum FILES | sha256sum``
        prints it (sorted by path); "" when the module is not suite-local."""
        full = self.qualified(module_name)
        done = self._prints.get(full)
        if done is not None:
            return done
        with self._lock:
            seen: set[str] = set()
            todo = [full]
            while todo:
                name = todo.pop()
                if name in seen or name not in self.files:
                    continue
                seen.add(name)
                todo.extend(self._deps.get(name, ()))
                parent = name.rpartition(".")[0]
                if parent:
                    todo.append(parent)
            rows = sorted(self.files[n] for n in seen)
            manifest = "".join(f"{sha}  {path}\n" for path, sha in rows)
            done = _sha256(manifest.encode())[:12] if rows else ""
            self._prints[full] = done
        return done

    # ------------------------------------------------------------- cleanup
    def forget(self) -> int:
        with _lock:
            _drop_locked(self)
        return self.unload()

    def unload(self) -> int:
        """Remove this space's modules from ``sys.modules``; how many there were."""
        names = [n for n in sys.modules.copy() if n.startswith(self.prefix)]
        for n in names:
            sys.modules.pop(n, None)
        with self._lock:
            self._callables.clear()
        return len(names)


# ------------------------------------------------------------------ static checks
# Why not import: the suite's code is the submitter's, and the process that
# validates a submitted suite (``dtf-core serve``) holds the database and the API
# key. Importing would run the module's top level, and any package ``__init__``
# on the way, in that process. Here the module file is located under the suite
# directory and parsed with :mod:`ast`; nothing of it executes. Whether the name
# really is a callable is learnt on the worker, as a normal (failed) attempt. A
# module that is not suite-local is looked up with ``find_spec`` on its top-level
# name only, which reads import metadata and executes nothing.
def module_file(root: str, module: str) -> str | None:
    """The file of suite-local ``module`` (``pkg.sub`` -> ``pkg/sub.py`` or
    ``pkg/sub/__init__.py``), every parent a package; None when it is not there."""
    parts = module.split(".")
    base = root
    for i, part in enumerate(parts):
        package = os.path.join(base, part, "__init__.py")
        if i == len(parts) - 1:
            plain = os.path.join(base, part + ".py")
            for candidate in (package, plain):
                if os.path.isfile(candidate):
                    return candidate
            return None
        if not os.path.isfile(package):
            return None
        base = os.path.join(base, part)
    return None


def _defined_names(tree: ast.Module) -> tuple[set[str], bool]:
    """Top-level names a module binds, and whether it may bind others we cannot
    see (``from x import *``, a module ``__getattr__``, ``globals()`` writes)."""
    names: set[str] = set()
    open_ended = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    open_ended = True
                names.add(alias.asname or alias.name.partition(".")[0])
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
                elif isinstance(sub, ast.Name) and sub.id in ("globals", "setattr", "exec"):
                    open_ended = True
    if "__getattr__" in names:
        open_ended = True
    return names, open_ended


def check_static(root: str, module: str, attr: str, is_local: bool) -> str | None:
    """None when ``module:attr`` looks right without running anything, else why not."""
    if not is_local:
        top = module.partition(".")[0]
        try:
            found = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            found = None
        if found is None:
            return f"module {module!r} not found (looked in {root} and sys.path)"
        return None  # an installed package: its attribute is checked on the worker
    path = module_file(root, module)
    if path is None:
        return f"module {module!r} not found (looked in {root} and sys.path)"
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except SyntaxError as exc:
        return f"cannot parse {path}: {exc.msg} (line {exc.lineno}); fix the syntax there"
    except (OSError, ValueError) as exc:
        return f"cannot read {path}: {exc}"
    names, open_ended = _defined_names(tree)
    first = attr.split(".", 1)[0]
    if first not in names and not open_ended:
        return f"module {module!r} has no callable {attr!r}; check the name"
    return None


class _SpaceFinder(importlib.abc.MetaPathFinder):
    """Finds ``dtf_run_...`` modules in their space's suite directory; nothing else."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        top = fullname.partition(".")[0]
        space = next((s for p, s in list(_by_prefix.items()) if top.startswith(p)), None)
        if space is None:
            return None
        last = fullname.rpartition(".")[2] if "." in fullname else space.local_name(fullname)
        for base in [space.root] if "." not in fullname else list(path or ()):
            package = os.path.join(base, last, "__init__.py")
            if os.path.isfile(package):
                return importlib.util.spec_from_file_location(
                    fullname, package, loader=_SourceLoader(space),
                    submodule_search_locations=[os.path.dirname(package)],
                )  # fmt: skip
            module = os.path.join(base, last + ".py")
            if os.path.isfile(module):
                return importlib.util.spec_from_file_location(
                    fullname, module, loader=_SourceLoader(space)
                )
        return None


class _SourceLoader(importlib.abc.Loader):
    """Reads and compiles the source every time (no bytecode cache): what runs
    is what gets hashed, and the module imports through its space."""

    def __init__(self, space: CodeSpace) -> None:
        self.space = space

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        path = module.__spec__.origin if module.__spec__ else None
        if not path:
            raise ImportError(f"{module.__name__} has no file")
        with open(path, "rb") as fh:
            data = fh.read()
        code = _compile(data, path)
        module.__dict__["__builtins__"] = self.space.builtins
        self.space._executed(module.__name__, path, data)
        exec(code, module.__dict__)


_finder = _SpaceFinder()
sys.meta_path.insert(0, _finder)  # once, at import (serialised by the import lock)
