"""What a `dtf-core` command imports before it answers: nothing it does not need.

Each case runs the real command in a fresh interpreter (a subprocess: `sys.modules` of
this test process already holds everything) and lists the heavy packages loaded by the
time the command returned. `run` starts a real embedded cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("scipy", "pandas", "numpy", "duckdb", "textual", "distributed", "jwt")

# The command runs in this process (its modules are what we inspect); worker processes are
# spawned from a `-c` main, so they do not run this code again.
PROBE = textwrap.dedent(
    """
    import json, sys
    from dtf_core.cli.main import main
    try:
        main(sys.argv[1:], prog_name="dtf-core")
    except SystemExit as exc:
        code = exc.code
    heavy = {HEAVY!r}
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))
    analysis = sorted(m for m in sys.modules if m.startswith("dtf_core.analysis"))
    print("PROBE " + json.dumps({{"code": code, "loaded": loaded, "analysis": analysis}}))
    """
).format(HEAVY=HEAVY)


def probe(*args: str, cwd: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=240,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")]
    assert lines, out.stdout + out.stderr
    result: dict[str, object] = json.loads(lines[-1][len("PROBE ") :])
    return result


def test_help_and_validate_load_no_database_and_no_statistics(tmp_path: Path) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text(
        '[suite]\nname = "s"\n[[task]]\nname = "c"\nkind = "command"\ncommand = ["true"]\n'
    )
    for args in (["--help"], ["run", "--help"], ["validate", str(suite)]):
        got = probe(*args, cwd=tmp_path)
        assert got["code"] in (0, None), (args, got)
        assert got["loaded"] == [], (args, got)  # no duckdb, scipy, pandas, textual, distributed
        assert got["analysis"] == [], (args, got)


def test_run_without_benchmarks_loads_neither_scipy_nor_the_analysis(tmp_path: Path) -> None:
    suite = tmp_path / "one.toml"
    suite.write_text(
        '[suite]\nname = "one"\n[[task]]\nname = "smoke"\nkind = "command"\n'
        'command = ["python", "-c", "pass"]\n'
    )
    db = tmp_path / "r.duckdb"
    got = probe(
        "run", str(suite), "--db", str(db), "-q", "--report", str(tmp_path / "r.md"), cwd=tmp_path
    )
    assert got["code"] in (0, None), got
    loaded = set(got["loaded"])  # type: ignore[arg-type]
    # The store writes through pandas frames, so pandas (and numpy) are expected here.
    assert {"distributed", "duckdb"} <= loaded, got
    assert not loaded & {"scipy", "textual", "jwt"}, got
    assert got["analysis"] == [], got
    assert (tmp_path / "r.md").read_text().startswith("# dtf: one: PASSED")


def test_run_with_a_benchmark_does_load_the_analysis(tmp_path: Path) -> None:
    # The check above would pass vacuously if the report never needed scipy.
    (tmp_path / "tiny.py").write_text("def tiny():\n    return sum(range(100))\n")
    suite = tmp_path / "bench.toml"
    suite.write_text(
        '[suite]\nname = "bench"\n[[task]]\nname = "tiny"\nkind = "benchmark"\n'
        'function = "tiny:tiny"\nrepeat = 5\n'
    )
    report = tmp_path / "r.md"
    got = probe(
        "run",
        str(suite),
        "--db",
        str(tmp_path / "r.duckdb"),
        "-q",
        "--report",
        str(report),
        cwd=tmp_path,
    )
    assert got["code"] in (0, None), got
    assert "scipy" in got["loaded"], got  # type: ignore[operator]
    assert "dtf_core.analysis.stats" in got["analysis"], got  # type: ignore[operator]
    assert "tiny" in report.read_text()
