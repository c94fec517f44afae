"""One refresh cycle of the console (poll + render) on a big live state.

Seeded state: 200 workers and a run of 20,000 tasks held in the same
``LiveState`` that ``dtf-tui run`` uses. Each cycle, 100 tasks finish (1 in 10
of them failed, with an error), every worker reports new CPU and memory, and
then the console refreshes:

* poll: fold the worker metrics in and take the snapshot (``LiveSource.poll``
  minus the scheduler round trip, which is network, not console);
* apply: the app takes the snapshot and the screen on show updates its widgets
  (tasks: filter + sort of all 20,000 rows);
* paint: Textual handles the resulting messages, lays out and renders the
  dirty widgets into the headless driver (a frame less the terminal write).

Times are CPU time of the process (``time.process_time``): the Pilot's waits
for idleness are not work the console does.

    .venv/bin/python scripts/bench/tui.py [--cycles 40] [--size 200x60]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import time

from dtf_core.events import AttemptFailed, RunStarted, TaskFinished
from dtf_tui.app import DtfApp
from dtf_tui.snapshot import AttemptInfo, ClusterSnapshot, SeriesKey, TrendSeries
from dtf_tui.sources import SourceError
from dtf_tui.sources.livestate import LiveState

WORKERS, TASKS, PER_CYCLE = 200, 20_000, 100


class SeededSource:
    """A LiveState driven by synthetic events, polled like LiveSource."""

    label = "bench: 200 workers, 20,000 tasks"
    poll_interval = 3600.0  # the benchmark drives the polls itself

    def __init__(self, seed: int = 5) -> None:
        self.rng = random.Random(seed)
        ids = [(f"bench_case[i={i:05d}]", "benchmark") for i in range(TASKS)]
        self.state = LiveState(ids)
        self.state.on_event(RunStarted("bench-run", "bench", TASKS))
        self.todo = [t for t, _ in ids]
        self.rng.shuffle(self.todo)
        self.done = 0

    def advance(self) -> None:
        """What the coordinator and the scheduler would have reported since the last poll."""
        for _ in range(PER_CYCLE):
            if not self.todo:
                break
            task = self.todo.pop()
            worker = f"w{self.rng.randrange(WORKERS):03d}"
            failed = self.rng.random() < 0.1
            if failed:
                self.state.on_event(
                    AttemptFailed(
                        "bench-run", task, 1, "worker-lost", f"worker {worker} died after 3 s",
                        worker,
                    )
                )  # fmt: skip
            self.done += 1
            self.state.on_event(
                TaskFinished(
                    "bench-run", task, "failed" if failed else "passed",
                    "worker-lost" if failed else None, "", 0.01, worker, False,
                    self.done, TASKS,
                )
            )  # fmt: skip

    def metrics(self) -> list[dict[str, object]]:
        return [
            {"address": f"tcp://10.0.{i // 250}.{i % 250}:4000", "name": f"w{i:03d}",
             "host": "10.0.0.1", "resources": {"GPU": 1} if i % 4 == 0 else {"CPU": 8},
             "nthreads": 8, "status": "running", "cpu": self.rng.uniform(0, 100),
             "memory": self.rng.uniform(1e9, 8e9), "memory_limit": 16e9,
             "processing": [f"dtf-bench-run-{self.todo[-j]}-a1" for j in range(1, 3)
                            if len(self.todo) >= j]}
            for i in range(WORKERS)
        ]  # fmt: skip

    # ---- Source ------------------------------------------------------------------

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def poll(self) -> ClusterSnapshot:
        self.state.update_workers(self.metrics())
        return self.state.snapshot(self.label)

    def attempts(self, run_id: str, task_id: str) -> list[AttemptInfo]:
        return []

    def series_keys(self) -> list[SeriesKey]:
        return []

    def series(self, key: SeriesKey) -> TrendSeries:
        raise SourceError("no history in the benchmark")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(cycles: int, size: tuple[int, int]) -> list[tuple[str, dict[str, list[float]]]]:
    source = SeededSource()
    app = DtfApp(source)
    results = []
    async with app.run_test(size=size) as pilot:
        while app.snapshot is None:
            await pilot.pause(0.01)
        for key, name in [("1", "overview"), ("2", "workers"), ("3", "tasks"), ("4", "errors")]:
            await pilot.press(key)
            await pilot.pause()
            if name == "tasks":
                await pilot.press("s", "s", "s")  # sorted by status: the expensive order
            times: dict[str, list[float]] = {"poll": [], "apply": [], "paint": [], "total": []}
            for _ in range(cycles):
                source.advance()
                t0 = time.process_time()
                snap = source.poll()
                t1 = time.process_time()
                app.apply_snapshot(snap)
                t2 = time.process_time()
                # Textual processes the messages and repaints what changed (pause()
                # ends with the screen's update). CPU time, so that the harness's
                # idle waits are not counted.
                await pilot.pause()
                t3 = time.process_time()
                for k, v in zip(
                    ("poll", "apply", "paint", "total"),
                    (t1 - t0, t2 - t1, t3 - t2, t3 - t0),
                    strict=True,
                ):
                    times[k].append(v * 1000)
            results.append((name, times))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--size", default="200x60", help="terminal WIDTHxHEIGHT")
    args = parser.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    results = asyncio.run(measure(args.cycles, (w, h)))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{WORKERS} workers, {TASKS:,} tasks, {PER_CYCLE} finishing per cycle, "
          f"{args.cycles} cycles per screen, terminal {w}x{h}")  # fmt: skip
    print()
    print("| screen   | poll ms (median) | apply ms | paint ms | cycle ms median | cycle ms p95 |")
    print("|----------|------------------|----------|----------|-----------------|--------------|")
    for name, t in results:
        print(
            f"| {name:<8} | {statistics.median(t['poll']):16.1f} | "
            f"{statistics.median(t['apply']):8.1f} | {statistics.median(t['paint']):8.1f} | "
            f"{statistics.median(t['total']):15.1f} | {pct(t['total'], 0.95):12.1f} |"
        )
    print()
    print(f"peak memory (max RSS of the process): {peak_mb:.0f} MiB")


if __name__ == "__main__":
    main()
