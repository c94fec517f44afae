"""Trends: one benchmark's history on one hardware, with its change points
(regressions in red) and a forecast band."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Select, Static

from dtf_core.reporting.format import when
from dtf_tui import trend
from dtf_tui.screens.base import SnapshotScreen
from dtf_tui.snapshot import ClusterSnapshot, SeriesKey, TrendSeries
from dtf_tui.widgets.trend_chart import TrendChart


def describe(series: TrendSeries, view: trend.TrendView) -> Content:
    """One line per change point: where, from what level to what, and whether it hurt.

    Content, not markup: units and run ids are the user's strings."""
    if not series.values:
        return Content("no data")
    lines = [
        Content.from_markup(
            "$n runs · unit $unit · last $last",
            n=len(series.values),
            unit=series.unit,
            last=f"{series.values[-1]:.4g}",
        )
    ]
    bounds = [0, *view.change_points, len(series.values)]
    for i, cp in enumerate(view.change_points):
        seg_before = sorted(series.values[bounds[i] : cp])
        seg_after = sorted(series.values[cp : bounds[i + 2]])
        before = seg_before[len(seg_before) // 2]
        after = seg_after[len(seg_after) // 2]
        change = (after - before) / before if before else 0.0
        tag = ("REGRESSION", "bold red") if cp in view.regressions else ("improvement", "green")
        lines.append(
            Content.assemble(
                f"change point at run #{cp} (",
                series.run_ids[cp],
                f", {when(series.times[cp])}): {before:.4g} → {after:.4g} ",
                series.unit,
                f" ({change:+.1%}) ",
                tag,
            )
        )
    if not view.change_points:
        lines.append(Content("no change point"))
    if view.forecast:
        lines.append(
            Content(
                f"forecast +{len(view.forecast) - 1} runs: {view.forecast[-1]:.4g}"
                f" [{view.forecast_low[-1]:.4g} .. {view.forecast_high[-1]:.4g}]"
            )
        )
    return Content("\n").join(lines)


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

    @work(thread=True, exclusive=True, group="trend-keys", exit_on_error=False)
    def _load_keys(self) -> None:
        self.dtf.load(
            "loading the benchmark history",
            self.dtf.source.series_keys,
            self._set_keys,
            lambda line: self._summary(f"no history: {line}"),
        )

    def _summary(self, text: str | Content) -> None:
        self.query_one("#trend-summary", Static).update(
            Content(text) if isinstance(text, str) else text
        )

    def _set_keys(self, keys: list[SeriesKey]) -> None:
        if not keys:
            self._summary("no benchmark history yet")
            return
        bench = self.query_one("#benchmark", Select)
        names = sorted({k.benchmark for k in keys})
        bench.set_options([(Text(n), n) for n in names])
        # Only once the options took: after a failure the next visit loads again.
        self.keys = keys
        if bench.value not in names:
            bench.value = names[0]
        else:
            self._benchmark_changed(str(bench.value))

    def _benchmark_changed(self, name: str) -> None:
        hw = self.query_one("#hardware", Select)
        choices = sorted({k.hardware for k in self.keys if k.benchmark == name})
        hw.set_options([(Text(h or "unknown hardware"), h) for h in choices])
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

    @work(thread=True, exclusive=True, group="trend-series", exit_on_error=False)
    def _load_series(self, key: SeriesKey) -> None:
        def fetch() -> tuple[TrendSeries, trend.TrendView]:
            series = self.dtf.source.series(key)
            return series, trend.analyse(series)

        self.dtf.load("loading a benchmark series", fetch, self._show, self._summary)

    def _show(self, loaded: tuple[TrendSeries, trend.TrendView]) -> None:
        series, view = loaded
        self.series, self.view = series, view
        self.query_one("#chart", TrendChart).show(
            series.key.label, series.unit, series.values, view
        )
        self._summary(describe(series, view))
