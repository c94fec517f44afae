"""Report sections from the analysis: Markdown, JSON and the self-contained HTML."""

from __future__ import annotations

import json
import re
import xml.dom.minidom

import numpy as np
import pytest
from support.history_seed import seeded_db

from dtf_core import reporting
from dtf_core.analysis import baseline
from dtf_core.store import Store, StoreReader


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    db, truth = seeded_db(
        tmp_path_factory.mktemp("rep") / "h.duckdb",
        benchmarks=30,
        runs=300,
        samples=5,
        hardware=2,
        seed=4,
        shift_share=0.5,
    )
    return db, truth


def test_summary_gains_analysis_sections(seeded, tmp_path):
    db, _ = seeded
    with StoreReader(db) as s:
        summary = reporting.build_summary(s, "nightly-00299")
        # same hardware, 2 runs back, on the run's own branch (the seed has main only)
        choice = baseline.select(s, "nightly-00299")
        assert choice.run_id == "nightly-00297"
        assert choice.reason == "latest passed on the run's own branch main"
        assert baseline.select(s, "nightly-00000").run_id is None
    a = summary["analysis"]
    assert a["baseline"] == "nightly-00297"
    assert sum(a["comparison"]["counts"].values()) == len(a["comparison"]["rows"]) > 0
    assert a["changes"] and a["charts"]
    assert any(p["param_names"] for p in a["pivots"])
    md = reporting.render_markdown(summary)
    for heading in ("## Compared with `nightly-00297`", "## Pivot: median by parameters x hardware",
                    "## Best tuned setting", "## Level shifts in history"):  # fmt: skip
        assert heading in md
    assert "\nbaseline: run nightly-00297 (main, " in md
    # imported history has no suite file, so nothing is declared tunable
    assert a["best"] == [] and a["untuned"] and "no tunable settings" in md
    doc = json.loads(reporting.render_json(summary))
    assert doc["analysis"]["baseline"] == "nightly-00297"

    html = reporting.render_html(summary)
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "<script" not in html and "<link" not in html  # one self-contained file
    assert re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", html).count("http") == 0
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == len(a["charts"])
    for svg in svgs:
        xml.dom.minidom.parseString(svg)  # well-formed
    out = tmp_path / "r" / "report.html"
    with StoreReader(db) as s:
        reporting.write_reports(s, "nightly-00299", html=out)
    assert out.read_text(encoding="utf-8").count("<svg") == len(svgs)


def test_run_without_samples_has_no_analysis(tmp_path):
    with Store(tmp_path / "e.duckdb") as s:
        s.create_run("r1", "demo", "/x", {}, 1.0)
        summary = reporting.build_summary(s, "r1")
    assert summary["analysis"] is None
    assert "Compared with" not in reporting.render_markdown(summary)
    assert "<svg" not in reporting.render_html(summary)


def test_line_chart_marks_shift_anomaly_and_forecast():
    from dtf_core.reporting.svg import line_chart

    svg = line_chart(
        list(np.r_[np.ones(20), 2 * np.ones(20)]), title="a <b>", changes=[20], anomalies=[3],
        band=(2.0, 1.8, 2.2),
    )  # fmt: skip
    dom = xml.dom.minidom.parseString(svg)
    assert len(dom.getElementsByTagName("polyline")) == 1
    assert [e.getAttribute("class") for e in dom.getElementsByTagName("line")].count("cp") == 1
    assert "a &lt;b&gt;" in svg
