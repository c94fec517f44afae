"""Which worker can run a unit of work, and what stops it when none can (``dtf-core plan``),
table-style without a cluster."""

from __future__ import annotations

import pytest

from dtf_core.run.feasibility import Fit, check, summary_lines

CPU = {"name": "cpu-0", "resources": {}}
GPU = {"name": "gpu-0", "resources": {"GPU": 1.0}}
BIG = {"name": "big-0", "resources": {"MEM_GB": 256.0}}


@pytest.mark.parametrize(
    ("requires", "workers", "fits_on", "missing"),
    [
        ({}, [CPU, GPU], ["cpu-0", "gpu-0"], {}),
        ({"GPU": 1}, [CPU, GPU], ["gpu-0"], {}),
        ({"GPU": 1}, [CPU], [], {"GPU": 1}),
        ({"GPU": 2}, [CPU, GPU], [], {"GPU": 2}),  # some GPU, never two on one worker
        # Each resource exists, but no worker has both: both are named.
        ({"GPU": 1, "MEM_GB": 64}, [GPU, BIG], [], {"GPU": 1, "MEM_GB": 64}),
        ({"GPU": 1, "MEM_GB": 64}, [CPU, BIG], [], {"GPU": 1}),
        ({}, [], [], {}),  # nobody connected: nothing runs, nothing in particular is missing
    ],
)
def test_check(requires, workers, fits_on, missing):
    fit = check(Fit("t", "command", dict(requires)), workers)
    assert fit.checked and fit.workers == fits_on
    assert fit.runnable == bool(fits_on)
    assert fit.missing == missing
    doc = fit.to_dict()
    assert doc["runnable"] == bool(fits_on) and doc["missing"] == missing


def test_without_a_cluster_each_unit_only_says_what_it_needs():
    fits = [
        check(Fit("a", "command", {"GPU": 1.0}), None),
        check(Fit("b", "command", {"GPU": 1.0}), None),
        check(Fit("tests/test_x.py", "pytest-file", {}, tests=3), None),
    ]
    assert all(f.runnable and not f.checked for f in fits)
    assert "runnable" not in fits[0].to_dict() and fits[2].to_dict()["tests"] == 3
    assert summary_lines(fits, None) == [
        "no cluster given: 3 unit(s) would need",
        "  a worker with GPU=1: 2 unit(s)",
    ]


def test_summary_names_what_the_cluster_lacks():
    fits = [check(Fit(n, "command", r), [CPU]) for n, r in (("a", {}), ("b", {"GPU": 1.0}))]
    assert summary_lines(fits, [CPU]) == [
        "1 of 2 unit(s) can run on 1 worker(s)",
        "  never schedulable here: no worker has GPU=1 (1 unit(s))",
    ]
    assert summary_lines([check(Fit("a", "command", {}), [])], []) == [
        "0 of 1 unit(s) can run on 0 worker(s): the cluster has no workers"
    ]
