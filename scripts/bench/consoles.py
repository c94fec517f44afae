"""Attached consoles during a run: C consoles following `dtf-core serve` vs none.

Real processes on 127.0.0.1: `dtf-core scheduler`, two `dask worker --no-nanny`
(1 thread each), `dtf-core serve`. A run of N tiny benchmark tasks is submitted
and followed as `dtf-core submit` does, once with no console attached and once
with C consoles attached (alternating, --rounds times each, after a warm-up
run). A console is what `dtf-tui --coordinator` runs minus the drawing: an
``HttpSource`` whose follower holds ``/v1/console/stream`` and wakes a poll loop
that refreshes at most every ``MIN_POLL_GAP`` (and once a second regardless),
exactly as ``DtfApp`` does. With --console-processes N the consoles live in N
processes of their own, as users' terminals do.

Reported: the run's wall time with consoles over without (goal <= 1.2x; each
round pairs a bare run with an attached one, and the median of those ratios is
the figure); an API probe (`/v1/runs`, `/v1/workers` at 10 Hz, from this
process) during both kinds of run (goal p99 < 100 ms); the consoles' poll time;
wake-to-refresh time and the age of the snapshot shown (its build started until
a console has it); requests per second per console, and serve's own latency
histogram; serve's CPU seconds per run (utime + stime from /proc). Builds stop
within ``INTEREST_S`` of the last console leaving: the script waits that long
before each bare run.

    .venv/bin/python scripts/bench/consoles.py [--consoles 20] [--tasks 1000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable

from _measure import (  # noqa: E402
    Histogram,
    Keys,
    api_histogram,
    api_p99,
    free_port,
    pct,
    wait_for_workers,
)

from dtf_core.service import bundle  # noqa: E402
from dtf_core.service.client import CoordinatorClient  # noqa: E402
from dtf_core.service.views.console import INTEREST_S  # noqa: E402
from dtf_tui.app import MIN_POLL_GAP  # noqa: E402
from dtf_tui.sources.http import HttpSource  # noqa: E402


def cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_suite(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "_tiny.py", root / "_tiny.py")
    (root / "suite.toml").write_text(
        '[suite]\nname = "consoles"\n[[task]]\nname = "tiny"\nkind = "benchmark"\n'
        f'function = "_tiny:tiny"\nrepeat = 1\nwarmup = 0\nparams = {{ i = {list(range(n))} }}\n'
    )


class Console:
    """DtfApp's poll loop without Textual: woken by the follower, bounded by MIN_POLL_GAP."""

    def __init__(self, url: str, token: str) -> None:
        self.source = HttpSource(url, token, timeout=30)
        self.wake = threading.Event()
        self.woken_at: float | None = None
        self.source.subscribe(self._woken)
        self.latencies: list[float] = []  # each /v1/console request
        self.refresh: list[float] = []  # wake -> snapshot in
        self.ages: list[float] = []  # the shown snapshot's age: its build started -> shown
        self.polls = 0
        self.seen0 = 0
        self.bytes: list[int] = []  # each /v1/console answer's body
        self.stop = threading.Event()
        request = self.source.client._request

        def counted(method: str, path: str, *args: object, **kw: object) -> bytes:
            body = request(method, path, *args, **kw)  # type: ignore[arg-type]
            if path.startswith("/v1/console"):
                self.bytes.append(len(body))
            return body

        self.source.client._request = counted  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _woken(self) -> None:
        if self.woken_at is None:
            self.woken_at = time.perf_counter()
        self.wake.set()

    def start(self) -> None:
        self.source.start()
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            woken, self.woken_at = self.woken_at, None
            t0 = time.perf_counter()
            snap = self.source.poll()
            t1 = time.perf_counter()
            self.polls += 1
            self.latencies.append(t1 - t0)
            if woken is not None:
                self.refresh.append(t1 - woken)
                self.ages.append(time.time() - snap.taken_at)  # one clock: the same machine
            self.wake.wait(self.source.poll_interval)
            self.wake.clear()
            rest = MIN_POLL_GAP - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)

    def reset(self) -> None:
        self.latencies.clear()
        self.refresh.clear()
        self.ages.clear()
        self.bytes.clear()
        self.polls = 0
        self.seen0 = self.source.changes_seen

    def close(self) -> None:
        self.stop.set()
        self.source.close()
        self.thread.join(timeout=30)


KEYS = ("lat", "refresh", "ages", "bytes")


