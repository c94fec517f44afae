"""Splitting an existing pytest suite into chunks for the cluster.

1. :func:`collect` runs ``pytest --collect-only`` once, in a subprocess (the
   suite's imports stay out of the coordinator), with dtf's plugin writing every
   node id and its ``@pytest.mark.dtf(...)`` resources. The result is cached by
   a fingerprint of the files (:func:`collect_cached`).

   A first run (nothing cached) does not collect centrally: importing every
   test module once in the coordinator and again in the chunks costs a whole
   collection of wall time. :func:`list_files` asks pytest only which files it
   would collect (no test module imported), the chunks are whole files, and
   each chunk's pytest collects its own files and reports what it found;
   :func:`save_collection` caches that for the next run. Files that use the
   ``dtf`` marker are still collected centrally (:func:`uses_marker`): their
   tests may need hardware that only some workers have.
2. :func:`scan_file` adds what a test file visibly uses (``torch.cuda``,
   ``cupy`` ... -> ``GPU=1``): many GPU suites carry no marker.
3. :func:`plan` packs the tests into chunks, longest processing time first, by
   historical durations from DuckDB when there are some and a cheap estimate
   when not, plus what collecting each file cost the last time (its import,
   which test durations do not include), so that every worker slot finishes at
   about the same time: one
   chunk per worker thread when history knows the tests, two when not. Whole
   files stay together (one import of the module per chunk) unless one file
   alone is more than a slot's share; then it is split by test id.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtf_core import __version__
from dtf_core.errors import OptionError

# Per-test cost when there is no history (seconds), and the fixed cost of one
# pytest process (interpreter, plugin loading, collection of its files).
DEFAULT_TEST_S = 0.05
PROCESS_S = 0.6

_GPU_PATTERNS = [
    re.compile(p, re.MULTILINE)
    for p in (
        r"\btorch\.cuda\b",
        r"\.cuda\(\)",
        r"\bdevice\s*=\s*['\"]cuda",
        r"^\s*(import|from)\s+(cupy|cudf|cuml|pycuda|tensorrt|triton)\b",
        r"\bnumba\.cuda\b|from\s+numba\s+import\s+cuda\b",
        r"\bjax\.devices\(\s*['\"]gpu",
        r"\btf\.config\.list_physical_devices\(\s*['\"]GPU",
    )
]


@dataclass(frozen=True)
class TestItem:
    nodeid: str
    file: str
    resources: dict[str, float] = field(default_factory=dict)
    # Seconds pytest took to collect this test's file (importing the module),
    # recorded on the file's first test only; 0 when not known.
    collect_s: float = 0.0


@dataclass
class Collection:
    items: list[TestItem]
    exit_code: int
    output: str  # pytest's own collection output (errors are in here)
    errors: int = 0  # collection errors pytest reported
    cached: bool = False  # reused from an earlier collection of unchanged files


@dataclass
class Chunk:
    nodeids: list[str]
    files: list[str]
    requires: dict[str, float]
    estimate_s: float


def _collect_only(
    paths: list[str], pytest_args: list[str], cwd: str, option: str, timeout: float, doing: str
) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str]]:
    """``pytest --collect-only`` in a subprocess (the suite's imports stay out
    of the coordinator), dtf's plugin writing JSON lines through ``option``."""
    with tempfile.TemporaryDirectory(prefix="dtf-collect-") as tmp:
        out = Path(tmp) / "records.jsonl"
        argv = [
            sys.executable, "-m", "pytest", "--collect-only", "-q", *paths, *pytest_args,
            "-p", "no:cacheprovider", "-p", "dtf_core.testing.plugin", f"{option}={out}",
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise OptionError(f"{doing} took longer than {timeout:g}s") from exc
        lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    return [json.loads(line) for line in lines], proc


def item_of(record: dict[str, Any]) -> TestItem:
    """A test as dtf's plugin recorded it (``--dtf-collect``, ``--dtf-stream``)."""
    return TestItem(
        str(record["nodeid"]),
        str(record["file"]),
        dict(record.get("resources") or {}),
        float(record.get("collect_s") or 0.0),
    )


def collect(paths: list[str], pytest_args: list[str], cwd: str, timeout: float = 600) -> Collection:
    records, proc = _collect_only(
        paths, pytest_args, cwd, "--dtf-collect", timeout, "collecting tests"
    )
    items = [item_of(r) for r in records]
    text = proc.stdout + proc.stderr
    m = re.search(r"(\d+) errors?\b", text.strip().splitlines()[-1] if text.strip() else "")
    return Collection(items, proc.returncode, text, int(m.group(1)) if m else 0)


def list_files(
    paths: list[str], pytest_args: list[str], cwd: str, timeout: float = 600
) -> tuple[list[str], int, str]:
    """The files pytest would collect under ``paths`` (relative to ``cwd``, in
    pytest's order), its exit code and output; no test module is imported."""
    records, proc = _collect_only(
        paths, pytest_args, cwd, "--dtf-list-files", timeout, "listing test files"
    )
    return [r["file"] for r in records], proc.returncode, proc.stdout + proc.stderr


_MARKER = re.compile(r"\bmark\.dtf\b|\bdtf\s*\(")


def uses_marker(path: str | os.PathLike[str]) -> bool:
    """Whether a file may apply dtf's marker (then its tests' resources are only
    known by collecting it). A plain text search: false positives only cost a
    central collection of that file."""
    try:
        return bool(_MARKER.search(Path(path).read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def conftests_use_marker(files: list[str], cwd: str) -> bool:
    """Whether a conftest.py on the way from ``cwd`` to any of ``files`` mentions
    the marker: a hook there may mark tests of files that never name it."""
    seen: set[str] = set()
    root = os.path.abspath(cwd)
    for f in files:
        d = os.path.dirname(os.path.abspath(os.path.join(cwd, f)))
        while d not in seen:
            seen.add(d)
            if uses_marker(os.path.join(d, "conftest.py")):
                return True
            if d == root or os.path.dirname(d) == d:
                break
            d = os.path.dirname(d)
    return False


def file_estimates(files: list[str], history: dict[str, float], cwd: str) -> dict[str, float]:
    """Seconds per file for files split whole: the sum of its tests' history
    where there is some, else its size at the rate (s/byte) the files with
    history show (or a default rate: ``DEFAULT_TEST_S`` per ~400 bytes)."""
    by_file: dict[str, float] = defaultdict(float)
    for nodeid, seconds in history.items():
        by_file[nodeid.partition("::")[0]] += seconds
    sizes = {}
    for f in files:
        try:
            sizes[f] = max(1, os.path.getsize(os.path.join(cwd, f)))
        except OSError:
            sizes[f] = 1
    known = [f for f in files if f in by_file]
    known_bytes = sum(sizes[f] for f in known)
    rate = sum(by_file[f] for f in known) / known_bytes if known_bytes else DEFAULT_TEST_S / 400
    return {f: by_file[f] if f in by_file else sizes[f] * rate for f in files}


def cache_file(paths: list[str], pytest_args: list[str], cwd: str, cache_dir: str) -> Path:
    """Where the collection of these files and arguments, as they are now, is cached."""
    return Path(cache_dir) / f"collect-{fingerprint(paths, pytest_args, cwd)}.jsonl"


def cached_collection(cache: Path) -> Collection | None:
    """The collection cached at ``cache`` (see :func:`cache_file`), if any."""
    if not cache.exists():
        return None
    items = [TestItem(**json.loads(line)) for line in cache.read_text("utf-8").splitlines()]
    return Collection(items, 0, "", 0, cached=True)


def save_collection(cache: Path, items: list[TestItem], files: list[str] | None = None) -> None:
    """Cache a collection; items collected by several chunks are put back in
    the order pytest lists ``files`` (the order inside each file is kept)."""
    if files is not None:
        rank = {f: n for n, f in enumerate(files)}
        items = [
            i for _, i in sorted(enumerate(items), key=lambda p: (rank.get(p[1].file, 0), p[0]))
        ]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(i.__dict__) + "\n" for i in items), encoding="utf-8")
    tmp.replace(cache)  # atomic: a concurrent reader never sees half a file


_CONFIG_FILES = ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", "conftest.py")


def fingerprint(paths: list[str], pytest_args: list[str], cwd: str) -> str:
    """A hash of everything a collection depends on that dtf can see cheaply:
    the arguments, the interpreter, and name/size/mtime of every Python and
    config file under the paths (and the config files of the invocation dir)."""
    h = hashlib.sha256()
    h.update(json.dumps([paths, pytest_args, sys.version, sys.executable, __version__]).encode())
    # dtf's own plugin does the recording: a changed plugin invalidates the cache.
    files: list[str] = [str(Path(__file__).with_name("plugin.py"))]
    files += [os.path.join(cwd, c) for c in _CONFIG_FILES]
    for p in paths:
        full = os.path.join(cwd, p.split("::")[0])
        if os.path.isdir(full):
            for root, dirs, names in os.walk(full):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
                files.extend(
                    os.path.join(root, n)
                    for n in names
                    if n.endswith((".py", ".ini", ".toml", ".cfg"))
                )
        else:
            files.append(full)
            files.extend(os.path.join(os.path.dirname(full), c) for c in _CONFIG_FILES)
    for f in sorted(set(files)):
        try:
            st = os.stat(f)
        except OSError:
            continue
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def collect_cached(
    paths: list[str], pytest_args: list[str], cwd: str, cache_dir: str | None
) -> Collection:
    """:func:`collect`, reusing the last clean collection of the same files."""
    if cache_dir is None:
        return collect(paths, pytest_args, cwd)
    cache = cache_file(paths, pytest_args, cwd, cache_dir)
    cached = cached_collection(cache)
    if cached is not None:
        return cached
    result = collect(paths, pytest_args, cwd)
    if result.exit_code == 0 and not result.errors and result.items:
        save_collection(cache, result.items)
    return result


def scan_file(path: str | os.PathLike[str]) -> dict[str, float]:
    """Resources a test file visibly needs from what it uses (GPU libraries)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    if any(p.search(text) for p in _GPU_PATTERNS):
        return {"GPU": 1.0}
    return {}


def requirements(items: list[TestItem], cwd: str) -> dict[str, dict[str, float]]:
    """Per node id: its markers' resources, raised to what its file uses."""
    by_file = {f: scan_file(os.path.join(cwd, f)) for f in sorted({i.file for i in items})}
    out: dict[str, dict[str, float]] = {}
    for i in items:
        res = dict(by_file[i.file])
        for k, v in i.resources.items():
            res[k] = max(v, res.get(k, 0.0))
        out[i.nodeid] = res
    return out


def _in_chunk(nodeids: list[str]) -> Counter[str]:
    return Counter(n.partition("::")[0] for n in nodeids if "::" in n)


def targets(nodeids: list[str], as_file: set[str]) -> list[str]:
    """``nodeids`` with every test of a file in ``as_file`` replaced by the file,
    once, where its first test was."""
    out: list[str] = []
    done: set[str] = set()
    for n in nodeids:
        file, sep, _ = n.partition("::")
        if not sep or file not in as_file:
            out.append(n)
        elif file not in done:
            done.add(file)
            out.append(file)
    return out


def assign(chunks: list[Chunk]) -> list[tuple[list[str], dict[str, dict[str, list[str]]] | None]]:
    """Each chunk's pytest targets and selection, so that the tests that run
    are what pytest collects *now*, whatever the collection these chunks were
    packed from (a cache, a history) says.

    Every chunk is given whole files. A file held entirely by one chunk runs as
    the file. A file split over several chunks is collected by each of them,
    and the ``select`` (``--dtf-select``, applied by the plugin after pytest's
    own ``-k``/``-m``) keeps each chunk to its share: the first chunk holding
    the file ("owner") runs everything in it *except* the tests assigned to
    the others, so tests that appeared since the collection was made (a data
    file that grew, a changed parametrization) run there, exactly once; tests
    that vanished are simply not collected. Nothing depends on the cache being
    right."""
    owner: dict[str, int] = {}
    held: dict[str, list[int]] = defaultdict(list)
    for c, chunk in enumerate(chunks):
        for f in _in_chunk(chunk.nodeids):
            owner.setdefault(f, c)
            held[f].append(c)
    split_files = {f for f, cs in held.items() if len(cs) > 1}
    out: list[tuple[list[str], dict[str, dict[str, list[str]]] | None]] = []
    for c, chunk in enumerate(chunks):
        mine = [f for f in _in_chunk(chunk.nodeids) if f in split_files]
        tgts = targets(chunk.nodeids, set(_in_chunk(chunk.nodeids)))
        if not mine:
            out.append((tgts, None))
            continue
        keep: dict[str, list[str]] = {}
        drop: dict[str, list[str]] = {}
        for f in mine:
            if owner[f] == c:
                drop[f] = [
                    n
                    for o in held[f]
                    if o != c
                    for n in chunks[o].nodeids
                    if n.partition("::")[0] == f
                ]
            else:
                keep[f] = [n for n in chunk.nodeids if n.partition("::")[0] == f]
        out.append((tgts, {"keep": keep, "drop": drop}))
    return out


def _requires_key(resources: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(resources.items()))


def plan(
    items: list[TestItem],
    slots: int,
    history: dict[str, float],
    *,
    requires: dict[str, dict[str, float]] | None = None,
    chunks_per_slot: int | None = None,
    estimates: dict[str, float] | None = None,
) -> list[Chunk]:
    """Pack ``items`` into chunks for ``slots`` parallel worker threads.

    ``history`` maps node id -> typical duration (s); ``estimates`` are guesses
    for node ids without history (whole files on a first run). Each group of tests that
    needs the same resources is packed on its own (it can only run on its
    workers), about two chunks per worker thread.
    """
    if slots < 1:
        raise OptionError("no worker threads to run tests on")
    if chunks_per_slot is None:
        # Two chunks per thread, with history or without (dtf.pytest.chunks-per-thread
        # sets it). Without history, so that rough guesses even out. With history,
        # measured on networkx: two per thread 0.75x pytest -n 2's wall time, one
        # per thread 0.79x (three interleaved rounds, docs/benchmarks.md). Before
        # dtf's plugin froze what collection made (gc.freeze), a pytest process
        # also ran its tests slower the more files it had collected, which two
        # chunks halved. What the estimates get wrong is fixed at the end by idle
        # threads splitting running chunks (dtf_core.run.balance).
        chunks_per_slot = 2
    typical = sorted(history.values())[len(history) // 2] if history else DEFAULT_TEST_S

    guesses = estimates or {}

    def cost(nodeid: str) -> float:
        return history.get(nodeid, guesses.get(nodeid, typical))

    groups: dict[tuple[tuple[str, float], ...], list[TestItem]] = defaultdict(list)
    for it in items:
        res = (requires or {}).get(it.nodeid, it.resources)
        groups[_requires_key(res)].append(it)

    # What collecting each file costs (its module's import: history of test
    # durations cannot see it), paid once by each chunk that holds the file.
    collect: dict[str, float] = defaultdict(float)
    for it in items:
        collect[it.file] = max(collect[it.file], it.collect_s)

    order = {i.nodeid: n for n, i in enumerate(items)}
    chunks: list[Chunk] = []
    for key, group in sorted(groups.items()):
        files = {i.file for i in group}
        total = sum(cost(i.nodeid) for i in group) + sum(collect[f] for f in files)
        # Never so many chunks that process start-up dominates the work.
        n_chunks = max(1, min(slots * chunks_per_slot, int(total / PROCESS_S) or 1, len(group)))
        share = total / n_chunks
        # Units to pack: whole files, or single tests of a file bigger than a share.
        by_file: dict[str, list[TestItem]] = defaultdict(list)
        for i in group:
            by_file[i.file].append(i)
        units: list[tuple[float, list[TestItem]]] = []
        for file, tests in by_file.items():
            file_cost = sum(cost(t.nodeid) for t in tests) + collect[file]
            if file_cost > share and len(tests) > 1:
                # Each chunk that gets some of its tests collects it whole.
                units.extend((cost(t.nodeid) + collect[file] / len(tests), [t]) for t in tests)
            else:
                units.append((file_cost, tests))
        # Longest processing time first onto the least loaded bin.
        units.sort(key=lambda u: (-u[0], u[1][0].nodeid))
        bins: list[tuple[float, int]] = [(0.0, b) for b in range(n_chunks)]
        contents: list[list[TestItem]] = [[] for _ in range(n_chunks)]
        for c, tests in units:
            load, b = heapq.heappop(bins)
            contents[b].extend(tests)
            heapq.heappush(bins, (load + c, b))
        loads = {b: load for load, b in bins}
        for b, tests in enumerate(contents):
            if not tests:
                continue
            # Keep pytest's own order inside a chunk: fixtures scoped to a module
            # or class are then set up once, as in a serial run.
            tests.sort(key=lambda t: order[t.nodeid])
            chunks.append(
                Chunk(
                    nodeids=[t.nodeid for t in tests],
                    files=sorted({t.file for t in tests}),
                    requires=dict(key),
                    estimate_s=loads[b] + PROCESS_S,
                )
            )
    chunks.sort(key=lambda c: -c.estimate_s)  # the longest go first
    return chunks
