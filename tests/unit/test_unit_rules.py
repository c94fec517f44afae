"""tests/unit stays fast: its files import nothing that starts a process, a Dask
cluster or the Textual app. A test that needs one belongs in tests/integration."""

from __future__ import annotations

import ast
from pathlib import Path

UNIT = Path(__file__).parent

# module (or package prefix) -> what it brings into a unit test
MODULES = {
    "subprocess": "a process",
    "multiprocessing": "a process",
    "pty": "a process",
    "support.procs": "a process",
    "distributed": "a Dask cluster",  # plain `import distributed`; exceptions may be imported
    "dtf_core.cluster.embedded": "a Dask cluster",
    "dtf_core.run.coordinator": "a Dask cluster",
    "textual": "the Textual app",
    "dtf_tui.app": "the Textual app",
    "dtf_tui.screens": "the Textual app",
    "dtf_tui.widgets": "the Textual app",
}
# names that start one, whichever module they are imported from
NAMES = {
    "LocalCluster": "a Dask cluster",
    "SpecCluster": "a Dask cluster",
    "SubprocessCluster": "a Dask cluster",
    "Client": "a Dask cluster",
    "Scheduler": "a Dask cluster",
    "Worker": "a Dask cluster",
    "Nanny": "a Dask cluster",
    "make_app": "the Textual app",
}
OS_CALLS = {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp"}
FIXTURES = {"spawn": "a process"}


def _module_hit(module: str) -> str | None:
    for prefix, what in MODULES.items():
        if module == prefix or module.startswith(prefix + "."):
            if prefix == "distributed" and module != "distributed":
                return None  # `from distributed.x import SomeError` is fine; NAMES catches the rest
            return what
    return None


def violations(source: str, filename: str = "<test>") -> list[str]:
    """Each line of ``source`` that would start a process, a cluster or the app."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        hits: list[tuple[str, str]] = []
        if isinstance(node, ast.Import):
            hits = [(a.name, w) for a in node.names if (w := _module_hit(a.name))]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if what := _module_hit(node.module):
                hits.append((node.module, what))
            hits += [
                (f"{node.module}.{a.name}", NAMES[a.name]) for a in node.names if a.name in NAMES
            ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and (
                node.attr in OS_CALLS or node.attr.startswith(("spawn", "exec"))
            ):
                hits.append((f"os.{node.attr}", "a process"))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            hits = [(f"fixture {a.arg}", FIXTURES[a.arg]) for a in args if a.arg in FIXTURES]
        found += [f"{filename}:{node.lineno}: {name} ({what})" for name, what in hits]
    return found


def test_unit_files_start_no_process_cluster_or_app() -> None:
    bad = (
        "import subprocess\nfrom distributed import LocalCluster\n"
        "from dtf_tui.app import DtfApp\nimport os\nos.system('true')\n"
        "def test_x(spawn): pass\n"
    )
    assert {v.split(":")[1] for v in violations(bad)} == {"1", "2", "3", "5", "6"}  # it can fail
    assert (
        violations("from distributed.scheduler import KilledWorker\nimport os\nos.environ\n") == []
    )
    files = sorted(UNIT.glob("*.py"))
    assert Path(__file__) in files
    found = [v for f in files for v in violations(f.read_text(), str(f.relative_to(UNIT.parent)))]
    assert not found, "move these tests to tests/integration:\n" + "\n".join(found)
