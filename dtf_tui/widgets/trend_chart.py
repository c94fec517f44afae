"""A benchmark's history as a chart: the series, its change points (regressions
in red), and a forecast band. Takes plain lists, so the analysis behind it can
change without touching the widget."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from dtf_tui.trend import TrendView


class TrendChart(PlotextPlot):
    DEFAULT_CSS = """
    TrendChart {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.values: list[float] = []
        self.view = TrendView()
        self.title = ""
        self.unit = ""

    @property
    def change_points(self) -> list[int]:
        return list(self.view.change_points)

    def show(self, title: str, unit: str, values: Sequence[float], view: TrendView) -> None:
        self.title, self.unit, self.values, self.view = title, unit, list(values), view
        self._draw()

    def clear(self) -> None:
        self.show("", "", [], TrendView())

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        if not self.values:
            plt.title("no benchmark selected")
            self.refresh()
            return
        plt.title(self.title)
        plt.xlabel("run")
        plt.ylabel(self.unit)
        xs = list(range(len(self.values)))
        plt.plot(xs, self.values, marker="braille", color="blue", label="median")
        for cp in self.view.change_points:
            color = "red" if cp in self.view.regressions else "green"
            plt.vline(cp - 0.5, color)
        if self.view.forecast:
            fx = self.view.forecast_x
            plt.plot(fx, self.view.forecast, marker="braille", color="cyan", label="forecast")
            plt.plot(fx, self.view.forecast_low, marker="dot", color="gray")
            plt.plot(fx, self.view.forecast_high, marker="dot", color="gray")
        self.refresh()
