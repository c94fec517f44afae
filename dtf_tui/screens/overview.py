"""Overview: the cluster in two lines, then the runs (in flight first) with
progress, ETA, throughput and pass rate."""

from __future__ import annotations

from collections import Counter

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Static

from dtf_tui import errorstats
from dtf_tui.screens.base import STATUS_STYLE, SnapshotScreen
from dtf_tui.snapshot import ClusterSnapshot, RunInfo
from dtf_tui.widgets.spark import bar, duration
from dtf_tui.widgets.vtable import Cell, Column, VirtualTable


def _run_cells(run: RunInfo, now: float) -> list[Cell]:
    rate = run.pass_rate
    return [
        run.run_id,
        run.suite,
        (run.status, STATUS_STYLE.get(run.status, "")),
        (bar(run.progress, 10), "cyan" if run.in_flight else "green"),
        f"{run.done}/{run.total}",
        "—" if rate is None else (f"{rate:.0%}", "green" if rate == 1 else "red"),
        f"{run.throughput(now):.1f}",
        duration(run.eta_s) if run.in_flight else "",
    ]


class OverviewScreen(SnapshotScreen):
    def compose_body(self) -> ComposeResult:
        yield Static(id="summary")
        yield VirtualTable(
            [
                Column("run", "run", 23),
                Column("suite", "suite", 0),
                Column("status", "status", 9),
                Column("progress", "progress", 10),
                Column("done", "done", 11, right=True),
                Column("pass", "pass", 5, right=True),
                Column("rate", "task/s", 6, right=True, hide_below=90),
                Column("eta", "ETA", 7, right=True),
            ],
            self._cells,
            row_key=lambda r: r.run_id,
            id="runs",
        )

    def _cells(self, run: RunInfo) -> list[Cell]:
        snap = self.dtf.snapshot
        return _run_cells(run, snap.taken_at if snap else 0.0)

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        self.query_one("#summary", Static).update(self._summary(snapshot))
        runs = sorted(snapshot.runs, key=lambda r: (not r.in_flight, -r.started_at))
        self.query_one("#runs", VirtualTable).set_items(runs)

    @staticmethod
    def _summary(snap: ClusterSnapshot) -> Content:
        status = Counter(w.status for w in snap.workers)
        threads = sum(w.nthreads for w in snap.workers)
        resources: Counter[str] = Counter()
        for w in snap.workers:
            if w.status != "gone":
                resources.update({k: v for k, v in w.resources.items()})
        res = ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items())) or "none"
        states = ", ".join(f"{n} {s}" for s, n in sorted(status.items())) or "none"
        focused = snap.focused_run
        rate = focused.pass_rate if focused else None
        last_hour = errorstats.in_range(snap.errors, snap.taken_at, "1h")
        sev = errorstats.by_severity(last_hour)
        flight = sum(r.in_flight for r in snap.runs)
        # Markup for the look, $variables for what came from the user (resource
        # names, the note naming a file): those are inserted as plain text.
        lines = [
            Content.from_markup(
                "[b]Cluster[/b]  $workers workers ($states) · $threads threads · resources: $res",
                workers=len(snap.workers), states=states, threads=threads, res=res,
            ),
            Content.from_markup(
                "[b]Runs[/b]  $flight in flight · throughput $tput tasks/s · pass rate $rate"
                " · errors 1h: $errors"
                + (" ([red b]$critical critical[/])" if sev["critical"] else ""),
                flight=flight, tput=f"{snap.throughput:.1f}",
                rate="—" if rate is None else f"{rate:.1%}",
                errors=len(last_hour), critical=sev["critical"],
            ),
        ]  # fmt: skip
        if snap.note:
            lines.append(Content.styled(snap.note, "italic"))
        return Content("\n").join(lines)
