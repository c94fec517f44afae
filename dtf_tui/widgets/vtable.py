"""A table that draws only the rows on screen.

Textual's DataTable builds a row object per ``add_row`` and measures it: 20,000
rows took ~4 s to add and paint (measured here), and a live view replaces
them every second. This table keeps a plain sequence of items and formats just
the visible rows in :meth:`render_line`, so its cost does not grow with the row
count. Sorting and filtering belong to the screen that owns the data; the table
says when the user asks for them (:class:`VirtualTable.SortChanged`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

# A cell: plain text, or (text, Rich style string) for colour.
Cell = str | tuple[str, str]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # cells; 0 = takes what the fixed columns leave (at least 8)
    right: bool = False  # right-align (numbers)
    hide_below: int = 0  # hidden when the table is narrower than this (80x24 stays usable)


@dataclass(frozen=True)
class _Paint:
    base: Style
    header: Style
    cursor: Style
    layout: list[tuple[int, Column, int]]
    width: int


@lru_cache(maxsize=256)
def _style(spec: str) -> Style:
    return Style.parse(spec) if spec else Style()


def _fit(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        return set_cell_size(text[: max(width - 1, 0)] + "…", width)
    return set_cell_size(text.rjust(width) if right else text, width)


class VirtualTable(Widget, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"vtable--header", "vtable--cursor"}
    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        background: $surface;
    }
    VirtualTable > .vtable--header {
        background: $panel;
        color: $text;
        text-style: bold;
    }
    VirtualTable > .vtable--cursor {
        background: $boost;
        text-style: reverse;
    }
    VirtualTable:focus > .vtable--cursor {
        background: $accent;
        color: $text;
        text-style: bold;
    }
    """

    class _RowMessage(Message):
        def __init__(self, table: VirtualTable, item: Any) -> None:
            super().__init__()
            self.table = table
            self.item = item

        @property
        def control(self) -> VirtualTable:
            return self.table

    class RowSelected(_RowMessage):
        """Enter, or a click on the highlighted row."""

    class RowHighlighted(_RowMessage):
        """The cursor moved to another row."""

    class SortChanged(Message):
        def __init__(self, table: VirtualTable, key: str | None, reverse: bool) -> None:
            super().__init__()
            self.table = table
            self.key = key
            self.reverse = reverse

        @property
        def control(self) -> VirtualTable:
            return self.table

    cursor: reactive[int] = reactive(0, repaint=True)

    def __init__(
        self,
        columns: Sequence[Column],
        formatter: Callable[[Any], Sequence[Cell]],
        *,
        row_key: Callable[[Any], object] = id,
        row_style: Callable[[Any], str] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self.formatter = formatter
        self.row_key = row_key
        self.row_style = row_style
        self.items: Sequence[Any] = ()
        self.sort_key: str | None = None
        self.sort_reverse = False
        self._top = 0
        self._paint: _Paint | None = None
        self._strips: dict[int, tuple[Any, bool, Strip]] = {}  # row index -> (item, cursor, strip)
        self._strips_for: object = None

    # ---- data ----------------------------------------------------------------

    def set_items(self, items: Sequence[Any]) -> None:
        """Show ``items`` in this order; the highlighted row follows its key."""
        current = self.highlighted
        resized = len(items) != len(self.items)
        self.items = items
        if current is not None:
            key = self.row_key(current)
            if not (self.cursor < len(items) and self.row_key(items[self.cursor]) == key):
                for i, item in enumerate(items):
                    if self.row_key(item) == key:
                        self.cursor = i
                        break
        self.cursor = max(0, min(self.cursor, len(items) - 1))
        self._scroll_to_cursor()
        # With `height: auto` the row count is the height: lay out again when it changes.
        height = self.styles.height
        self.refresh(layout=resized and height is not None and height.is_auto)

    @property
    def highlighted(self) -> Any:
        return self.items[self.cursor] if 0 <= self.cursor < len(self.items) else None

    def watch_cursor(self, old: int, new: int) -> None:
        if old != new and self.highlighted is not None:
            self.post_message(self.RowHighlighted(self, self.highlighted))

    # ---- geometry ----------------------------------------------------------------

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self.items) + 1  # for `height: auto`; the header is the +1

    @property
    def _page(self) -> int:
        return max(1, self.size.height - 1)

    def _scroll_to_cursor(self) -> None:
        if self.cursor < self._top:
            self._top = self.cursor
        elif self.cursor >= self._top + self._page:
            self._top = self.cursor - self._page + 1
        self._top = max(0, min(self._top, max(0, len(self.items) - self._page)))

    def _layout(self) -> list[tuple[int, Column, int]]:
        """(index in the formatter's cells, column, width) of the columns that fit."""
        shown = [(i, c) for i, c in enumerate(self.columns) if self.size.width >= c.hide_below]
        fixed = sum(c.width for _, c in shown) + len(shown) - 1
        flex = [c for _, c in shown if c.width == 0]
        spare = max(8, (self.size.width - fixed) // max(1, len(flex))) if flex else 0
        return [(i, c, c.width or spare) for i, c in shown]

    # ---- drawing -------------------------------------------------------------------
    #
    # Textual asks for one line at a time. What every line needs (styles, the
    # column layout) is worked out once per paint in render_lines, and a row
    # whose item is the same object as last paint reuses its strip: snapshot
    # rows are frozen, so an unchanged row is literally the same object.

    def render_lines(self, crop: Region) -> list[Strip]:
        base = self.rich_style
        self._paint = _Paint(
            base=base,
            header=base + self._component("vtable--header"),
            cursor=base + self._component("vtable--cursor"),
            layout=self._layout(),
            width=self.size.width,
        )
        key = (self._paint.width, base, self._paint.cursor)
        if key != self._strips_for:
            self._strips.clear()
            self._strips_for = key
        try:
            return super().render_lines(crop)
        finally:
            self._paint = None

    def render_line(self, y: int) -> Strip:
        paint = self._paint or _Paint(
            self.rich_style, self.rich_style, self.rich_style, self._layout(), self.size.width
        )
        if y == 0:
            return self._line(paint, self._header_cells(), paint.header)
        index = self._top + y - 1
        if index >= len(self.items):
            return Strip.blank(paint.width, paint.base)
        item = self.items[index]
        is_cursor = index == self.cursor
        cached = self._strips.get(index)
        if cached is not None and cached[0] is item and cached[1] == is_cursor:
            return cached[2]
        style = paint.cursor if is_cursor else paint.base
        if self.row_style is not None and not is_cursor:
            style += _style(self.row_style(item))
        strip = self._line(paint, self.formatter(item), style, cursor=is_cursor)
        if len(self._strips) > 1024:  # scrolled far: keep what is near the screen only
            self._strips.clear()
        self._strips[index] = (item, is_cursor, strip)
        return strip

    def _component(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    def _header_cells(self) -> list[Cell]:
        cells: list[Cell] = []
        for c in self.columns:
            mark = ("▼" if self.sort_reverse else "▲") if c.key == self.sort_key else ""
            cells.append(c.label + mark)
        return cells

    @staticmethod
    def _line(paint: _Paint, cells: Sequence[Cell], style: Style, cursor: bool = False) -> Strip:
        segments = []
        used = 0
        for n, (i, column, width) in enumerate(paint.layout):
            cell = cells[i] if i < len(cells) else ""
            text, spec = (cell, "") if isinstance(cell, str) else cell
            cell_style = style if cursor or not spec else style + _style(spec)
            if n:
                segments.append(Segment(" ", style))
                used += 1
            take = min(width, paint.width - used)
            if take <= 0:
                break
            segments.append(Segment(_fit(text, take, column.right), cell_style))
            used += take
        if used < paint.width:
            segments.append(Segment(" " * (paint.width - used), style))
        # One Strip per line, built at its final length: Strip() is not free.
        return Strip(segments, paint.width)

    # ---- actions -------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.cursor = max(0, min(len(self.items) - 1, self.cursor + delta))
        self._scroll_to_cursor()
        self.refresh()

    def action_page(self, direction: int) -> None:
        self.action_move(direction * self._page)

    def action_jump(self, where: int) -> None:
        self.action_move((len(self.items) if where < 0 else -len(self.items)) or 0)

    def action_select(self) -> None:
        if self.highlighted is not None:
            self.post_message(self.RowSelected(self, self.highlighted))

    def action_cycle_sort(self) -> None:
        keys = [c.key for c in self.columns]
        i = keys.index(self.sort_key) + 1 if self.sort_key in keys else 0
        self.sort_key = keys[i] if i < len(keys) else None
        self.sort_reverse = False
        self._sort_changed()

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._sort_changed()

    def sort_by(self, key: str | None, reverse: bool = False) -> None:
        self.sort_key, self.sort_reverse = key, reverse
        self._sort_changed()

    def _sort_changed(self) -> None:
        self.refresh()
        self.post_message(self.SortChanged(self, self.sort_key, self.sort_reverse))

    # ---- mouse -----------------------------------------------------------------------

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._top = min(max(0, len(self.items) - self._page), self._top + 3)
        self.refresh()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._top = max(0, self._top - 3)
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:  # a header click sorts by that column, again reverses
            x = 0
            for _, column, width in self._layout():
                if x <= event.x < x + width + 1:
                    if self.sort_key == column.key:
                        self.action_reverse_sort()
                    else:
                        self.sort_by(column.key)
                    return
                x += width + 1
            return
        index = self._top + event.y - 1
        if index < len(self.items):
            if index == self.cursor:
                self.action_select()
            self.cursor = index
            self.refresh()
