"""The report files a run asks for, and the renderer of each format by name;
the files a CI reads (a pull-request comment body, GitLab's metrics report)."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dtf_core.reporting.html import render_html
from dtf_core.reporting.jsonout import render_json
from dtf_core.reporting.junit import render_junit
from dtf_core.reporting.markdown import render_markdown
from dtf_core.reporting.openmetrics import render_openmetrics
from dtf_core.reporting.prcomment import render_pr_comment
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
    pr_comment: str | os.PathLike[str] | None = None,
    metrics: str | os.PathLike[str] | None = None,
    summary: dict[str, Any] | None = None,
    baseline: BaselineSpec | None = None,
) -> None:
    """Write the reports asked for; append the Markdown to ``$GITHUB_STEP_SUMMARY`` when set;
    the CI files (:func:`write_ci_files`). ``summary``: the run's summary when the caller has
    built it already (else it is built, comparing with ``baseline``)."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not wants_summary(markdown, junit, json_path, html, pr_comment, metrics):
        return  # nothing asked for: a run without reports does not read its summary back
    if summary is None:
        summary = build_summary(store, run_id, baseline)
    write_ci_files(summary, pr_comment=pr_comment, metrics=metrics_path(metrics))
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


# GitLab's default name for artifacts:reports:metrics.
GITLAB_METRICS = "metrics.txt"


def metrics_path(
    metrics: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> str | os.PathLike[str] | None:
    """``--metrics-report FILE``, else ``metrics.txt`` in a GitLab CI job, else none."""
    env = os.environ if env is None else env
    return metrics or (GITLAB_METRICS if env.get("GITLAB_CI") == "true" else None)


def wants_summary(*paths: str | os.PathLike[str] | None) -> bool:
    """Whether the files asked for (or the CI environment) need the run's summary."""
    return any(p is not None for p in paths) or bool(
        os.environ.get("GITHUB_STEP_SUMMARY") or metrics_path(None)
    )


def write_ci_files(
    summary: Mapping[str, Any],
    *,
    pr_comment: str | os.PathLike[str] | None = None,
    metrics: str | os.PathLike[str] | None = None,
) -> None:
    """``--pr-comment FILE`` (Markdown body of a pull-request comment) and the OpenMetrics
    file GitLab shows in a merge request (``--metrics-report FILE``)."""
    for path, render in ((pr_comment, render_pr_comment), (metrics, render_openmetrics)):
        if path is not None:
            p = pathlib.Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(render(summary), encoding="utf-8")
