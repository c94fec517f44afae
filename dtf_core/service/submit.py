"""``dtf-core submit``: a run on a ``dtf-core serve``, headless, as ``run`` would do it.

The suite is validated here first (bad input: exit 2, nothing uploaded), then
its directory is packed and uploaded; the run's events stream back into the
same progress view as ``run``, and the reports are rendered by the service
from its database by the same code, so the files are the ones ``run`` writes.
Ctrl-C cancels the run on the service.

A run outlives its coordinator: once the run is accepted, when the service
stops in order (a restart, an upgrade) or a standby takes over, submit
reconnects with backoff for up to ``--follow-timeout``
(``dtf.service.follow-timeout``), follows the run at whichever coordinator
holds it now, and ends with the run's own exit code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import dask.utils

from dtf_core import config, context, spec
from dtf_core.errors import OptionError
from dtf_core.events import (
    AttemptFailed,
    ClusterChanged,
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TestsProgress,
)
from dtf_core.run.progress import ProgressView
from dtf_core.service import bundle
from dtf_core.service.client import CoordinatorClient

_EVENTS: dict[str, type] = {
    cls.__name__: cls
    for cls in (RunStarted, AttemptFailed, TaskFinished, TestsProgress, ClusterChanged, RunFinished)
}


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """The event a service sent, or None for a kind this dtf does not know."""
    cls = _EVENTS.get(str(data.get("type")))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    event: Event = cls(**{k: v for k, v in data.items() if k in names})
    return event


def submit(
    suite: str,
    url: str,
    token: str | None,
    *,
    root: str | None,
    no_wait: bool,
    db: str | None = None,
    markdown: str | None = None,
    junit: str | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
    pr_comment: str | None = None,
    metrics_report: str | None = None,
    quiet: bool = False,
    ca_file: str | None = None,
    insecure: bool = False,
    priority: int | None = None,
    follow_timeout: float | None = None,
) -> str:
    """Submit and (unless ``no_wait``) follow; the run's final status.

    A full queue (HTTP 429) is tried again for ``dtf.service.submit-queue-wait``
    seconds, then ends as :class:`~dtf_core.errors.ServiceBusyError` (exit 3:
    nothing was wrong with the suite); an upload above a limit (413) is bad
    input (exit 2). Both print the service's own one-line reason."""
    if db:
        raise OptionError("--db belongs to the service (`dtf-core serve --db`), not to submit")
    loaded = spec.load_suite(suite)
    suite_file = Path(loaded.path)
    base = Path(root).resolve() if root else suite_file.parent
    if not suite_file.is_relative_to(base):
        raise OptionError(f"{suite} is not inside --root {base}")
    _check_paths_inside(loaded, base)
    for target in (markdown, junit, json_path, html_path, pr_comment, metrics_report):
        if target and not os.path.isdir(os.path.dirname(os.path.abspath(target))):
            raise OptionError(f"cannot write {target}: its directory does not exist")
    # The upload fails at once when no coordinator answers (exit 3); only once
    # the run is accepted does a coordinator going away get --follow-timeout.
    client = CoordinatorClient(url, token, ca_file=ca_file, insecure=insecure)
    limit = int(dask.utils.parse_bytes(str(config.get("service.upload-limit"))))
    archive = bundle.pack(base, limit)
    view = ProgressView(live=False if quiet else None)
    accepted = client.submit(
        suite_file.relative_to(base).as_posix(), archive, context.collect(str(base)), priority,
        busy_wait=config.seconds("service.submit-queue-wait"),
        on_busy=(lambda _: None) if quiet else view.info,
    )  # fmt: skip
    run_id = str(accepted["run_id"])
    if follow_timeout is None:
        follow_timeout = config.seconds("service.follow-timeout")
    client.follow_timeout = follow_timeout  # a restart or a standby taking over: followed
    if not quiet:
        view.info(
            f"submitted run {run_id} to {client.base}: suite '{accepted['suite']}', "
            f"{accepted['total']} task(s), priority {accepted.get('priority', 0)}, "
            f"{len(archive) / 1e3:.0f} kB uploaded"
        )
    if no_wait:
        print(run_id)
        return "accepted"
    status = ""
    try:
        with view:
            for data in client.follow(run_id):
                event = event_from_dict(data)
                if event is None:
                    continue
                if not quiet:
                    view(event)
                if isinstance(event, RunFinished):
                    status = event.status
    except KeyboardInterrupt:
        client.cancel(run_id)
        raise
    status = status or str(client.run(run_id)["status"])
    _write_reports(
        client, run_id, {"md": markdown, "junit": junit, "json": json_path, "html": html_path},
        pr_comment=pr_comment, metrics=metrics_report,
    )  # fmt: skip
    if quiet:
        print(f"run {run_id} {status.upper()}")
    return status


def _check_paths_inside(loaded: spec.Suite, base: Path) -> None:
    """Every file a task names must travel in the upload."""
    for t in loaded.tasks:
        for label, value in (("path", t.path), ("cwd", t.cwd), ("root", t.root)):
            if value and not Path(value).resolve().is_relative_to(base):
                raise OptionError(
                    f"task '{t.task_id}': {label} {value} is outside {base}, which is what "
                    "gets uploaded; pass --root with a directory that holds both"
                )


def _write_reports(
    client: CoordinatorClient,
    run_id: str,
    paths: dict[str, str | None],
    pr_comment: str | None = None,
    metrics: str | None = None,
) -> None:
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    md = client.report(run_id, "md") if (paths.get("md") or step_summary) else ""
    for fmt, path in paths.items():
        if path:
            text = md if fmt == "md" else client.report(run_id, fmt)
            Path(path).write_text(text, encoding="utf-8")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    # Imported here: the renderers are not needed to submit and follow a run.
    from dtf_core.reporting.ci import emit_github
    from dtf_core.reporting.write import metrics_path, write_ci_files

    github = os.environ.get("GITHUB_ACTIONS") == "true"
    metrics_file = metrics_path(metrics)
    if github or pr_comment or metrics_file:
        # The CI files, annotations and step outputs from the run's JSON summary,
        # as `run` writes and prints them.
        summary = json.loads(client.report(run_id, "json"))
        write_ci_files(summary, pr_comment=pr_comment, metrics=metrics_file)
        if github:
            emit_github(summary)
