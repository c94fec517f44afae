"""A failed attempt's system snapshot as rich Text: the report's lines
(:func:`dtf_core.reporting.syscontext.context_rows`), labels bold, values
plain. Text, not markup: hosts, env values and log lines are anyone's strings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

from dtf_core.reporting.syscontext import context_rows


def context_text(ctx: Mapping[str, Any] | None, title: str = "system context") -> Text:
    out = Text()
    out.append(f"── {title} ──", style="bold dim")
    rows = context_rows(dict(ctx or {}))
    if not rows:
        out.append("\n(none: no worker reported this attempt, or it passed, or it is older)", "dim")
    for label, value in rows:
        out.append(f"\n{label}: ", style="bold")
        lines = value.splitlines()
        if len(lines) > 1:
            for line in lines:
                out.append(f"\n  {line}")
        else:
            out.append(value)
    return out
