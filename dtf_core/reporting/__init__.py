"""Reports built from the store: the run summary and its Markdown, JSON, JUnit XML and HTML (with
inline SVG charts), the tables of the analysis commands, and the formatting they all share.

Inside, dependencies point one way. ``format`` (how a value is written) and ``counts`` (the
count buckets) import nothing of the package; the renderers (``render`` for the analysis tables,
``markdown``, ``jsonout``, ``junit``, ``svg``, ``html``) import only those and each other and
work from the summary dict alone; ``sections`` and ``summary`` read the store and the analysis
into that dict; ``write`` joins the two. Nothing here imports ``run``, ``service`` or ``cli``,
and ``dtf_core.analysis`` imports nothing from here. The names below are the entry points.

They load on first use (module ``__getattr__``): ``dtf-core run`` imports this package on its
way, and a run without benchmark samples never needs ``scipy`` (about a second to import) or
the analysis package; ``sections`` is imported only for a run that has samples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dtf_core.reporting.html import render_html
    from dtf_core.reporting.jsonout import render_json
    from dtf_core.reporting.junit import render_junit, split_nodeid
    from dtf_core.reporting.markdown import render_markdown
    from dtf_core.reporting.summary import build_summary
    from dtf_core.reporting.write import RENDERERS, write_reports

_HOME = {
    "RENDERERS": "write",
    "build_summary": "summary",
    "render_html": "html",
    "render_json": "jsonout",
    "render_junit": "junit",
    "render_markdown": "markdown",
    "split_nodeid": "junit",
    "write_reports": "write",
}

__all__ = [
    "RENDERERS",
    "build_summary",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "split_nodeid",
    "write_reports",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # the next access skips this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
