"""The summary of one run: :func:`build_summary` reads the store once into a JSON-ready dict;
every renderer (Markdown, JSON, JUnit XML, HTML) works from that dict alone, so the renderers
need no database.

How ``counts`` counts (pytest's vocabulary, one number per outcome):

* A **pytest task that produced test results** contributes the final outcome of
  each of its tests (the last attempt that ran a test overlays earlier ones):
  ``passed``, ``failed``, ``skipped``, ``xfailed``, ``xpassed``, and ``error``
  into ``errors``. If the task itself ended badly while none of its final tests
  failed (it crashed or timed out after some tests passed), it also contributes
  1 at task level, as below, so that the failure is never hidden.
* A **pytest task without test results** (timed out, crashed, unschedulable)
  and every **benchmark and command task** contribute 1 by their final status:
  ``passed``, ``skipped``, ``timed_out`` -> ``timeouts``, ``unschedulable``,
  ``cancelled``; ``failed`` -> ``failed`` for the ``test-failure`` category
  (or none), else the category's bucket (``timeout`` -> ``timeouts`` ...),
  and ``errors`` for infrastructure categories (worker-lost, resource,
  infrastructure, bad-spec, security).
* Tasks still ``pending`` (the run stopped before them) are counted only in
  ``counts["tasks"]``, the per-status count of tasks.
* ``flaky``: flaky tests (an earlier attempt failed, the final passed) plus
  flaky tasks that have no flaky test to speak for them.

``status`` is the run's own status when it is ``cancelled``; otherwise
``passed`` when every task passed or was skipped, else ``failed``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from dtf_core.reporting.counts import BAD_TESTS, COUNT_KEYS, OK, TEST_BUCKET, task_bucket
from dtf_core.reporting.syscontext import MAX_SHOWN
from dtf_core.store import StoreReader

if TYPE_CHECKING:
    from dtf_core.analysis.baseline import BaselineSpec


def build_summary(
    store: StoreReader,
    run_id: str,
    baseline: BaselineSpec | None = None,
    *,
    benchmarks: bool = True,
) -> dict[str, Any]:
    """``baseline``: what ``--baseline`` asked for (default: the branch rule of
    :mod:`dtf_core.analysis.baseline`). ``benchmarks=False``: without the benchmark tables
    and the analysis (a badge wants the counts, and a large history's analysis takes
    seconds)."""
    run = store.get_run(run_id)
    # Plain dicts: the summary adds keys to the stored rows.
    tasks: list[dict[str, Any]] = [dict(t) for t in store.tasks(run_id)]
    tests_by_task: dict[str, list[dict[str, Any]]] = {}
    for row in store.final_tests(run_id):
        tests_by_task.setdefault(row["task_id"], []).append(dict(row))
    first_start: dict[str, float | None] = {}
    last_attempt: dict[str, dict[str, Any]] = {}
    snapshots: dict[tuple[str, int], dict[str, Any]] = {}
    for a in store.attempts(run_id):  # ordered by task, attempt
        first_start.setdefault(a["task_id"], a["started_at"])
        last_attempt[a["task_id"]] = dict(a)
        if a.get("context"):
            snapshots[(a["task_id"], int(a["attempt"]))] = a["context"] or {}
    workers = store.workers(run_id)
    health = {str(h["worker"]): dict(h) for h in store.worker_health(run_id)}
    hosts = {w["address"]: w["host"] for w in workers} | {w["name"]: w["host"] for w in workers}

    counts: Counter[str] = Counter(dict.fromkeys(COUNT_KEYS, 0))
    failures: list[dict[str, Any]] = []
    flaky: list[dict[str, Any]] = []
    for task in tasks:
        tid = task["task_id"]
        tests = tests_by_task.get(tid, [])
        last = last_attempt.get(tid, {})
        task["worker"] = task["worker"] or last.get("worker") or ""
        task["tests"] = tests
        task["started_at"] = first_start.get(tid)
        task["hostname"] = hosts.get(task["worker"] or "") or task["worker"] or None
        task["stdout_tail"] = last.get("stdout_tail") or ""
        task["stderr_tail"] = last.get("stderr_tail") or ""
        task["code_fingerprint"] = last.get("code_fingerprint") or ""
        for t in tests:
            counts[TEST_BUCKET.get(t["outcome"], t["outcome"])] += 1
            if t["outcome"] in BAD_TESTS:
                failures.append(
                    {
                        "task_id": tid,
                        "nodeid": t["nodeid"],
                        "outcome": t["outcome"],
                        "category": task["category"] or "test-failure",
                        "message": t["message"] or "",
                        "details": t.get("details") or "",
                        "worker": t["worker"] or task["worker"],
                        "attempt": t.get("attempt"),
                    }
                )
        flaky_tests = [t for t in tests if t["flaky"]]
        flaky += [{"task_id": tid, "nodeid": t["nodeid"]} for t in flaky_tests]
        if task["flaky"] and not flaky_tests:
            flaky.append({"task_id": tid, "nodeid": None, "attempts": task["attempts"]})
        # A task-level entry when no test speaks for the task's own ending.
        task["task_level"] = not tests or (
            task["status"] not in OK
            and task["status"] != "pending"
            and not any(t["outcome"] in BAD_TESTS for t in tests)
        )
        bucket = task_bucket(task["status"], task["category"])
        if task["task_level"] and bucket is not None:
            counts[bucket] += 1
            if task["status"] not in OK:
                failures.append(
                    {
                        "task_id": tid,
                        "nodeid": None,
                        "category": task["category"] or task["status"],
                        "message": task["message"] or "",
                        "worker": task["worker"],
                        "attempt": last.get("attempt"),
                    }
                )
    counts["flaky"] = len(flaky)
    task_counts = Counter(t["status"] for t in tasks)

    if run["status"] == "cancelled":
        status = "cancelled"
    else:
        status = "passed" if all(t["status"] in OK for t in tasks) else "failed"
    started, finished = run["started_at"], run["finished_at"]
    ranked = sorted((t for t in tasks if t["wall_s"]), key=lambda t: -t["wall_s"])
    measured = _benchmarks(store, run_id) if benchmarks else []
    return {
        "run_id": run_id,
        "suite": run["suite"],
        "status": status,
        "metadata": run["metadata"] or {},  # commit, branch, CI context: the report header
        "started_at": started,
        "finished_at": finished,
        "duration_s": finished - started if started and finished else None,
        "counts": {
            **{k: counts[k] for k in COUNT_KEYS},
            "tasks": dict(sorted(task_counts.items())),
        },
        "tasks": tasks,
        "failures": failures,
        **_contexts(failures, snapshots),
        "flaky": flaky,
        "slowest": [
            {k: t[k] for k in ("task_id", "wall_s", "status", "worker")} for t in ranked[:10]
        ],
        "benchmarks": measured,
        # Each with its health as the run left it (worker_health), None when not recorded.
        "workers": [{**w, "health": health.get(w["name"] or "")} for w in workers],
        "analysis": _analysis(store, run_id, baseline) if measured else None,
    }


def _contexts(
    failures: list[dict[str, Any]], snapshots: dict[tuple[str, int], dict[str, Any]]
) -> dict[str, Any]:
    """``contexts``: the system snapshot of each failed attempt the failures name,
    once per attempt, in the failures' order, the first MAX_SHOWN of them
    (``contexts_omitted`` counts the rest: the API's attempts route has them all)."""
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for f in failures:
        key = (f["task_id"], int(f.get("attempt") or 0))
        if key in snapshots and key not in seen:
            seen[key] = {
                "task_id": key[0], "attempt": key[1], "worker": f["worker"],
                "context": snapshots[key],
            }  # fmt: skip
    shown = list(seen.values())
    return {"contexts": shown[:MAX_SHOWN], "contexts_omitted": max(0, len(shown) - MAX_SHOWN)}


def _benchmarks(store: StoreReader, run_id: str) -> list[dict[str, Any]]:
    df = store.benchmark_samples(run_id)
    if df.empty:
        return []
    # Here, not at the top: scipy (through ``analysis.stats``) costs about a second to
    # import, and a run without benchmark samples has no use for it.
    from dtf_core.analysis.stats import summarize

    out = []
    for (task_id, hardware), g in df.groupby(["task_id", "hardware"], sort=True, dropna=False):
        first = g.iloc[0]
        out.append(
            {
                "task_id": task_id,
                "benchmark": first["benchmark"],
                "params": json.loads(first["params"] or "{}"),
                "hardware": hardware if isinstance(hardware, str) else "",
                "unit": first["unit"],
                **summarize(g["value"].to_numpy()),
            }
        )
    return out


def _analysis(
    store: StoreReader, run_id: str, baseline: BaselineSpec | None
) -> dict[str, Any] | None:
    """The analysis sections; only a run with benchmark samples has any (and pays the import)."""
    from dtf_core.reporting import sections

    return sections.build(store, run_id, baseline)
