"""`dtf-core serve` with probes, for `service.py --serve-with scripts/bench/_serveprobe.py`:
where the API's tail latency comes from, measured inside serve.

* the event loop's lateness: a thread posts a no-op to the loop every 5 ms and
  times how long it waits to run;
* while the loop is more than ``DTF_PROBE_LATE_MS`` (50) late, every thread's
  stack is sampled (the loop thread's own frame says whether the loop is busy
  itself or waits for the GIL; the others say who holds it);
* cyclic GC pauses (``gc.callbacks``), by generation, and whether a late window
  overlapped one.

At exit (SIGTERM) a summary goes to ``$DTF_PROBE_OUT`` (default stderr).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import gc
import os
import sys
import threading
import time
import traceback

LATE_S = float(os.environ.get("DTF_PROBE_LATE_MS", "50")) / 1000
_gc: list[tuple[int, float, float]] = []  # generation, start, end (perf_counter)
_gc_start: dict[str, float] = {}
_late: list[tuple[float, float]] = []  # start, lateness
_lag: list[float] = []
_stacks: collections.Counter[str] = collections.Counter()
_loop_stacks: collections.Counter[str] = collections.Counter()
_samples = 0
_loop_began = [float("inf")]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "stop" and info["generation"] == 2:
        print(f"probe: gen2 GC at {time.time():.3f}", file=sys.stderr)
    if phase == "start":
        _gc_start["t"] = time.perf_counter()
    else:
        _gc.append((info["generation"], _gc_start.get("t", 0.0), time.perf_counter()))


IDLE = ("wait", "select", "poll", "_worker", "get", "sleep", "accept", "recv", "read")


def _frames(frame, depth: int = 6) -> str:  # type: ignore[no-untyped-def]
    out = [f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}"
           for f in traceback.extract_stack(frame)[-depth:]]  # fmt: skip
    return " < ".join(reversed(out))


def _sample(loop_ident: int) -> None:
    global _samples
    _samples += 1
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        key = _frames(frame)
        if ident == loop_ident:
            _loop_stacks[key] += 1
        elif frame.f_code.co_name not in IDLE:
            _stacks[f"[{names.get(ident, '?')[:14]}] {key}"] += 1


def _watch(loop: asyncio.AbstractEventLoop, loop_ident: int) -> None:
    while not loop.is_closed():
        ran = threading.Event()
        posted = time.perf_counter()
        try:
            loop.call_soon_threadsafe(ran.set)
        except RuntimeError:
            return
        late_since = None
        while not ran.wait(0.005):
            if time.perf_counter() - posted > LATE_S:
                late_since = late_since or posted
                _sample(loop_ident)
        lag = time.perf_counter() - posted
        _lag.append(lag)
        if late_since is not None:
            _late.append((posted, lag))
        time.sleep(0.005)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] if xs else 0.0


def _report() -> None:
    out = open(os.environ["DTF_PROBE_OUT"], "w") if "DTF_PROBE_OUT" in os.environ else sys.stderr  # noqa: SIM115
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"switch interval {1000 * sys.getswitchinterval():g} ms; frozen {gc.get_freeze_count()}")
    p(f"loop lag: n={len(_lag)} p50 {1000 * _pct(_lag, 0.5):.1f} ms p99 "
      f"{1000 * _pct(_lag, 0.99):.1f} ms max {1000 * max(_lag, default=0):.1f} ms; "
      f"late (> {1000 * LATE_S:.0f} ms) {len(_late)} times, {_samples} samples")  # fmt: skip
    by_gen: dict[int, list[float]] = collections.defaultdict(list)
    for g, a, b in _gc:
        if a >= _loop_began[0]:  # what start-up collects (before the API listens) aside
            by_gen[g].append(b - a)
    for g, ds in sorted(by_gen.items()):
        p(f"gc gen{g} while serving: n={len(ds)} total {sum(ds):.3f} s "
          f"p99 {1000 * _pct(ds, 0.99):.1f} ms "
          f"max {1000 * max(ds):.1f} ms")  # fmt: skip
    overlap = sum(1 for s, lag in _late if any(a < s + lag and b > s for _, a, b in _gc))
    p(f"late windows overlapping a GC pause: {overlap} of {len(_late)}")
    worst = sorted(_late, key=lambda x: -x[1])[:10]
    p("worst late windows (ms): " + ", ".join(f"{1000 * lag:.0f}" for _, lag in worst))
    p("\nloop thread while late:")
    for k, n in _loop_stacks.most_common(15):
        p(f"{n:5d} {k}")
    p("\nother threads, not idle, while the loop was late:")
    for k, n in _stacks.most_common(40):
        p(f"{n:5d} {k}")
    _report_phases(p)
    out.flush()


_phases: dict[str, dict[str, list[float]]] = collections.defaultdict(
    lambda: collections.defaultdict(list)
)


def _time_blocking() -> None:
    """Each pool hop of a request, in three parts: queued until a pool thread ran it
    (``start``), the call itself (``call``), done until the handler resumed on the
    loop (``back``)."""
    from dtf_core.service.handler import Handler

    async def blocking(self, fn, *args):  # type: ignore[no-untyped-def]
        t: dict[str, float] = {"submit": time.perf_counter()}

        def timed():  # type: ignore[no-untyped-def]
            t["start"] = time.perf_counter()
            try:
                return fn(*args)
            finally:
                t["end"] = time.perf_counter()

        try:
            return await self.pending(self.manager.readpath.quick.submit(timed))
        finally:
            back = time.perf_counter()
            name = getattr(fn, "__name__", "?")
            if "start" in t and "end" in t:
                ph = _phases[name]
                ph["start"].append(t["start"] - t["submit"])
                ph["call"].append(t["end"] - t["start"])
                ph["back"].append(back - t["end"])

    Handler.blocking = blocking  # type: ignore[method-assign]


def _report_phases(p) -> None:  # type: ignore[no-untyped-def]
    p("\nquick-pool hops (ms): p50 / p99 / max of queued, call, back to the loop")
    for name, ph in sorted(_phases.items()):
        cols = "  ".join(
            f"{k} {1000 * _pct(v, 0.5):.1f}/{1000 * _pct(v, 0.99):.1f}/{1000 * max(v):.1f}"
            for k, v in ph.items()
        )
        p(f"  {name:<16} n={len(ph['call']):<4} {cols}")


def main() -> None:
    from dtf_core.cli.main import main as cli
    from dtf_core.service import serve as serve_mod

    orig = serve_mod._main

    async def probed(*args, **kwargs):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        _loop_began[0] = time.perf_counter()
        ident = threading.get_ident()
        threading.Thread(target=_watch, args=(loop, ident), daemon=True, name="probe").start()
        return await orig(*args, **kwargs)

    serve_mod._main = probed  # type: ignore[assignment]
    _time_blocking()
    gc.callbacks.append(_on_gc)
    if "DTF_PROBE_SWITCH_MS" in os.environ:  # an A/B of the GIL's switch interval
        sys.setswitchinterval(float(os.environ["DTF_PROBE_SWITCH_MS"]) / 1000)
    atexit.register(_report)
    cli()


if __name__ == "__main__":
    main()
