"""Static checks of a benchmark's ``module:callable``: files and syntax trees only.

Why not import it: the suite's code is the submitter's, and the process that
validates a submitted suite (``dtf-core serve``) holds the database and the API
key. Importing would run the module's top level, and any package ``__init__``
on the way, in that process. Here the module file is located under the suite
directory and parsed with :mod:`ast`; nothing of it executes. Whether the name
really is a callable is learnt on the worker, as a normal (failed) attempt.

A module that is not suite-local (an installed package) is looked up with
:func:`importlib.util.find_spec` on its top-level name only, which reads the
import system's metadata and executes nothing.
"""

from __future__ import annotations

import ast
import importlib.util
import os

__all__ = ["check_static", "module_file"]


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
