"""A failed attempt's system snapshot (``attempts.context``, taken on its worker by
:mod:`dtf_core.worker.snapshot`) as labelled lines, the same in every view: the
Markdown and HTML reports, ``dtf-core report``, and the console's Errors and task
views (which import this, as they import :mod:`~dtf_core.reporting.format`).

The snapshot is stored as it arrived; this reads it defensively, since an
older or newer worker may send more, fewer or differently shaped fields.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_SHOWN", "context_lines", "context_rows"]

MAX_SHOWN = 20  # failed attempts whose snapshot a report shows in full


def _bytes(n: Any) -> str:
    if not isinstance(n, int | float):
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _memory(m: Any) -> str:
    if not isinstance(m, dict):
        return "unknown"
    return f"{_bytes(m.get('available'))} available of {_bytes(m.get('total'))}"


def _disk(d: Any) -> str:
    if not isinstance(d, dict):
        return "unknown"
    return f"{_bytes(d.get('free'))} free of {_bytes(d.get('total'))} at {d.get('path', '?')}"


def _gpu(g: Any) -> list[str]:
    if g is None:
        return ["none (no nvidia-smi)"]
    if isinstance(g, str):
        return [g]
    out = []
    for gpu in g if isinstance(g, list) else []:
        if not isinstance(gpu, dict):
            continue
        util, temp = gpu.get("utilization_pct"), gpu.get("temperature_c")
        out.append(
            f"#{gpu.get('index', '?')} {gpu.get('name', '?')}: "
            f"{'?' if util is None else f'{util:g}'} % busy, "
            f"{_bytes(gpu.get('memory_used'))} of {_bytes(gpu.get('memory_total'))} used, "
            f"{'?' if temp is None else f'{temp:g}'} °C"
        )
    return out or ["none"]


def context_rows(ctx: dict[str, Any] | None) -> list[tuple[str, str]]:
    """``(label, value)`` pairs; a value may hold several lines (packages, env, log)."""
    if not ctx:
        return []
    if "error" in ctx and len(ctx) == 1:
        return [("snapshot", str(ctx["error"]))]
    load = ctx.get("load")
    rows = [
        ("host", str(ctx.get("host", "?"))),
        ("os", str(ctx.get("os", "?"))),
        ("python", f"{ctx.get('python', '?')} ({ctx.get('executable', '?')})"),
        (
            "load",
            (" ".join(f"{x:g}" for x in load) if isinstance(load, list) else "unknown")
            + f" on {ctx.get('cpus', '?')} CPUs",
        ),
        ("memory", _memory(ctx.get("memory"))),
        ("disk", _disk(ctx.get("disk"))),
        ("gpu", "\n".join(_gpu(ctx.get("gpu")))),
    ]
    if "command" in ctx:
        rows.append(("command", str(ctx["command"])))
    pkgs = ctx.get("packages")
    if isinstance(pkgs, dict):
        whose = f" (imported by the {ctx['packages_from']})" if ctx.get("packages_from") else ""
        text = ", ".join(f"{k}=={v}" for k, v in pkgs.items()) or "none found"
        rows.append(("packages" + whose, text))
    elif "command" not in ctx:
        rows.append(("packages", "unknown (the process ended before it could say)"))
    env = ctx.get("env")
    if isinstance(env, dict):
        lines = [f"{k}={v}" if v is not None else f"{k} (unset)" for k, v in env.items()]
        rows.append(("env (differs from the worker's)", "\n".join(lines) or "no differences"))
    log = ctx.get("log")
    if isinstance(log, list) and log:
        rows.append(("worker log (last lines)", "\n".join(str(x) for x in log)))
    return rows


def context_lines(ctx: dict[str, Any] | None) -> list[str]:
    """The snapshot as plain text lines (``label: value``; continuation lines indented)."""
    out = []
    for label, value in context_rows(ctx):
        first, *rest = value.splitlines() or [""]
        if rest:
            out.append(f"{label}:")
            out += [f"  {line}" for line in (first, *rest)]
        else:
            out.append(f"{label}: {first}")
    return out
