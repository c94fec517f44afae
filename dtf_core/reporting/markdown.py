"""The Markdown report of one run (also the GitHub step summary): counts, failures, flaky
tests, the slowest tasks, benchmarks per hardware, workers and their health, then the analysis
sections."""

from __future__ import annotations

from typing import Any

from dtf_core.cluster.hardware import label
from dtf_core.reporting import render, workers
from dtf_core.reporting.counts import COUNT_KEYS
from dtf_core.reporting.format import humanize, params_label, pct, table, when
from dtf_core.reporting.syscontext import context_lines


def _ci_line(ci: dict[str, Any]) -> list[str]:
    """``github: branch `fix` -> `main`, PR #7, commit `abc123`, [job](url)``, or nothing."""
    if not ci.get("provider"):
        return []
    parts = [f"{ci['provider']}: branch `{ci.get('branch') or '?'}`"]
    if ci.get("target_branch"):
        parts[0] += f" -> `{ci['target_branch']}`"
    if ci.get("pr"):
        parts.append(f"{'MR !' if ci['provider'] == 'gitlab' else 'PR #'}{ci['pr']}")
    if ci.get("commit"):
        parts.append(f"commit `{ci['commit'][:12]}`")
    if ci.get("job_url"):
        parts.append(f"[job]({ci['job_url']})")
    return [", ".join(parts), ""]


def _dashboard_line(meta: dict[str, Any]) -> list[str]:
    """Dask's dashboard of the cluster the run used (``--dashboard``), when there was one."""
    link = meta.get("dashboard")
    return [f"Dask dashboard: <{link}> (live while the cluster runs)", ""] if link else []


def render_markdown(summary: dict[str, Any]) -> str:
    s = summary
    dur = s["duration_s"]
    out = [
        f"# dtf: {s['suite']}: {s['status'].upper()}",
        "",
        f"Run `{s['run_id']}`, started {when(s['started_at'])}"
        + (f", took {dur:.1f} s" if dur is not None else ", not finished"),
        "",
        *_ci_line((s.get("metadata") or {}).get("ci") or {}),
        *_dashboard_line(s.get("metadata") or {}),
        "## Counts",
        "",
        *table(list(COUNT_KEYS), [[s["counts"][k] for k in COUNT_KEYS]]),
        "Tasks: " + ", ".join(f"{n} {st}" for st, n in s["counts"]["tasks"].items()),
        "",
        "## Failures",
        "",
    ]
    if s["failures"]:
        rows = [
            [f["category"], f["nodeid"] or f["task_id"], f["message"], f["worker"]]
            for f in s["failures"]
        ]
        out += table(["category", "task / test", "message", "worker"], rows)
        out += _contexts(s.get("contexts") or [], int(s.get("contexts_omitted") or 0))
    else:
        out += ["None.", ""]
    if s["flaky"]:
        rows = [[f["task_id"], f["nodeid"] or ""] for f in s["flaky"]]
        out += ["## Flaky", "", *table(["task", "test"], rows)]
    if s["slowest"]:
        rows = [
            [t["task_id"], f"{t['wall_s']:.2f} s", t["status"], t["worker"]] for t in s["slowest"]
        ]
        out += ["## Slowest tasks", "", *table(["task", "wall", "status", "worker"], rows)]
    if s["benchmarks"]:
        out += ["## Benchmarks", "", *_benchmarks(s["benchmarks"])]
    if s["workers"]:
        rows = [
            [
                w["name"],
                w["host"],
                w["address"],
                _resources(w["resources"]),
                label(w["hardware"]) if w["hardware"] else "",
                *_health(w.get("health")),
            ]
            for w in s["workers"]
        ]
        head = ["name", "host", "address", "resources", "hardware", "health", "speed", "reason"]
        out += ["## Workers", "", *table(head, rows)]
    out += _analysis(s.get("analysis"))
    return "\n".join(out)


def _contexts(contexts: list[dict[str, Any]], omitted: int) -> list[str]:
    """Each failed attempt's system snapshot from its worker, as an indented code
    block (no fence that a value could close)."""
    out: list[str] = []
    for c in contexts:
        out += [
            f"### System context: `{c['task_id']}` attempt {c['attempt']} on {c['worker'] or '?'}",
            "",
            *(f"    {line}" for line in context_lines(c["context"])),
            "",
        ]
    if omitted:
        out += [f"{omitted} more failed attempt(s) have a system context: see the API.", ""]
    return out


def _benchmarks(benchmarks: list[dict[str, Any]]) -> list[str]:
    """One table per hardware: the median with its 95 % interval and half-width in %."""
    out: list[str] = []
    by_hw: dict[str, list[dict[str, Any]]] = {}
    for b in benchmarks:
        by_hw.setdefault(b["hardware"] or "unknown hardware", []).append(b)
    for hw, benches in by_hw.items():
        rows = []
        for b in benches:
            med, unit = b["median"], b["unit"]
            ci = f"{humanize(b['ci_low'], unit, med)} to {humanize(b['ci_high'], unit, med)}"
            spread = max(b["ci_high"] - med, med - b["ci_low"]) if med is not None else None
            half = "±" + pct(spread / abs(med), signed=False) if spread is not None and med else ""
            note = " (min to max: n < 6)" if b.get("ci_note") else ""
            rows.append(
                [b["benchmark"], params_label(b["params"]), b["n"], humanize(med, unit), ci + note,
                 half]
            )  # fmt: skip
        head = ["benchmark", "params", "n", "median", "95% CI", "±"]
        out += [f"### {hw}", "", *table(head, rows)]
    return out


def _health(h: dict[str, Any] | None) -> list[str]:
    """State, relative speed (its tasks' time over the same tasks' elsewhere), reason."""
    c = workers.cells("", h)
    return [c[1], c[3], c[-1]] if h else ["", "", ""]


def _resources(d: dict[str, Any] | None) -> str:
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in (d or {}).items()
    )


def _analysis(a: dict[str, Any] | None) -> list[str]:
    """The summary's ``analysis`` (:mod:`dtf_core.reporting.sections`) as Markdown sections."""
    if not a:
        return []
    out: list[str] = []
    comp, choice = a.get("comparison"), a.get("baseline_choice")
    if comp:
        rows = render.comparison_rows(render.comparisons(comp["rows"]))
        out += [
            f"## Compared with `{a['baseline']}`",
            "",
            *([render.baseline_line(choice), ""] if choice else []),
            ", ".join(f"{n} {v}" for v, n in comp["counts"].items()),
            "",
            *table(render.COMPARISON_HEAD, rows),
        ]
    elif choice:
        out += ["## Compared with a baseline", "", render.baseline_line(choice), ""]
    shown = render.pivots_worth_showing(a.get("pivots") or [])
    if shown:
        out += ["## Pivot: median by parameters x hardware", ""]
        for p in shown:
            out += [f"### {p['benchmark']} ({p['unit']})", "", *table(*render.pivot_table(p))]
    if a.get("best") or a.get("untuned"):
        out += ["## Best tuned setting", ""]
        if a.get("best"):
            out += table(render.BEST_HEAD, render.best_rows(a["best"]))
        if a.get("untuned"):
            out += [render.untuned_line(a["untuned"]), ""]
    if a.get("changes"):
        out += [
            "## Level shifts in history",
            "",
            *table(render.CHANGES_HEAD, render.changes_rows(a["changes"])),
        ]
    if a.get("trends"):
        out += [
            "## Trends in history",
            "",
            *table(render.TRENDS_HEAD, render.trends_rows(a["trends"])),
        ]
    return out
