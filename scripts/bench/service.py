"""Service load: S concurrent submitters x N tasks against `dtf-core serve`.

Real processes on 127.0.0.1: `dtf-core scheduler`, two `dask worker --no-nanny`
(1 thread each, signing results), `dtf-core serve` (verifying them). Each
submitter thread uploads a suite of N tiny benchmark tasks, follows its events
as `dtf-core submit` does, then reads its status, tasks,
results and JUnit report, while a watcher lists runs and workers at 10 Hz.
Latency is measured on every non-waiting API call (the long-poll `events`
call waits on purpose and is not counted). Throughput counts until the last run
ended (RunFinished), before the reports are fetched. Afterwards the service is
stopped and its DuckDB file checked: every one of the S x N results exactly
once. Baselines, on the same scheduler and workers: the in-process Coordinator
(what `dtf-core run --scheduler` does) running the S x N tasks as one suite,
and running the S suites one after another.

    .venv/bin/python scripts/bench/service.py [--submitters 20] [--tasks 50] [--load-rounds 3]

``--whole-process --tasks 1000 --rounds 3``: instead, one suite through
`dtf-core submit` against `dtf-core run --scheduler` as whole processes on the
same cluster, alternated rounds, with the 10 Hz viewer during each submit.
``--serve-with scripts/bench/_serveprobe.py`` starts serve with probes inside it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
PY = sys.executable
# How serve is started; --serve-with puts a profiling wrapper in front of the CLI.
SERVE = [PY, "-m", "dtf_core.cli"]

from _measure import (  # noqa: E402
    Keys,
    api_histogram,
    api_p99,
    free_port,
    pct,
    spread,
    timed_process,
    wait_for_workers,
)

from dtf_core import reporting  # noqa: E402
from dtf_core.cluster import embedded as cluster  # noqa: E402
from dtf_core.model import Suite, TaskKind, TaskSpec  # noqa: E402
from dtf_core.run.coordinator import Coordinator  # noqa: E402
from dtf_core.service import bundle  # noqa: E402
from dtf_core.service.client import CoordinatorClient  # noqa: E402
from dtf_core.store import Store, StoreReader  # noqa: E402


def write_suite(root: Path, name: str, n: int) -> None:
    root.mkdir(parents=True)
    shutil.copy(HERE / "_tiny.py", root / "_tiny.py")
    (root / "suite.toml").write_text(
        f'[suite]\nname = "{name}"\n[[task]]\nname = "tiny"\nkind = "benchmark"\n'
        f'function = "_tiny:tiny"\nrepeat = 1\nwarmup = 0\nparams = {{ i = {list(range(n))} }}\n'
    )


Latencies = dict[str, list[float]]  # API call -> seconds of each


def timed(lat: Latencies, name: str, fn, *args):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn(*args)
    lat.setdefault(name, []).append(time.perf_counter() - t0)
    return value


def submitter(
    client: CoordinatorClient, root: Path, lat: Latencies, out: dict, ended: list[float]
) -> None:
    # What `dtf-core submit` does: upload, follow the events (long-poll: not
    # timed, it waits on purpose), then read the outcome and the reports.
    run = timed(lat, "submit", client.submit, "suite.toml", bundle.pack(root, 10**7), {})
    run_id = run["run_id"]
    for _ in client.follow(run_id):
        pass
    ended.append(time.perf_counter())
    status = timed(lat, "run", client.run, run_id)["status"]
    out[run_id] = (status, len(timed(lat, "tasks", client.tasks, run_id)))
    timed(lat, "results", client.results, run_id)
    timed(lat, "report", client.report, run_id, "junit")


def watcher(client: CoordinatorClient, lat: Latencies, stop: threading.Event) -> None:
    """A dashboard user during the load: the run list and the workers, 10 times a second."""
    while not stop.is_set():
        timed(lat, "runs (watcher)", client.runs)
        timed(lat, "workers (watcher)", client.workers)
        stop.wait(0.1)


def tiny_suite(name: str, n: int) -> Suite:
    tasks = [
        TaskSpec(task_id=f"tiny[i={i}]", name="tiny", kind=TaskKind.BENCHMARK, root=str(HERE),
                 timeout=60.0, retries=0, function="_tiny:tiny", params={"i": i}, repeat=1,
                 warmup=0)
        for i in range(n)
    ]  # fmt: skip
    return Suite(name=name, path=str(HERE / "service.py"), tasks=tasks)


def baselines(scheduler: str, runs: int, n: int, db: str) -> tuple[float, float, float]:
    """Seconds for runs x n tasks in-process: as one suite; as ``runs`` suites in
    turn; and as ``runs`` suites in turn each followed by its summary (what
    `dtf-core run` builds before writing its reports, and what serve builds for
    each submitter's results)."""
    with Store(db) as store, cluster.open_cluster(scheduler) as handle:
        Coordinator(handle.client, store).run(tiny_suite("warm", n))  # imports on the workers
        reporting.build_summary(store, Coordinator(handle.client, store).run(
            tiny_suite("warm", n)).run_id)  # fmt: skip
        t0 = time.perf_counter()
        one = Coordinator(handle.client, store).run(tiny_suite("one", runs * n))
        t1 = time.perf_counter()
        many = [Coordinator(handle.client, store).run(tiny_suite(f"s{i}", n)) for i in range(runs)]
        t2 = time.perf_counter()
        summed = []
        for i in range(runs):
            summed.append(Coordinator(handle.client, store).run(tiny_suite(f"s{i}", n)))
            reporting.build_summary(store, summed[-1].run_id)
        t3 = time.perf_counter()
    if {r.status for r in [one, *many, *summed]} != {"passed"}:
        sys.exit("a baseline run did not pass")
    return t1 - t0, t2 - t1, t3 - t2


@contextlib.contextmanager
def external_cluster(tmp: Path, keys: Keys, log: IO[bytes]) -> Iterator[Deployment]:
    """scheduler + 2 workers + serve as real processes; stopped (by pid) on the way out."""
    procs: list[subprocess.Popen] = []
    sport, aport = free_port(), free_port()
    dep = Deployment(f"tcp://127.0.0.1:{sport}", f"http://127.0.0.1:{aport}",
                     str(tmp / "service.duckdb"), procs)  # fmt: skip

    def start(argv: list[str]) -> None:
        procs.append(subprocess.Popen(argv, stdout=log, stderr=log, cwd=tmp))

    try:
        start([PY, "-m", "dtf_core.cli", "scheduler", "--port", str(sport),
               "--dashboard-address", "none", "--secret-file", str(keys.worker_key)])  # fmt: skip
        for name in ("w0", "w1"):  # a token admits one live worker at a time
            start([PY, "-m", "distributed.cli.dask_worker", dep.scheduler, "--name", name,
                   "--nthreads", "1", "--no-nanny", "--no-dashboard",
                   "--preload", "dtf_core.worker_preload",
                   "--dtf-token-file", str(keys.worker_token_file(name)),
                   "--dtf-result-key-file", str(keys.result_key)])  # fmt: skip
        start([*SERVE, "serve", "--scheduler", dep.scheduler, "--db", dep.db,
               "--port", str(aport), "--secret-file", str(keys.secret),
               "--result-key-file", str(keys.result_key)])  # fmt: skip
        wait_for_workers(CoordinatorClient(dep.url, keys.token("viewer")), 2, 60, Path(log.name))
        yield dep
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(timeout=30)


@dataclass
class Deployment:
    scheduler: str
    url: str
    db: str
    procs: list[subprocess.Popen]

    def stop_serve(self) -> None:
        serve = self.procs.pop()
        os.kill(serve.pid, signal.SIGTERM)  # it releases the database
        serve.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submitters", type=int, default=20)
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--no-baselines", action="store_true", help="the service only (profiling)")
    ap.add_argument(
        "--whole-process",
        action="store_true",
        help="`dtf-core submit` against `dtf-core run --scheduler`, as processes",
    )
    ap.add_argument("--rounds", type=int, default=3, help="with --whole-process")
    ap.add_argument(
        "--load-rounds",
        type=int,
        default=1,
        help="concurrent load: rounds of (serve load, in-process baselines), alternated",
    )
    ap.add_argument(
        "--serve-with",
        metavar="SCRIPT",
        help="start serve as `python SCRIPT serve ...` (a profiling wrapper)",
    )
    args = ap.parse_args()
    if args.serve_with:
        SERVE[1:] = [str(Path(args.serve_with).resolve())]
    if args.whole_process:
        whole_process(args.tasks, args.rounds)
    else:
        concurrent_load(args)


def serve_round(
    url: str, token: str, tmp: Path, args: argparse.Namespace, r: int, lat: Latencies
) -> tuple[float, dict[str, tuple[str, int]]]:
    """One load: S submitter threads at once and the 10 Hz watcher; seconds
    until the last run ended, and each run's (status, tasks)."""
    roots = []
    for s in range(args.submitters):
        write_suite(tmp / f"suite{r}-{s}", f"load-{s}", args.tasks)
        roots.append(tmp / f"suite{r}-{s}")
    outcomes: dict[str, tuple[str, int]] = {}
    ended: list[float] = []
    threads = [
        threading.Thread(
            target=submitter,
            args=(CoordinatorClient(url, token, timeout=300), root, lat, outcomes, ended),
        )
        for root in roots
    ]
    stop = threading.Event()
    watch = threading.Thread(target=watcher, args=(CoordinatorClient(url, token), lat, stop))
    t0 = time.perf_counter()
    watch.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watch.join()
    bad = {k: v for k, v in outcomes.items() if v != ("passed", args.tasks)}
    if len(outcomes) != args.submitters or bad:
        sys.exit(f"runs did not all pass: {bad or outcomes}")
    return max(ended) - t0, outcomes


def concurrent_load(args: argparse.Namespace) -> None:
    total = args.submitters * args.tasks
    tmp = Path(tempfile.mkdtemp(prefix="dtf-bench-service-"))
    keys = Keys(tmp)
    token = keys.token("submitter")
    log = open(tmp / "processes.log", "wb")  # noqa: SIM115
    rounds: list[tuple[float, float, float, float]] = []  # serve, one, many, many+summaries
    try:
        with external_cluster(tmp, keys, log) as dep:
            url, scheduler, db = dep.url, dep.scheduler, dep.db
            warm = tmp / "warm"
            write_suite(warm, "warm", args.tasks)
            submitter(CoordinatorClient(url, token, timeout=60), warm, {}, {}, [])
            latencies: Latencies = {}
            run_ids: list[str] = []
            hist0 = api_histogram(url, token)
            for r in range(args.load_rounds):
                base = (1.0, 1.0, 1.0)
                if not args.no_baselines and r % 2 == 1:  # alternate who goes first
                    base = baselines(scheduler, args.submitters, args.tasks, str(tmp / "b.duckdb"))
                service_s, outcomes = serve_round(url, token, tmp, args, r, latencies)
                run_ids += list(outcomes)
                if not args.no_baselines and r % 2 == 0:
                    base = baselines(scheduler, args.submitters, args.tasks, str(tmp / "b.duckdb"))
                rounds.append((service_s, *base))
            hist1 = api_histogram(url, token)
            dep.stop_serve()
            with StoreReader(db) as store:
                rows = [a for r in run_ids for a in store.attempts(r)]
                distinct = {(a["run_id"], a["task_id"]) for a in rows}
                samples = sum(len(store.benchmark_samples(r)) for r in run_ids)
            want = total * args.load_rounds
            once = len(rows) == want and len(distinct) == want and samples == want
    finally:
        log.close()
    service_s = statistics.median(x[0] for x in rounds)
    one_s = statistics.median(x[1] for x in rounds)
    many_s = statistics.median(x[2] for x in rounds)
    summed_s = statistics.median(x[3] for x in rounds)
    if len(rounds) > 1:
        print("| round | serve s | in-process in turn s | ratio | with summaries s | ratio |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n, (sv, _, mn, sm) in enumerate(rounds, 1):
            print(f"| {n} | {sv:.2f} | {mn:.2f} | {sv / mn:.2f} | {sm:.2f} | {sv / sm:.2f} |")
        ratios = sorted(sv / mn for sv, _, mn, _ in rounds)
        print(f"serve / one after another, per round: median {statistics.median(ratios):.2f} "
              f"(range {ratios[0]:.2f}-{ratios[-1]:.2f})")  # fmt: skip
    print(f"service: {args.submitters} submitters x {args.tasks} tiny tasks = {total}")
    print(f"results in DuckDB: {len(rows)} attempts, {len(distinct)} distinct tasks, "
          f"{samples} samples -> exactly once: {'yes' if once else 'NO'}")  # fmt: skip
    every = [x for v in latencies.values() for x in v]
    print(f"API calls timed: {len(every)} (submit, status, tasks, results, report; "
          "a watcher listing runs and workers at 10 Hz)")  # fmt: skip
    print(f"| {'path':<44} | {'wall s':>7} | {'tasks/s':>8} | {'ratio':>6} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 10}|{'-' * 8}|")
    for name, wall in (
        ("in-process Coordinator, one suite", one_s),
        (f"in-process, {args.submitters} suites one after another", many_s),
        (f"in-process, {args.submitters} suites, each with its summary", summed_s),
        (f"serve, {args.submitters} concurrent submits (signed+verified)", service_s),
    ):
        print(f"| {name:<44} | {wall:7.2f} | {total / wall:8.0f} | {wall / one_s:6.2f} |")
    ms = [x * 1000 for x in every]
    print(f"API latency: p50 {pct(ms, 0.5):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, "
          f"max {max(ms):.1f} ms, mean {statistics.mean(ms):.1f} ms")  # fmt: skip
    n_all, p99_all = api_p99(hist0, hist1, skip=("/events",))
    n_reads, p99_reads = api_p99(hist0, hist1, skip=("/events", "/results", "/report"))
    print(f"serve's own time (its /metrics, bucket bounds): p99 <= {p99_all:.0f} ms over "
          f"{n_all} calls; without results/report (a run's summary) <= {p99_reads:.0f} ms "
          f"over {n_reads}")  # fmt: skip
    for name, values in sorted(latencies.items()):
        call = [x * 1000 for x in values]
        print(f"  {name:<18} n={len(call):<4} p50 {pct(call, 0.5):7.1f} ms  "
              f"p99 {pct(call, 0.99):7.1f} ms")  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)
    if not once:
        sys.exit(1)


def whole_process(n: int, rounds: int) -> None:
    """One suite of ``n`` tiny tasks through `dtf-core submit` and through
    `dtf-core run --scheduler` (its own DuckDB file), both whole processes on the
    same scheduler and workers, alternated round by round (AB, BA, ...); a viewer
    polls /v1/runs and /v1/workers at 10 Hz during every submit."""
    tmp = Path(tempfile.mkdtemp(prefix="dtf-bench-whole-"))
    keys = Keys(tmp)
    token_file = tmp / "submitter.jwt"
    token_file.write_text(keys.token("submitter"))
    token_file.chmod(0o600)
    suite = tmp / "suite"
    write_suite(suite, "whole", n)
    latencies: Latencies = {}
    walls: dict[str, list[float]] = {"submit": [], "run": []}
    cpus: dict[str, list[float]] = {"submit": [], "run": []}
    log = open(tmp / "processes.log", "wb")  # noqa: SIM115
    try:
        with external_cluster(tmp, keys, log) as dep:
            cmds = {
                "submit": [PY, "-m", "dtf_core.cli", "submit", str(suite / "suite.toml"),
                           "--coordinator", dep.url, "--token-file", str(token_file), "-q"],
                "run": [PY, "-m", "dtf_core.cli", "run", str(suite / "suite.toml"),
                        "--scheduler", dep.scheduler, "--db", str(tmp / "run.duckdb"), "-q"],
            }  # fmt: skip
            viewer = CoordinatorClient(dep.url, keys.token("viewer"))
            for cmd in cmds.values():  # imports on the workers, both databases made
                timed_process(cmd, str(tmp))
            hist0 = api_histogram(dep.url, keys.token("viewer"))
            for r in range(rounds):
                for which in ("submit", "run") if r % 2 == 0 else ("run", "submit"):
                    stop = threading.Event()
                    watch = threading.Thread(target=watcher, args=(viewer, latencies, stop))
                    if which == "submit":
                        watch.start()
                    wall, cpu = timed_process(cmds[which], str(tmp))
                    stop.set()
                    if which == "submit":
                        watch.join()
                    walls[which].append(wall)
                    cpus[which].append(cpu)
            hist1 = api_histogram(dep.url, keys.token("viewer"))
    finally:
        log.close()
    ratios = [s / r for s, r in zip(walls["submit"], walls["run"], strict=True)]
    print(f"whole processes: one suite of {n} tiny tasks, {rounds} rounds alternated; "
          "scheduler + 2 workers + serve as processes")  # fmt: skip
    print(f"| {'command':<26} | {'wall s, median (range)':>24} | {'CPU s (client)':>16} |")
    print(f"|{'-' * 28}|{'-' * 26}|{'-' * 18}|")
    for which, name in (("run", "dtf-core run --scheduler"), ("submit", "dtf-core submit")):
        print(f"| {name:<26} | {spread(walls[which]):>24} | {spread(cpus[which]):>16} |")
    print(f"submit / run, per round: {spread(ratios)} (goal <= 1.5)")
    print("viewer at 10 Hz during the submits (client side, ms):")
    for name, values in sorted(latencies.items()):
        call = [x * 1000 for x in values]
        print(f"  {name:<18} n={len(call):<4} p50 {pct(call, 0.5):7.1f}  "
              f"p99 {pct(call, 0.99):7.1f}  max {max(call):7.1f}")  # fmt: skip
    for route in ("/v1/runs", "/v1/workers"):
        pick = {k: v for k, v in hist1.items() if k == route}
        n_calls, p99 = api_p99({k: v for k, v in hist0.items() if k == route}, pick)
        print(f"serve's own {route}: p99 <= {p99:.0f} ms over {n_calls} calls (bucket bound)")
    n_all, p99_all = api_p99(hist0, hist1, skip=("/events",))
    print(f"serve's own, every non-waiting call: p99 <= {p99_all:.0f} ms over {n_all}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
