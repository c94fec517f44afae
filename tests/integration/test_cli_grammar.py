"""The one grammar of `dtf-core` and `dtf-tui`, run as a user runs them (real
subprocesses, a real DuckDB file): old spellings still work and say so in one
line, output options agree, bad input is one line and exit 2 in both programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from dtf_core.cli import main as dtf_core_main
from dtf_core.cli.deprecation import CliDeprecationWarning
from dtf_tui.cli import main as dtf_tui_main

ROOT = Path(__file__).resolve().parents[2]
GOOD_CSV = ROOT / "tests" / "data" / "import" / "good.csv"  # runs r1 and r2
JSON_FLAG = "dtf-core: --json without a file is deprecated; use --format json"


def run(*argv: str, cwd: Path, module: str = "dtf_core.cli", timeout: float = 120):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env,
    )  # fmt: skip


def invoke(main: click.Command, *argv: str, cwd: Path) -> Result:
    """In-process, for speed where the one-line deprecation format is not the point."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(argv))
    finally:
        os.chdir(old)


@pytest.fixture
def db(tmp_path: Path) -> str:
    res = invoke(dtf_core_main, "import", "--db", "h.duckdb", "--input-format", "csv",
                 str(GOOD_CSV), cwd=tmp_path)  # fmt: skip
    assert res.exit_code == 0 and res.stderr == "", res.output
    return "h.duckdb"


@pytest.mark.timeout(180)
def test_analysis_json_flag_is_format_json_with_one_deprecation_line(
    tmp_path: Path, db: str
) -> None:
    new = run("compare", "--db", db, "--baseline", "r1", "--format", "json", cwd=tmp_path)
    old = run("compare", "--db", db, "--baseline", "r1", "--json", cwd=tmp_path)
    assert new.returncode == old.returncode == 0, old.stderr
    assert new.stderr == ""
    assert old.stderr.splitlines() == [JSON_FLAG]
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert json.loads(new.stdout)["run"] == "r2"  # --run defaults to the latest run
    # Still a flag where it was one: `--json --all` does not take --all as a file.
    both = run("regressions", "--db", db, "--json", "--all", cwd=tmp_path)
    assert both.returncode == 0 and both.stderr.splitlines() == [JSON_FLAG]
    assert "changes" in json.loads(both.stdout)
    # The old flag and the new option together are a usage error, not a guess.
    clash = run("stats", "--db", db, "--format", "md", "--json", cwd=tmp_path)
    assert clash.returncode == 2 and "give only --format json" in clash.stderr


def test_output_writes_what_format_prints(tmp_path: Path, db: str) -> None:
    for cmd in (["compare", "--baseline", "r1"], ["runs"], ["best"], ["report", "--run", "r2"]):
        printed = invoke(dtf_core_main, *cmd, "--db", db, "--format", "json", cwd=tmp_path)
        written = invoke(dtf_core_main, *cmd, "--db", db, "--format", "json", "-o", "o.json",
                         cwd=tmp_path)  # fmt: skip
        assert printed.exit_code == written.exit_code == 0, (cmd, written.output)
        assert written.stdout == ""
        assert json.loads((tmp_path / "o.json").read_text()) == json.loads(printed.stdout), cmd
    bad = invoke(dtf_core_main, "best", "--db", db, "-o", "no/such/dir/b.md", cwd=tmp_path)
    assert bad.exit_code == 2
    assert bad.stderr.splitlines() == [
        "dtf-core: error: cannot write no/such/dir/b.md: its directory does not exist"
    ]


@pytest.mark.timeout(120)
def test_import_format_is_the_old_input_format(tmp_path: Path) -> None:
    out = run("import", "--db", "o.duckdb", "--format", "csv", str(GOOD_CSV), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "imported 9 samples in 2 runs" in out.stdout
    assert out.stderr.splitlines() == [
        "dtf-core: import --format is deprecated (--format says what a command prints); "
        "use --input-format"
    ]


SUITE = """
[suite]
name = "grammar"
[[task]]
name = "ok"
kind = "command"
command = ["python", "-c", "pass"]
"""


@pytest.mark.timeout(300)
def test_report_is_the_old_markdown(tmp_path: Path) -> None:
    (tmp_path / "suite.toml").write_text(SUITE)
    new = run("run", "suite.toml", "--workers", "1", "--db", "r.duckdb", "--markdown", "new.md",
              "--json", "s.json", "-q", cwd=tmp_path, timeout=240)  # fmt: skip
    assert new.returncode == 0, new.stderr
    assert "deprecated" not in new.stderr
    old = run("run", "suite.toml", "--workers", "1", "--db", "r.duckdb", "--report", "old.md",
              "-q", cwd=tmp_path, timeout=240)  # fmt: skip
    assert old.returncode == 0, old.stderr
    assert [ln for ln in old.stderr.splitlines() if "deprecated" in ln] == [
        "dtf-core: --report is deprecated; use --markdown"
    ]
    for md in ("new.md", "old.md"):
        assert "grammar" in (tmp_path / md).read_text(), md
    assert json.loads((tmp_path / "s.json").read_text())["status"] == "passed"
    # Both spellings at once: refused before anything runs.
    both = run("run", "suite.toml", "--db", "x.duckdb", "--report", "a.md", "--markdown", "b.md",
               cwd=tmp_path)  # fmt: skip
    assert both.returncode == 2 and "give only --markdown" in both.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_in_process_callers_get_a_warning_not_mixed_output(tmp_path: Path, db: str) -> None:
    with pytest.warns(CliDeprecationWarning, match="use --format json"):
        res = CliRunner().invoke(
            dtf_core_main, ["best", "--db", str(tmp_path / db), "--run", "r1", "--json"]
        )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["run"] == "r1"


def test_unknown_run_and_missing_database_are_one_line(tmp_path: Path, db: str) -> None:
    nope = invoke(dtf_core_main, "report", "--db", db, "--run", "nope", cwd=tmp_path)
    assert nope.exit_code == 2 and len(nope.stderr.splitlines()) == 1, nope.stderr
    assert nope.stderr.startswith("dtf-core: error: ") and "nope" in nope.stderr
    gone = invoke(dtf_core_main, "runs", "--db", "missing.duckdb", cwd=tmp_path)
    assert gone.exit_code == 3
    assert gone.stderr.splitlines() == ["dtf-core: error: no database at missing.duckdb"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--coordinator", "foo"], "not an http(s)://HOST:PORT address"),
        (["--db", "a.duckdb", "--coordinator", "http://127.0.0.1:9"], "pick one"),
        (["run", "missing.toml"], "missing.toml: file not found"),
        (["run", "suite.toml", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_dtf_tui_bad_input_is_one_line_exit_2(tmp_path: Path, argv: list[str], needle: str) -> None:
    (tmp_path / "suite.toml").write_text(SUITE)
    res = invoke(dtf_tui_main, *argv, cwd=tmp_path)
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dtf-tui: error: "), res.stderr
    assert needle in lines[0]
    assert isinstance(res.exception, SystemExit)  # an exit code, not an escaped error


@pytest.mark.timeout(120)
@pytest.mark.parametrize("module", ["dtf_tui", "dtf_tui.app"])  # dtf_tui.app: the old way
def test_dtf_tui_program_says_bad_input_in_one_line(tmp_path: Path, module: str) -> None:
    out = run("--coordinator", "foo", cwd=tmp_path, module=module)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.splitlines() == [
        "dtf-tui: error: --coordinator 'foo' is not an http(s)://HOST:PORT address"
    ]
