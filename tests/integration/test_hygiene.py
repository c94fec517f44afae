"""Project rules that a code review would otherwise have to remember."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_dtf_core_never_imports_textual() -> None:
    # Every module of dtf_core, imported in a fresh interpreter: the core must
    # run headless in CI without the UI stack.
    code = (
        "import importlib, pkgutil, sys, dtf_core\n"
        "for m in pkgutil.walk_packages(dtf_core.__path__, 'dtf_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'textual' or n.startswith('textual.'))\n"
        "assert not bad, bad\n"
        "print('ok', len([n for n in sys.modules if n.startswith('dtf_core')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_dtf_tui_does_import_textual() -> None:
    # The check above would pass vacuously if nothing could load textual.
    code = "import sys, dtf_tui.app; assert 'textual' in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_ruff_clean() -> None:
    ruff = _tool("ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run([ruff, *args], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mypy_clean() -> None:
    mypy = _tool("mypy")
    out = subprocess.run([mypy], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
