"""Task specs and suites built in code, for tests that need no suite file."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dtf_core.model import Suite, TaskKind, TaskSpec


def task_spec(
    task_id: str = "t",
    kind: str | TaskKind = "command",
    name: str | None = None,
    *,
    root: str | Path = "/suite",
    timeout: float = 10.0,
    retries: int = 0,
    **fields: Any,
) -> TaskSpec:
    """A TaskSpec; ``fields`` are any other TaskSpec fields (command, params, ...)."""
    return TaskSpec(
        task_id=task_id,
        name=name or task_id,
        kind=TaskKind(kind),
        root=str(root),
        timeout=timeout,
        retries=retries,
        **fields,
    )


def suite_of(
    tasks: Iterable[TaskSpec], name: str = "suite", path: str | Path | None = None
) -> Suite:
    """A Suite of ``tasks``; its file is ``suite.toml`` in the first task's root unless given."""
    tasks = list(tasks)
    if path is None:
        path = os.path.join(tasks[0].root if tasks else "/suite", "suite.toml")
    return Suite(name, str(path), tasks)
