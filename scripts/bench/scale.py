"""Scale: how dtf's coordinator grows with tasks per run and with workers on one scheduler.

Tiny in-process benchmark tasks (``_tiny:tiny``, one sample each, as in dispatch.py) run
through dtf's ``Coordinator`` against a Dask scheduler of its own (``--scheduler`` mode), and,
for the ratio, through raw Dask: ``client.map`` over the same batches dtf makes (the same Dask
work; the difference is dtf's own cost), and with one Dask task per benchmark where that
finishes in reasonable time (``--raw1-max``).

Processes, all on 127.0.0.1: one Dask scheduler; one process hosting every simulated worker
(``distributed.Worker`` objects, no nanny, nthreads=1 each, on one event loop: the lightweight
workers distributed's own tests use for many-worker cases); and one fresh process per measured
run that holds the client (dtf's Coordinator and its DuckDB file, or raw ``client.map``). That
last process is what the table measures: wall seconds, peak RSS (psutil, sampled every 50 ms
over the whole process), CPU seconds during the run, and the DuckDB file size after it. The
scheduler's CPU during the run is shown too: where it, not the coordinator, is busy, Dask is
the limit.

Sizes: --tasks (default 1000,10000,100000) on 2 workers; --workers (default 10,100,500) with
--worker-tasks tasks each. Each measured run is a subprocess bounded by --limit seconds; a run
that does not finish is a row saying so. Everything this script starts it stops, also when
interrupted; the cluster processes exit by themselves if this script dies.

--profile N runs dtf once more at N tasks (--profile-workers, 2) under cProfile and prints where the
coordinator's main thread spends its time. --estimates gives the Coordinator a duration
estimate for every task, as a run with history has (`dtf-core test` passes them).

    .venv/bin/python scripts/bench/scale.py [--tasks 1000,10000] [--workers 10,100] \\
        [--worker-tasks 10000] [--limit 900] [--profile 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, REPO]  # this checkout's dtf_core, also in the child processes

# Simulated workers are many in one process: the per-worker pollers that measure the
# process (memory monitor, system monitor, profiler) would measure the same process hundreds
# of times a second, which no real worker does. Set before distributed is imported.
SIM_CONFIG = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    # Each worker's system monitor (psutil) every 2 s: 300 simulated workers
    # took 85 s and 28 CPU s to start; with 60 s, 17.5 s and 8 CPU s.
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "60s",
    "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s",
    "DASK_LOGGING__DISTRIBUTED": "error",
}


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, **SIM_CONFIG, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, path]))}


# ----------------------------------------------------------------- child roles
def _orphan_guard(parent: int, ttl: float) -> None:
    """Exit when the parent is gone or ``ttl`` s have passed: nothing outlives the bench."""
    end = time.monotonic() + ttl
    while time.monotonic() < end and os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def role_scheduler(addr_file: str, ttl: float) -> None:
    from distributed import Scheduler

    async def main() -> None:
        async with Scheduler(
            host="127.0.0.1", port=0, dashboard=False, dashboard_address="127.0.0.1:0"
        ) as s:
            with open(addr_file + ".tmp", "w") as f:
                f.write(s.address)
            os.replace(addr_file + ".tmp", addr_file)
            await asyncio.sleep(ttl)

    asyncio.run(main())


def role_workers(address: str, n: int, ttl: float, scratch: str) -> None:
    from distributed import Worker

    async def main() -> None:
        # A directory each: workers sharing one scan and lock each other's scratch
        # space on start, quadratic in their number (250 of 500 had started after 250 s).
        workers = [
            Worker(
                address,
                nthreads=1,
                host="127.0.0.1",
                name=f"sim-{i}",
                memory_limit=0,
                local_directory=os.path.join(scratch, f"sim-{i}"),
            )
            for i in range(n)
        ]
        for i in range(0, n, 50):  # 50 at a time: the scheduler registers them in turn
            await asyncio.gather(*workers[i : i + 50])
        with open(os.path.join(scratch, "ready"), "w") as f:
            f.write("ready")
        await asyncio.sleep(ttl)

    asyncio.run(main())


class Peak:
    """Peak RSS of this process, sampled every 50 ms by psutil (and ru_maxrss, the kernel's)."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> int:
        import resource

        self._stop.set()
        self._thread.join()
        kernel = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(self.peak, kernel)


def role_drive(args: argparse.Namespace) -> None:
    """One measured run in this fresh process; prints one JSON line."""
    import dispatch
    import psutil
    from distributed import Client

    peak = Peak()
    n, mode = args.n, args.mode
    client = Client(args.address, timeout=30, set_as_default=False)
    threads = sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
    sched = psutil.Process(args.scheduler_pid)
    # The simulated workers' process (0: not told): where the tasks' own cost shows.
    workers = psutil.Process(args.workers_pid or args.scheduler_pid)
    proc = psutil.Process()
    out: dict = {"mode": mode, "n": n}
    if mode == "dtf":
        from dtf_core.run.coordinator import Coordinator
        from dtf_core.store import Store

        suite = dispatch.make_suite(n)
        estimates = {t.task_id: 0.001 for t in suite.tasks} if args.estimates else None
        with Store(args.db) as store:
            coord = Coordinator(client, store, estimates=estimates)
            c0, s0, t0 = proc.cpu_times(), sched.cpu_times(), time.perf_counter()
            w0 = workers.cpu_times()
            if args.profile_out:
                import cProfile

                prof = cProfile.Profile()
                result = prof.runcall(coord.run, suite)
                prof.dump_stats(args.profile_out)
            else:
                result = coord.run(suite)
            wall = time.perf_counter() - t0
            c1, s1, w1 = proc.cpu_times(), sched.cpu_times(), workers.cpu_times()
        rss = peak.stop()  # before the check below reads the file
        import duckdb

        with duckdb.connect(args.db, read_only=True) as con:
            row = con.execute("SELECT count(*) FROM samples WHERE run_id = ?", [result.run_id])
            samples = row.fetchone()[0]  # type: ignore[index]
        if result.status != "passed" or samples != n:
            sys.exit(f"dtf run ended {result.status} with {samples} samples of {n}")
        out["db_bytes"] = sum(
            os.path.getsize(p) for p in (args.db, args.db + ".wal") if os.path.exists(p)
        )
    else:
        items = dispatch.batches(n, threads) if mode == "rawb" else list(range(n))
        fn = dispatch._tiny.tiny_batch if mode == "rawb" else dispatch._tiny.tiny
        client.gather(client.map(fn, [[0]] if mode == "rawb" else [0], pure=False))  # warm
        c0, s0, t0 = proc.cpu_times(), sched.cpu_times(), time.perf_counter()
        w0 = workers.cpu_times()
        got = client.gather(client.map(fn, items, pure=False))
        wall = time.perf_counter() - t0
        c1, s1, w1 = proc.cpu_times(), sched.cpu_times(), workers.cpu_times()
        rss = peak.stop()
        assert len(got) == len(items)
    client.close()
    out.update(
        wall_s=wall,
        cpu_s=(c1.user + c1.system) - (c0.user + c0.system),
        sched_cpu_s=(s1.user + s1.system) - (s0.user + s0.system),
        workers_cpu_s=(w1.user + w1.system) - (w0.user + w0.system),
        rss=rss,
        threads=threads,
    )
    print("RESULT " + json.dumps(out), flush=True)


# ------------------------------------------------------------------- the parent
class SimCluster:
    """A scheduler process and one process of ``n`` lightweight workers, on 127.0.0.1."""

    def __init__(self, tmp: str, n: int, ttl: float) -> None:
        self.procs: list[subprocess.Popen] = []
        addr_file = os.path.join(tmp, f"sched-{n}.addr")
        me = [sys.executable, os.path.abspath(__file__), "--role"]
        self._start([*me, "scheduler", "--addr-file", addr_file, "--ttl", str(ttl)])
        self.scheduler_pid = self.procs[0].pid
        self.address = self._wait_file(addr_file, 60)
        self._start([*me, "workers", "--address", self.address, "--n", str(n), "--ttl", str(ttl),
                     "--addr-file", os.path.join(tmp, f"scratch-{n}")])  # fmt: skip
        # Not Client.wait_for_workers: it asks for every worker's full record
        # ten times a second, which at hundreds of workers keeps the scheduler
        # too busy to register them.
        t0 = time.perf_counter()
        self.workers_pid = self.procs[1].pid
        self._wait_file(os.path.join(tmp, f"scratch-{n}", "ready"), max(120, n * 1.0))
        self.start_s = time.perf_counter() - t0

    def _start(self, cmd: list[str]) -> None:
        self.procs.append(subprocess.Popen(cmd, env=child_env(), stdin=subprocess.DEVNULL))

    @staticmethod
    def _wait_file(path: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > end:
                raise SystemExit(f"{path} did not appear within {timeout:g}s")
            time.sleep(0.1)
        with open(path) as f:
            return f.read().strip()

    def close(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def drive(cluster: SimCluster, tmp: str, mode: str, n: int, args, profile: str = "") -> dict:
    db = os.path.join(tmp, f"{mode}-{n}-{time.monotonic_ns()}.duckdb")
    cmd = [sys.executable, os.path.abspath(__file__), "--role", "drive", "--mode", mode]
    cmd += ["--n", str(n), "--address", cluster.address, "--db", db]
    cmd += [
        "--scheduler-pid",
        str(cluster.scheduler_pid),
        "--workers-pid",
        str(cluster.workers_pid),
    ]
    cmd += ["--estimates"] * args.estimates + (["--profile-out", profile] if profile else [])
    try:
        out = subprocess.run(
            cmd, env=child_env(), capture_output=True, text=True, timeout=args.limit
        )
    except subprocess.TimeoutExpired:
        return {"mode": mode, "n": n, "timeout": args.limit}
    finally:
        for p in (db, db + ".wal"):
            if os.path.exists(p):
                os.unlink(p)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    sys.exit(f"{mode} at {n} failed (rc {out.returncode}):\n{out.stdout}\n{out.stderr[-3000:]}")


HEADER = (
    "| path              |   tasks | workers |  wall s | tasks/s | peak RSS MiB | CPU s "
    "| CPU us/task | sched CPU s | workers CPU s | DB MiB | wall vs rawb | wall vs raw1 |"
)


def fmt_row(label: str, workers: int, r: dict, results: dict) -> str:
    widths = [len(c) - 2 for c in HEADER.split("|")[1:-1]]
    if "timeout" in r:
        cells = [f"did not finish in {r['timeout']:g} s"] + [""] * 9
    else:
        ratios = []
        for base in (results.get("rawb"), results.get("raw1")):
            ok = base is not None and "timeout" not in base and base is not r
            ratios.append(f"{r['wall_s'] / base['wall_s']:.2f}" if ok else "-")  # type: ignore[index]
        cells = [
            f"{r['wall_s']:.2f}", f"{r['n'] / r['wall_s']:.0f}", f"{r['rss'] / 2**20:.0f}",
            f"{r['cpu_s']:.2f}", f"{r['cpu_s'] / r['n'] * 1e6:.0f}", f"{r['sched_cpu_s']:.2f}",
            f"{r.get('workers_cpu_s', 0.0):.2f}",
            f"{r['db_bytes'] / 2**20:.1f}" if "db_bytes" in r else "-", *ratios,
        ]  # fmt: skip
    cells = [label, str(r["n"]), str(workers), *cells]
    return (
        "| "
        + " | ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        + " |"
    )


def measure(cluster: SimCluster, tmp: str, n: int, workers: int, args) -> list[str]:
    rows = []
    modes = ["rawb", "dtf"] + (["raw1"] if n <= args.raw1_max else [])
    results = {m: drive(cluster, tmp, m, n, args) for m in modes}
    names = {"rawb": "raw, same batches", "dtf": "dtf Coordinator", "raw1": "raw, 1 per task"}
    for m in modes:
        rows.append(fmt_row(names[m], workers, results[m], results))
        print(rows[-1], flush=True)
    return rows


def parse_sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()] if text else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", default="1000,10000,100000", help="tasks per run (2 workers)")
    ap.add_argument("--workers", default="10,100,500", help="simulated workers, one scheduler")
    ap.add_argument("--worker-tasks", type=int, default=10000, help="tasks per run by workers")
    ap.add_argument("--limit", type=float, default=900, help="seconds one measured run may take")
    ap.add_argument("--raw1-max", type=int, default=10000, help="largest raw 1-per-task run")
    ap.add_argument("--profile", type=int, default=0, help="cProfile dtf at N tasks")
    ap.add_argument("--profile-workers", type=int, default=2, help="... on this many workers")
    ap.add_argument("--estimates", action="store_true", help="give dtf an estimate per task")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    for hidden in ("--addr-file", "--address", "--db", "--mode", "--profile-out"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ttl", type=float, default=3600.0, help=argparse.SUPPRESS)
    ap.add_argument("--scheduler-pid", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workers-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "drive":
        return role_drive(args)
    if args.role in ("scheduler", "workers"):
        threading.Thread(target=_orphan_guard, args=(os.getppid(), args.ttl), daemon=True).start()
        if args.role == "scheduler":
            return role_scheduler(args.addr_file, args.ttl)
        return role_workers(args.address, args.n, args.ttl, args.addr_file)
    os.environ.update(SIM_CONFIG)
    plan = [(n, 2) for n in parse_sizes(args.tasks)]
    plan += [(args.worker_tasks, w) for w in parse_sizes(args.workers)]
    ttl = args.limit * 4 * (len(plan) + 1) + 600
    print(f"load before: {os.getloadavg()}", flush=True)
    print(HEADER + "\n|" + "|".join("-" * len(c) for c in HEADER.split("|")[1:-1]) + "|")
    tables: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        by_workers: dict[int, list[tuple[int, int]]] = {}
        for n, w in plan:
            by_workers.setdefault(w, []).append((n, w))
        if args.profile:
            by_workers.setdefault(args.profile_workers, [])
        for w, sizes in by_workers.items():
            cluster = SimCluster(tmp, w, ttl)
            try:
                print(f"(cluster of {w} workers up in {cluster.start_s:.1f} s)", flush=True)
                for n, _ in sizes:
                    tables += measure(cluster, tmp, n, w, args)
                if args.profile and w == args.profile_workers:
                    path = os.path.join(tmp, "coord.prof")
                    drive(cluster, tmp, "dtf", args.profile, args, profile=path)
                    import pstats

                    for order in ("cumulative", "tottime"):
                        pstats.Stats(path).sort_stats(order).print_stats(25)
            finally:
                cluster.close()
    print(f"load after: {os.getloadavg()}\n\n" + HEADER)
    print("\n".join(tables))


if __name__ == "__main__":
    main()
