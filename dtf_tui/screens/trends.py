"""Trends: one benchmark's history on one hardware, with its change points
(regressions in red) and a forecast band."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Select, Static

from dtf_core.reporting.format import when
from dtf_tui import trend
from dtf_tui.screens.base import SnapshotScreen
from dtf_tui.snapshot import ClusterSnapshot, SeriesKey, TrendSeries
from dtf_tui.sources import SourceError
from dtf_tui.widgets.trend_chart import TrendChart


def describe(series: TrendSeries, view: trend.TrendView) -> str:
    """One line per change point: where, from what level to what, and whether it hurt."""
    if not series.values:
        return "no data"
    lines = [f"{len(series.values)} runs · unit {series.unit} · last {series.values[-1]:.4g}"]
    bounds = [0, *view.change_points, len(series.values)]
    for i, cp in enumerate(view.change_points):
        seg_before = sorted(series.values[bounds[i] : cp])
        seg_after = sorted(series.values[cp : bounds[i + 2]])
        before = seg_before[len(seg_before) // 2]
        after = seg_after[len(seg_after) // 2]
        change = (after - before) / before if before else 0.0
        tag = "[bold red]REGRESSION[/]" if cp in view.regressions else "[green]improvement[/]"
        lines.append(
            f"change point at run #{cp} ({series.run_ids[cp]}, {when(series.times[cp])}): "
            f"{before:.4g} → {after:.4g} {series.unit} ({change:+.1%}) {tag}"
        )
    if not view.change_points:
        lines.append("no change point")
    if view.forecast:
        lines.append(
            f"forecast +{len(view.forecast) - 1} runs: {view.forecast[-1]:.4g}"
            f" [{view.forecast_low[-1]:.4g} .. {view.forecast_high[-1]:.4g}]"
        )
    return "\n".join(lines)


class TrendsScreen(SnapshotScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "focus('#benchmark')", "Benchmark"),
        Binding("h", "focus('#hardware')", "Hardware"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[SeriesKey] = []
        self.series: TrendSeries | None = None
        self.view = trend.TrendView()

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="trend-pickers"):
            yield Select[str]([], prompt="benchmark", id="benchmark", allow_blank=True)
            yield Select[str]([], prompt="hardware", id="hardware", allow_blank=True)
        yield TrendChart(id="chart")
        yield Static("loading benchmark history ...", id="trend-summary")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if not self.keys:
            self.action_reload()

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        pass  # history changes only when a run ends: `r` reloads

    def action_reload(self) -> None:
        self._load_keys()

    @work(thread=True, exclusive=True, group="trend-keys")
    def _load_keys(self) -> None:
        try:
            keys = self.dtf.source.series_keys()
        except SourceError as exc:
            self.dtf.to_ui(self._summary, f"no history: {exc}")
            return
        self.dtf.to_ui(self._set_keys, keys)

    def _summary(self, text: str) -> None:
        self.query_one("#trend-summary", Static).update(text)

    def _set_keys(self, keys: list[SeriesKey]) -> None:
        self.keys = keys
        if not keys:
            self._summary("no benchmark history yet")
            return
        bench = self.query_one("#benchmark", Select)
        names = sorted({k.benchmark for k in keys})
        bench.set_options([(n, n) for n in names])
        if bench.value not in names:
            bench.value = names[0]
        else:
            self._benchmark_changed(str(bench.value))

    def _benchmark_changed(self, name: str) -> None:
        hw = self.query_one("#hardware", Select)
        choices = sorted({k.hardware for k in self.keys if k.benchmark == name})
        hw.set_options([(h or "unknown hardware", h) for h in choices])
        if choices:
            hw.value = choices[0]
            self._load_series(SeriesKey(name, choices[0]))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value is Select.BLANK:
            return
        if event.select.id == "benchmark":
            self._benchmark_changed(str(event.value))
        else:
            bench = self.query_one("#benchmark", Select).value
            if bench is not Select.BLANK:
                self._load_series(SeriesKey(str(bench), str(event.value)))

    @work(thread=True, exclusive=True, group="trend-series")
    def _load_series(self, key: SeriesKey) -> None:
        try:
            series = self.dtf.source.series(key)
        except SourceError as exc:
            self.dtf.to_ui(self._summary, str(exc))
            return
        view = trend.analyse(series)
        self.dtf.to_ui(self._show, series, view)

    def _show(self, series: TrendSeries, view: trend.TrendView) -> None:
        self.series, self.view = series, view
        self.query_one("#chart", TrendChart).show(
            series.key.label, series.unit, series.values, view
        )
        self._summary(describe(series, view))
