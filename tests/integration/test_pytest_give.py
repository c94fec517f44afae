"""A running pytest chunk gives away half of what it has not started and goes
on in the same process (dtf_core.testing.plugin, ``--dtf-yield-file``): a real
pytest subprocess with dtf's plugin, read back through dtf_core.testing.stream."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dtf_core.testing import stream as pyteststream

SUITE = """
    import os, signal
    from pathlib import Path
    import pytest

    @pytest.mark.parametrize("i", range(10))
    def test_t(i):
        if i == 0:
            Path(os.environ["YIELD_FILE"]).touch()  # as runner.request_yield does
        if i == int(os.environ.get("CRASH_AT", "-1")):
            os.kill(os.getpid(), signal.SIGKILL)
"""


def _run(tmp_path: Path, crash_at: int | None) -> tuple[int, pyteststream.StreamState]:
    (tmp_path / "test_give.py").write_text(textwrap.dedent(SUITE))
    stream, yield_file = tmp_path / "stream.jsonl", tmp_path / "yield"
    env = {"YIELD_FILE": str(yield_file), "PATH": "/usr/bin:/bin"}
    if crash_at is not None:
        env["CRASH_AT"] = str(crash_at)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "test_give.py", "-p", "no:cacheprovider",
         "-p", "dtf_core.testing.plugin", f"--dtf-stream={stream}",
         f"--dtf-yield-file={yield_file}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert not yield_file.exists()  # consumed: the process can be asked again
    return proc.returncode, pyteststream.read(stream)


def _ids(*nums: int) -> list[str]:
    return [f"test_give.py::test_t[{i}]" for i in nums]


def test_gives_the_second_half_and_runs_the_first_in_the_same_process(tmp_path: Path) -> None:
    code, state = _run(tmp_path, None)
    assert code == 0
    assert state.given == _ids(6, 7, 8, 9)
    assert state.started == _ids(0, 1, 2, 3, 4, 5)  # one process, no restart
    assert [t.outcome for t in state.tests] == ["passed"] * 6
    assert pyteststream.not_started(state) == []


@pytest.mark.slow
def test_a_crash_after_giving_resumes_only_what_it_kept(tmp_path: Path) -> None:
    """The warm process dies mid-run: the test running is reported failed, the
    tests it kept and never started are resumed, the given ones are not
    (another task runs them): every test exactly once."""
    code, state = _run(tmp_path, crash_at=3)
    assert code < 0
    tests, remaining = pyteststream.salvage(state, ["test_give.py"], code, False)
    assert [(t.nodeid, t.outcome) for t in tests] == [
        *((n, "passed") for n in _ids(0, 1, 2)),
        (_ids(3)[0], "failed"),
    ]
    assert "crashed" in tests[-1].message
    assert remaining == _ids(4, 5)
    assert state.given == _ids(6, 7, 8, 9)
    everything = [t.nodeid for t in tests] + remaining + state.given
    assert sorted(everything) == sorted(_ids(*range(10)))
