"""`best` ranks tuned settings within one input and hardware, never the inputs themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from support.factories import task_spec

from dtf_core import cli, model
from dtf_core.analysis import best
from dtf_core.reporting import render
from dtf_core.store import Store, StoreReader

RNG = np.random.default_rng(3)
# (n, block) -> median seconds: n=64 is always faster (a smaller problem, not a better
# setting); block 64 beats 16 clearly at n=64 and by a hair (a tie) at n=128.
LEVELS = {(64, 16): 1.2, (64, 64): 1.0, (128, 16): 8.0, (128, 64): 8.0}


def write_run(path, *, tuned: bool = True) -> None:
    with Store(path) as s:
        s.create_run("r1", "quick", "/s/q.toml", {}, 1000.0)
        specs = [
            task_spec(f"mm[n={n},block={b}]", "benchmark", "mm", params={"n": n, "block": b},
                      tune=["block"] if tuned else [], function="demo.bench:matmul")
            for n, b in LEVELS
        ] + [task_spec("sort[size=10]", "benchmark", "sort", params={"size": 10},
                       function="demo.bench:sort_list")]  # fmt: skip
        s.add_tasks("r1", specs)
        for spec in specs:
            level = LEVELS.get((spec.params.get("n"), spec.params.get("block")), 0.5)
            # two machines: one attempt each (an attempt runs on one worker)
            for attempt, hw in enumerate(("cpu-a", "cpu-b")[: 1 if spec.name == "sort" else 2]):
                values = level * RNG.lognormal(0.0, 0.02, 15)
                s.add_attempt(
                    model.AttemptResult(run_id="r1", task_id=spec.task_id, attempt=attempt + 1,
                                        outcome="passed", hardware=hw,
                                        samples=[float(v) for v in values])
                )  # fmt: skip
            s.finish_task("r1", model.TaskFinal(spec.task_id, "passed", attempts=1))


@pytest.fixture
def db(tmp_path):
    write_run(tmp_path / "b.duckdb")
    return tmp_path / "b.duckdb"


def test_settings_are_ranked_within_each_input_and_hardware(db):
    with StoreReader(db) as s:
        samples = s.samples_of_runs(["r1"])
        tuned = s.tuned_settings(["r1"])
    assert tuned == {"mm": ["block"]}
    rows = best.best_configurations(samples, tuned)
    by = {(r["hardware"], r["input"]["n"]): r for r in rows}
    assert set(by) == {("cpu-a", 64), ("cpu-a", 128), ("cpu-b", 64), ("cpu-b", 128)}
    for hw in ("cpu-a", "cpu-b"):
        clear, tie = by[(hw, 64)], by[(hw, 128)]
        assert clear["best"] == {"block": 64} and clear["runner_up"] == {"block": 16}
        assert clear["significant"] and clear["margin"] == pytest.approx(1 / 6, rel=0.15)
        assert tie["configurations"] == 2 and not tie["significant"]
    assert all("n" not in r["best"] for r in rows)  # the input is never "the best setting"
    assert best.untuned(samples, tuned) == ["sort"]
    table = render.best_markdown(rows, ["sort"], "r1")
    assert "| mm | n=64 | cpu-a | block=64 |" in table
    assert "not significant" in table
    assert "sort: no tunable settings" in table


def test_nothing_tunable_says_so_and_ranks_nothing(tmp_path):
    write_run(tmp_path / "u.duckdb", tuned=False)
    res = CliRunner().invoke(cli.main, ["best", "--db", str(tmp_path / "u.duckdb")])
    assert res.exit_code == 0, res.output
    assert "mm, sort: no tunable settings" in res.stdout
    assert "| mm |" not in res.stdout  # n=64 is not named the best configuration of mm
    res = CliRunner().invoke(
        cli.main, ["best", "--db", str(tmp_path / "u.duckdb"), "--format", "json"]
    )
    doc = json.loads(res.stdout)
    assert doc["best"] == [] and doc["untuned"] == ["mm", "sort"]


def test_one_setting_measured_is_no_ranking():
    import pandas as pd

    frame = pd.DataFrame(
        {"run_id": "r", "benchmark": "mm", "params": '{"block": 8, "n": 1}', "hardware": "h",
         "unit": "s", "value": [1.0, 1.1, 0.9], "higher_is_better": None}
    )  # fmt: skip
    (row,) = best.best_configurations(frame, {"mm": ["block"]})
    assert row["runner_up"] is None and row["p_value"] is None and not row["significant"]
    assert render.best_rows([row])[0][-1] == "one setting measured"
