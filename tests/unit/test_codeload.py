"""dtf_core.codeload without Dask: each run loads the suite's code fresh under
its own module names, packages included, and leaves sys.path alone."""

from __future__ import annotations

import hashlib
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtf_core import codeload, spec
from dtf_core.errors import SpecError


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


PACKAGE = {
    "bench.py": """
        import helpers
        from pkg import sub
        def value():
            return helpers.BASE + sub.value()
    """,
    "helpers.py": "BASE = 1\n",
    "pkg/__init__.py": "from . import sib\n",
    "pkg/sub.py": """
        from .sib import ten
        import pkg.deep.leaf
        def value():
            from helpers import BASE  # imported at call time: still this run's copy
            return ten() + pkg.deep.leaf.hundred() + BASE
    """,
    "pkg/sib.py": "def ten():\n    return 10\n",
    "pkg/deep/__init__.py": "",
    "pkg/deep/leaf.py": "def hundred():\n    return 100\n",
    "unused.py": "X = 1\n",
}


@pytest.fixture
def forget_after() -> Iterator[list[str]]:
    runs: list[str] = []
    yield runs
    for r in runs:
        codeload.forget(r)


def test_each_run_gets_the_code_on_disk_packages_included(
    tmp_path: Path, forget_after: list[str]
) -> None:
    root = write(tmp_path, PACKAGE)
    forget_after += ["r1", "r2"]
    path_before = list(sys.path)
    fn1, space1 = codeload.load_callable("r1", str(root), "bench:value")
    assert fn1() == 112
    (root / "pkg/deep/leaf.py").write_text("def hundred():\n    return 200\n")
    (root / "helpers.py").write_text("BASE = 2\n")
    fn2, space2 = codeload.load_callable("r2", str(root), "bench:value")
    assert fn2() == 214  # the new code, through relative, absolute and lazy imports
    assert fn1() == 112  # run 1 keeps its own copy
    assert codeload.load_callable("r1", str(root), "bench:value")[0] is fn1  # cached per run
    assert sys.path == path_before
    for name in ("bench", "helpers", "pkg", "pkg.sub"):
        assert name not in sys.modules  # suite code never takes its own global name
    assert space1.fingerprint("bench") != space2.fingerprint("bench")


def test_fingerprint_is_sha256sum_of_the_files_that_ran(
    tmp_path: Path, forget_after: list[str]
) -> None:
    root = write(tmp_path, PACKAGE)
    forget_after.append("fp")
    fn, space = codeload.load_callable("fp", str(root), "bench:value")
    fn()
    ran = [
        "bench.py",
        "helpers.py",
        "pkg/__init__.py",
        "pkg/deep/__init__.py",
        "pkg/deep/leaf.py",
        "pkg/sib.py",
        "pkg/sub.py",
    ]  # fmt: skip; not unused.py
    manifest = "".join(f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  {f}\n" for f in ran)
    assert space.fingerprint("bench") == hashlib.sha256(manifest.encode()).hexdigest()[:12]
    leaf = hashlib.sha256((root / "pkg/deep/leaf.py").read_bytes()).hexdigest()
    one = hashlib.sha256(f"{leaf}  pkg/deep/leaf.py\n".encode()).hexdigest()[:12]
    parents = space.fingerprint("pkg.deep.leaf")
    assert parents != one  # a submodule's parents ran too: they count
    assert space.fingerprint("json") == ""  # not suite code


def test_forget_drops_the_runs_modules(tmp_path: Path) -> None:
    root = write(tmp_path, PACKAGE)
    codeload.load_callable("gone", str(root), "bench:value")[0]()
    prefix = codeload.space_for("gone", str(root)).prefix
    assert sum(m.startswith(prefix) for m in sys.modules) == 7
    assert codeload.forget("gone") == 7
    assert not any(m.startswith(prefix) for m in sys.modules)
    assert codeload.forget("gone") == 0


def test_code_reached_outside_the_loader_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forget_after: list[str]
) -> None:
    root = write(
        tmp_path,
        {
            "helpers.py": "BASE = 1\n",
            "sneaky.py": """
                import importlib
                helpers = importlib.import_module("helpers")
                def value():
                    return helpers.BASE
            """,
        },
    )
    forget_after.append("stale")
    monkeypatch.syspath_prepend(str(root))  # a global `helpers` exists: maybe an old copy
    monkeypatch.delitem(sys.modules, "helpers", raising=False)
    with pytest.raises(
        codeload.StaleCodeError, match=r"'helpers' from .*helpers\.py loaded outside"
    ):
        codeload.load_callable("stale", str(root), "sneaky:value")
    sys.modules.pop("helpers", None)


def test_missing_modules_are_named_as_the_suite_wrote_them(
    tmp_path: Path, forget_after: list[str]
) -> None:
    root = write(tmp_path, PACKAGE)
    forget_after.append("miss")
    with pytest.raises(ModuleNotFoundError, match=r"No module named 'pkg\.nope'") as info:
        codeload.load_callable("miss", str(root), "pkg.nope:f")
    assert info.value.name == "pkg.nope"
    with pytest.raises(ImportError, match="has no attribute 'nope'"):
        codeload.load_callable("miss", str(root), "bench:nope")


def test_two_runs_on_threads_load_one_name_apart(tmp_path: Path, forget_after: list[str]) -> None:
    barrier = threading.Barrier(2)
    got: dict[str, list[int]] = {}

    def run(rid: str, value: int) -> None:
        root = write(tmp_path / rid, {"same.py": f"def which():\n    return {value}\n"})
        barrier.wait()
        fn, _ = codeload.load_callable(rid, str(root), "same:which")
        got[rid] = [fn() for _ in range(100)]

    forget_after += ["ta", "tb"]
    threads = [threading.Thread(target=run, args=a) for a in (("ta", 1), ("tb", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert got == {"ta": [1] * 100, "tb": [2] * 100}


def test_validation_keeps_no_suite_module(tmp_path: Path) -> None:
    root = write(tmp_path, PACKAGE)
    (root / "s.toml").write_text(
        '[suite]\nname = "v"\n[[task]]\nname = "b"\nkind = "benchmark"\nfunction = "bench:value"\n'
    )
    before_path, before_mods = list(sys.path), set(sys.modules)
    spec.load_suite(root / "s.toml")
    assert sys.path == before_path
    assert not {m for m in sys.modules if m.startswith("dtf_run_")} - before_mods
    (root / "s.toml").write_text(
        '[suite]\nname = "v"\n[[task]]\nname = "b"\nkind = "benchmark"\n'
        'function = "bench:nothing"\n'
    )
    with pytest.raises(SpecError, match="has no callable 'nothing'"):
        spec.load_suite(root / "s.toml")
    assert not {m for m in sys.modules if m.startswith("dtf_run_")} - before_mods
