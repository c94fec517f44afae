"""Old option spellings that keep working, hidden, for one release (docs/cli.md).

Each use says so in one line on stderr, as a :class:`CliDeprecationWarning`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class CliDeprecationWarning(FutureWarning):
    """An old option spelling that still works for one release (docs/cli.md).

    A warning rather than a print: a program's console entry shows it as one
    line on stderr (:func:`one_line_deprecations`), ``-W``/``PYTHONWARNINGS``
    silence it, and code that calls a command in-process (CliRunner, pytest)
    records it instead of finding it mixed into the command's output.
    """


def deprecated(message: str) -> None:
    warnings.warn(message, CliDeprecationWarning, stacklevel=2)


def one_line_deprecations(prog: str) -> None:
    """Show :class:`CliDeprecationWarning` as ``prog: message`` (console entries call this)."""
    previous = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:  # fmt: skip
        if issubclass(category, CliDeprecationWarning):
            click.echo(f"{prog}: {message}", err=True)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def renamed(old: str, new: str, dest: str, message: str = "", **attrs: Any) -> Callable[[F], F]:
    """Keep ``old`` working, hidden, for one release: its value goes to the option
    whose parameter is ``dest`` (spelled ``new``), after a one-line deprecation."""
    old_dest = old.lstrip("-").replace("-", "_") + "_alias"

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = kwargs.pop(old_dest, None)
            if value is not None and value is not False:
                ctx = click.get_current_context()
                if ctx.get_parameter_source(dest) is click.core.ParameterSource.COMMANDLINE:
                    raise click.UsageError(f"{old} is the old spelling of {new}: give only {new}")
                deprecated(message or f"{old} is deprecated; use {new}")
                kwargs[dest] = value
            return fn(*args, **kwargs)

        return click.option(old, old_dest, hidden=True, default=None, **attrs)(wrapper)  # type: ignore[return-value]

    return decorate