def measures(consoles: list[Console]) -> dict[str, Any]:
    """What ``consoles`` measured since they started."""
    out: dict[str, Any] = {k: [float(x) for c in consoles for x in getattr(c, _ATTR[k])]
                           for k in KEYS}  # fmt: skip
    out["polls"] = sum(c.polls for c in consoles)
    out["woken"] = sum(c.source.changes_seen - c.seen0 for c in consoles)
    return out


_ATTR = {"lat": "latencies", "refresh": "refresh", "ages": "ages", "bytes": "bytes"}


class ConsoleGroup:
    """Consoles as threads of this process, or (``processes`` > 1) spread over
    that many child processes, as separate users' consoles are: a console's
    parsing then queues on its own interpreter lock, not on the others'. The
    processes start once (their imports take seconds of CPU) and attach and
    detach their consoles each round."""

    def __init__(self, url: str, token: str, n: int, processes: int) -> None:
        self.url, self.token, self.n = url, token, n
        self.local: list[Console] = []
        self.children: list[subprocess.Popen] = []
        processes = min(processes, n)  # a process with no console would be idle
        if processes <= 1:
            return
        env = {**os.environ, "DTF_BENCH_TOKEN": token}
        for k in range(processes):
            share = n // processes + (1 if k < n % processes else 0)
            child = subprocess.Popen(
                [PY, __file__, "--child", str(share), "--url", url],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            self.children.append(child)
        for child in self.children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                sys.exit("a console process did not start")

    def _ask(self, command: str) -> list[str]:
        replies = []
        for child in self.children:
            assert child.stdin is not None
            child.stdin.write(command + "\n")
            child.stdin.flush()
        for child in self.children:
            assert child.stdout is not None
            replies.append(child.stdout.readline())
        return replies

    def pids(self) -> list[int]:
        return [os.getpid()] if not self.children else [c.pid for c in self.children]

    def attach(self) -> None:
        if not self.children:
            self.local = [Console(self.url, self.token) for _ in range(self.n)]
            for c in self.local:
                c.start()
        self._ask("attach")

    def reset(self) -> None:
        """Only what happens from here on is counted."""
        for c in self.local:
            c.reset()
        self._ask("reset")

    def detach(self) -> dict[str, Any]:
        """Stop every console; what they measured since the reset."""
        for c in self.local:
            c.close()
        found = [measures(self.local)] + [json.loads(r) for r in self._ask("detach")]
        self.local = []
        out: dict[str, Any] = {k: [x for f in found for x in f[k]] for k in KEYS}
        out["polls"] = sum(f["polls"] for f in found)
        out["woken"] = sum(f["woken"] for f in found)
        return out

    def close(self) -> None:
        for c in self.local:
            c.close()
        for child in self.children:
            child.communicate("quit\n", timeout=60)


def child_main(n: int, url: str) -> None:
    """``--child N``: N consoles in this process, driven by lines on stdin."""
    consoles: list[Console] = []
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "attach":
            consoles = [Console(url, os.environ["DTF_BENCH_TOKEN"]) for _ in range(n)]
            for c in consoles:
                c.start()
            print("ok", flush=True)
        elif command == "reset":
            for c in consoles:
                c.reset()
            print("ok", flush=True)
        elif command == "detach":
            for c in consoles:
                c.close()
            print(json.dumps(measures(consoles)), flush=True)
            consoles = []
        elif command == "quit":
            break


class Probe:
    """What another user of the API sees meanwhile: `/v1/runs` and `/v1/workers`
    in turn, 10 a second, each timed from this process (the consoles are in
    others with --console-processes)."""

    def __init__(self, url: str, token: str) -> None:
        self.client = CoordinatorClient(url, token, timeout=30)
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        calls = (lambda: self.client.runs(20), self.client.workers)
        k = 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            calls[k % 2]()
            self.latencies.append(time.perf_counter() - t0)
            k += 1
            self.stop.wait(max(0.0, 0.1 - (time.perf_counter() - t0)))

    def close(self) -> list[float]:
        self.stop.set()
        self.thread.join(timeout=30)
        return self.latencies


def _add(a: Histogram, b: Histogram) -> Histogram:
    """Two scrapes' counts summed (scrapes before and after each attached run)."""
    out = {route: dict(per) for route, per in a.items()}
    for route, per in b.items():
        mine = out.setdefault(route, {})
        for bound, n in per.items():
            mine[bound] = mine.get(bound, 0.0) + n
    return out


def one_run(
    client: CoordinatorClient, root: Path, serve_pid: int, probe: list[float] | None = None
) -> tuple[float, float]:
    """Wall seconds (submit to RunFinished) and serve's CPU seconds for one run;
    with ``probe``, the API probe's latencies during it are added to it."""
    prober = Probe(client.base, client.token or "") if probe is not None else None
    c0, t0 = cpu_s(serve_pid), time.perf_counter()
    run = client.submit("suite.toml", bundle.pack(root, 10**7), {})
    status = ""
    for ev in client.follow(run["run_id"]):
        status = ev.get("status", status) if ev["type"] == "RunFinished" else status
    wall = time.perf_counter() - t0
    cpu = cpu_s(serve_pid) - c0
    if prober is not None and probe is not None:
        probe += prober.close()
    if status != "passed":
        sys.exit(f"run {run['run_id']} ended {status!r}")
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--consoles", type=int, default=20)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument(
        "--console-processes",
        type=int,
        default=1,
        help="spread the consoles over this many processes (1: threads of this one)",
    )
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child, args.url)
        return
    tmp = Path(tempfile.mkdtemp(prefix="dtf-bench-consoles-"))
    procs: list[subprocess.Popen] = []
    keys = Keys(tmp)
    token = keys.token("submitter")
    sport, aport = free_port(), free_port()
    scheduler, url = f"tcp://127.0.0.1:{sport}", f"http://127.0.0.1:{aport}"
    log = open(tmp / "processes.log", "wb")  # noqa: SIM115

    def start(argv: list[str]) -> subprocess.Popen:
        procs.append(subprocess.Popen(argv, stdout=log, stderr=log, cwd=tmp))
        return procs[-1]

    group: ConsoleGroup | None = None
    finished = False
    try:
        start([PY, "-m", "dtf_core.cli", "scheduler", "--port", str(sport),
               "--dashboard-address", "none", "--secret-file", str(keys.worker_key)])  # fmt: skip
        for name in ("w0", "w1"):
            start([PY, "-m", "distributed.cli.dask_worker", scheduler, "--name", name,
                   "--nthreads", "1", "--no-nanny", "--no-dashboard",
                   "--preload", "dtf_core.worker_preload",
                   "--dtf-token-file", str(keys.worker_token_file(name)),
                   "--dtf-result-key-file", str(keys.result_key)])  # fmt: skip
        serve = start([PY, "-m", "dtf_core.cli", "serve", "--scheduler", scheduler,
                       "--db", str(tmp / "dtf.duckdb"), "--port", str(aport), "--secret-file",
                       str(keys.secret), "--result-key-file", str(keys.result_key)])  # fmt: skip
        client = CoordinatorClient(url, token, timeout=60)
        wait_for_workers(client, 2, 120, tmp / "processes.log")
        root = tmp / "suite"
        write_suite(root, args.tasks)
        one_run(client, root, serve.pid)  # warm-up: imports on the workers, connections
        bare: list[tuple[float, float]] = []
        probe_bare: list[float] = []
        probe_attached: list[float] = []
        attached: list[tuple[float, float]] = []
        group = ConsoleGroup(url, token, args.consoles, args.console_processes)
        measured: dict[str, Any] = {k: [] for k in KEYS} | {"polls": 0, "woken": 0}
        hist0: Histogram = {}
        hist1: Histogram = {}
        mine = wall = 0.0
        for k in range(args.rounds):
            bare.append(one_run(client, root, serve.pid, probe_bare))
            group.attach()
            time.sleep(2.0)  # attached and idle before the run starts
            group.reset()
            h0 = api_histogram(url, token)
            mine0 = sum(cpu_s(p) for p in group.pids())
            attached.append(one_run(client, root, serve.pid, probe_attached))
            # The consoles (with threads: and this script's follow).
            mine += sum(cpu_s(p) for p in group.pids()) - mine0
            h1 = api_histogram(url, token)
            hist0, hist1 = _add(hist0, h0), _add(hist1, h1)
            wall += attached[-1][0]
            got = group.detach()
            for key, value in got.items():
                measured[key] += value
            print(f"round {k + 1}: bare {bare[-1][0]:.2f} s, attached {attached[-1][0]:.2f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
            # The next bare run must not pay for builds nobody reads any more.
            time.sleep(INTEREST_S)
        woken, polls = int(measured["woken"]), int(measured["polls"])
        mine /= args.rounds
        lat, refresh, sizes = measured["lat"], measured["refresh"], measured["bytes"]
        bare_wall = min(w for w, _ in bare)
        att_wall = min(w for w, _ in attached)
        print(f"\n{args.tasks} tasks, {args.consoles} consoles in {args.console_processes} "
              f"process(es), {args.rounds} round(s), 2 workers x 1 thread\n")  # fmt: skip
        print("| measure | no console | consoles attached |")
        print("|---|---:|---:|")
        print(f"| run wall time, s (best) | {bare_wall:.2f} | {att_wall:.2f} |")
        print(f"| ratio of the best (goal <= 1.2) | | {att_wall / bare_wall:.2f}x |")
        # Each round pairs a bare run with an attached one under the same load.
        paired = sorted(a / b for (a, _), (b, _) in zip(attached, bare, strict=True))
        print(f"| ratio per round, median (all) | | {statistics.median(paired):.2f}x "
              f"({', '.join(f'{r:.2f}' for r in paired)}) |")  # fmt: skip
        print(f"| serve CPU during the run, s | {min(c for _, c in bare):.2f} | "
              f"{min(c for _, c in attached):.2f} |")  # fmt: skip
        print(f"| the consoles' own CPU during the run (their processes, mean), s | | {mine:.2f} |")
        print(f"| a console's poll p50 / p99, ms | | "
              f"{1000 * pct(lat, 0.5):.1f} / {1000 * pct(lat, 0.99):.1f} |")  # fmt: skip
        print(f"| wake to refreshed p50 / p99, ms | | "
              f"{1000 * pct(refresh, 0.5):.1f} / {1000 * pct(refresh, 0.99):.1f} |")  # fmt: skip
        ages = measured["ages"]
        print(f"| build started to shown (the snapshot's age) p50 / p99, ms | | "
              f"{1000 * pct(ages, 0.5):.1f} / {1000 * pct(ages, 0.99):.1f} |")  # fmt: skip
        waiting = ("/events", "/changes", "/stream")  # long-polls and streams wait on purpose
        route = "/v1/console"  # the snapshot asked for (a console whose stream is down)
        n_console, p99_console = api_p99(
            {route: hist0.get(route, {})}, {route: hist1.get(route, {})}
        )
        fast = hist1.get(route, {}).get(0.1, 0.0) - hist0.get(route, {}).get(0.1, 0.0)
        # This script's own /metrics scrapes (they read the database) are not the API's load.
        n_all, p99_all = api_p99(hist0, hist1, skip=(*waiting, "/metrics"))
        slow = {
            route: int(per.get(float("inf"), 0) - per.get(0.1, 0)
                       - hist0.get(route, {}).get(float("inf"), 0)
                       + hist0.get(route, {}).get(0.1, 0))
            for route, per in hist1.items()
            if not any(w in route for w in (*waiting, "/metrics"))
        }  # fmt: skip
        slow = {r: n for r, n in slow.items() if n > 0}
        print(f"| serve's own time: /v1/console p99 (bucket), ms, n | | "
              f"<= {p99_console:.0f} ({n_console}) |")  # fmt: skip
        print(f"| serve's own time: /v1/console within 100 ms | | "
              f"{100 * fast / max(n_console, 1):.1f} % |")  # fmt: skip
        if sizes:
            print(f"| /v1/console answer, kB mean / max | | {sum(sizes) / len(sizes) / 1e3:.1f}"
                  f" / {max(sizes) / 1e3:.1f} |")  # fmt: skip
        pb, pa = probe_bare, probe_attached
        print(f"| API probe (/v1/runs, /v1/workers at 10 Hz) p50 / p99, ms (goal p99 < 100) | "
              f"{1000 * pct(pb, 0.5):.1f} / {1000 * pct(pb, 0.99):.1f} | "
              f"{1000 * pct(pa, 0.5):.1f} / {1000 * pct(pa, 0.99):.1f} |")  # fmt: skip
        print(f"| serve's own time: every other call p99 (bucket), ms, n; over 100 ms | | "
              f"<= {p99_all:.0f} ({n_all}); {slow or 'none'} |")  # fmt: skip
        inf = float("inf")
        asked = sum(
            n.get(inf, 0.0) - hist0.get(route, {}).get(inf, 0.0)
            for route, n in hist1.items()
            if "/v1/console" in route or "/v1/changes" in route
        )
        per = asked / max(wall, 1e-9) / max(args.consoles, 1)
        print(f"| requests per second per console (serve's count, during the run) | | {per:.1f} |")
        print(f"| console polls / change wake-ups they counted (to their close) | | "
              f"{polls} / {woken} |")  # fmt: skip
        finished = True
    finally:
        if group is not None:
            group.close()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
        if finished:  # else the processes' log stays, for the reason
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
