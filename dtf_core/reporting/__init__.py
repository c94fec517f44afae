"""Reports built from the store: the run summary and its Markdown, JSON, JUnit XML and HTML (with
inline SVG charts), the tables of the analysis commands, and the formatting they all share.

Inside, dependencies point one way. ``format`` (how a value is written) and ``counts`` (the
count buckets) import nothing of the package; the renderers (``render`` for the analysis tables,
``markdown``, ``jsonout``, ``junit``, ``svg``, ``html``) import only those and each other and
work from the summary dict alone; ``sections`` and ``summary`` read the store and the analysis
into that dict; ``write`` joins the two. Nothing here imports ``run``, ``service`` or ``cli``,
and ``dtf_core.analysis`` imports nothing from here. The names below are the entry points.
"""

from dtf_core.reporting.html import render_html
from dtf_core.reporting.jsonout import render_json
from dtf_core.reporting.junit import render_junit, split_nodeid
from dtf_core.reporting.markdown import render_markdown
from dtf_core.reporting.summary import build_summary
from dtf_core.reporting.write import RENDERERS, write_reports

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
