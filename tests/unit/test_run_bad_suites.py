"""Every broken suite file fails `dtf-core run` with one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dtf_core import cli

ROOT = Path(__file__).resolve().parents[2]
BAD = sorted((ROOT / "tests" / "data" / "bad").glob("*.toml"))


@pytest.mark.parametrize("bad", BAD, ids=lambda p: p.stem)
def test_bad_suite_is_one_line_exit_2_nothing_written(bad: Path, tmp_path: Path) -> None:
    # In-process through click's runner: the same command code, without paying
    # an interpreter start per file. The subprocess case is in integration/test_run_e2e.py.
    db = tmp_path / "never.duckdb"
    result = CliRunner().invoke(cli.main, ["run", str(bad), "--db", str(db)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert bad.name in lines[0]
    assert "Traceback" not in result.output
    assert not db.exists()
