"""The report files a run asks for, and the renderer of each format by name."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dtf_core.reporting.html import render_html
from dtf_core.reporting.jsonout import render_json
from dtf_core.reporting.junit import render_junit
from dtf_core.reporting.markdown import render_markdown
from dtf_core.reporting.summary import build_summary
from dtf_core.store import StoreReader

if TYPE_CHECKING:
    from dtf_core.analysis.baseline import BaselineSpec

# The names `dtf-core report --format` and the service's `?format=` take.
RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "md": render_markdown,
    "json": render_json,
    "junit": render_junit,
    "html": render_html,
}


def write_reports(
    store: StoreReader,
    run_id: str,
    *,
    markdown: str | os.PathLike[str] | None = None,
    junit: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    html: str | os.PathLike[str] | None = None,
    summary: dict[str, Any] | None = None,
    baseline: BaselineSpec | None = None,
) -> None:
    """Write the reports asked for; append the Markdown to ``$GITHUB_STEP_SUMMARY`` when set.
    ``summary``: the run's summary when the caller has built it already (else it is
    built, comparing with ``baseline``)."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not step_summary and all(p is None for p in (markdown, junit, json_path, html)):
        return  # nothing asked for: a run without reports does not read its summary back
    if summary is None:
        summary = build_summary(store, run_id, baseline)
    md = render_markdown(summary)
    for path, text in (
        (markdown, md),
        (junit, render_junit(summary) if junit else ""),
        (json_path, render_json(summary) if json_path else ""),
        (html, render_html(summary) if html else ""),
    ):
        if path is not None:
            p = pathlib.Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
