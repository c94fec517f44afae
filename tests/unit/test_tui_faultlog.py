"""The console's fault log, and a run event the live view could not take."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtf_core.events import RunFinished
from dtf_tui.faults import LOG_ENV, FaultLog, default_log_path, describe
from dtf_tui.sources import SourceError
from dtf_tui.sources.live import LiveSource


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_the_log_holds_the_traceback_once_per_repeat_and_again_after_recovery(
    tmp_path: Path,
) -> None:
    log = FaultLog(tmp_path / "sub" / "tui.log")
    assert log.where == ""  # nothing written: the banner names no file
    exc = _raised(KeyError("matmul[dtype=f32]"))
    assert log.record("loading", exc) == "KeyError: 'matmul[dtype=f32]'"
    text = log.path.read_text()
    assert "loading failed: KeyError" in text and "Traceback (most recent call last)" in text
    assert log.where == f"details in {log.path}"

    log.record("loading", exc)  # a retry failing the same way
    log.record("other", _raised(ValueError("x")))
    assert log.path.read_text().count("loading failed") == 1
    log.clear_repeat("loading")  # it worked in between: the next failure is news
    log.record("loading", exc)
    assert log.path.read_text().count("loading failed") == 2


def test_a_bare_source_error_is_logged_without_frames_and_worded_as_is(tmp_path: Path) -> None:
    log = FaultLog(tmp_path / "tui.log")
    assert log.record("poll", _raised(SourceError("db locked by process 7"))) == (
        "db locked by process 7"
    )
    assert "Traceback" not in log.path.read_text()
    assert describe(RuntimeError("two\n  lines")) == "RuntimeError: two lines"


def test_an_unwritable_log_is_said_instead_of_raising(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    log = FaultLog(tmp_path / "file" / "tui.log")  # its folder is a file
    assert log.record("poll", _raised(RuntimeError("boom"))) == "RuntimeError: boom"
    assert log.where.startswith(f"could not write {log.path} (")


def test_the_default_log_lives_in_the_cache_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(LOG_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_log_path() == tmp_path / "dtf" / "dtf-tui.log"
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "mine.log"))
    assert default_log_path() == tmp_path / "mine.log"


def test_a_run_event_the_view_cannot_take_is_raised_once_then_kept_as_a_problem() -> None:
    # The coordinator swallows a listener's exception (a broken view must not
    # break the run): the live source keeps it so the console can say so.
    source = LiveSource()

    def broken(event: object) -> None:
        raise KeyError("run[1]")

    source.state.on_event = broken  # type: ignore[method-assign]
    source._on_event(RunFinished("run[1]", "passed", {}, 1.0))
    with pytest.raises(SourceError, match=r"a run event was lost: KeyError") as raised:
        source.poll()
    assert isinstance(raised.value.__cause__, KeyError)  # the traceback reaches the log
    snap = source.poll()
    assert "a run event was lost (KeyError)" in snap.problem
