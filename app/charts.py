"""Two small charts drawn with QPainter (PySide6-Essentials has no QtCharts): a line chart
over time and a bar histogram. Each keeps its data; `paintEvent` only draws, in the colours of
the desktop's palette (a dark desktop gets dark charts), antialiased at any device pixel
ratio."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

SERIES = (QColor("#1e8e3e"), QColor("#1a73e8"), QColor("#e37400"))


class _Chart(QWidget):
    def __init__(self, title: str, empty: str) -> None:
        super().__init__()
        self.title = title
        self.empty = empty
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    @property
    def ink(self) -> QColor:
        return self.palette().color(QPalette.ColorRole.Text)

    @property
    def grid(self) -> QColor:
        return self.palette().color(QPalette.ColorRole.Mid)

    def _frame(self, p: QPainter) -> QRectF:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        p.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Base))
        p.setPen(self.ink)
        p.drawText(QRectF(8, 4, self.width() - 16, 18), Qt.AlignmentFlag.AlignLeft, self.title)
        return QRectF(52, 40, max(10, self.width() - 64), max(10, self.height() - 64))

    def _empty(self, p: QPainter, area: QRectF) -> None:
        p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        p.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.empty)


class LineChart(_Chart):
    """Series of (t, value) points on a shared time axis; each series its own colour."""

    def __init__(self, title: str, names: Sequence[str], empty: str, *,
                 ceiling: float | None = None, unit: str = "") -> None:
        """`ceiling`: the axis never goes above it (100 for a percentage); `unit` follows
        the axis's numbers ("%", " h")."""
        super().__init__(title, empty)
        self.ceiling, self.unit = ceiling, unit
        self.names = tuple(names)
        self.series: list[list[tuple[float, float]]] = [[] for _ in self.names]

    def set_points(self, points: Sequence[tuple[float, ...]]) -> None:
        """Rows of (t, v1, v2, ...), one value per series."""
        self.series = [[(row[0], row[i + 1]) for row in points] for i in range(len(self.names))]
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        area = self._frame(p)
        pts = [pt for s in self.series for pt in s]
        if len(pts) < 2:
            self._empty(p, area)
            p.end()
            return
        t0, t1 = min(t for t, _ in pts), max(t for t, _ in pts)
        top = _nice(max(1e-09, *(v for _, v in pts)) * 1.1)
        if self.ceiling is not None:
            top = min(top, self.ceiling)
        span = max(1e-9, t1 - t0)
        p.setPen(QPen(self.grid, 1))
        for k in range(5):
            y = area.bottom() - area.height() * k / 4
            p.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            p.setPen(self.ink)
            p.drawText(QRectF(0, y - 8, 48, 16), Qt.AlignmentFlag.AlignRight,
                       f"{top * k / 4:g}{self.unit}")
            p.setPen(QPen(self.grid, 1))
        p.setPen(self.ink)
        fmt = "%H:%M" if span < 86400 else "%a %H:%M" if span < 5 * 86400 else "%d %b"
        for t, align in ((t0, Qt.AlignmentFlag.AlignLeft), (t1, Qt.AlignmentFlag.AlignRight)):
            p.drawText(QRectF(area.left(), area.bottom() + 4, area.width(), 16), align,
                       time.strftime(fmt, time.localtime(t)))
        for i, s in enumerate(self.series):
            p.setPen(QPen(SERIES[i % len(SERIES)], 2))
            line = [QPointF(area.left() + area.width() * (t - t0) / span,
                            area.bottom() - area.height() * min(v, top) / top) for t, v in s]
            for a, b in itertools.pairwise(line):
                p.drawLine(a, b)
            if len(self.series) > 1:
                p.drawText(QRectF(area.left() + 8 + 160 * i, 20, 150, 18),
                           Qt.AlignmentFlag.AlignLeft, self.names[i])
        p.end()


class BarChart(_Chart):
    """Labelled counts, one bar each; `fmt` writes the number above a bar."""

    def __init__(self, title: str, empty: str,
                 fmt: Callable[[float], str] = lambda v: f"{v:g}", *,
                 one_colour: bool = False) -> None:
        """`one_colour`: every bar the same colour (days of one series, not categories)."""
        super().__init__(title, empty)
        self.fmt, self.one_colour = fmt, one_colour
        self.bars: list[tuple[str, float]] = []

    def set_bars(self, bars: Sequence[tuple[str, float]]) -> None:
        self.bars = list(bars)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        area = self._frame(p)
        if not self.bars or max(v for _, v in self.bars) <= 0:
            self._empty(p, area)
            p.end()
            return
        top = max(v for _, v in self.bars)
        w = area.width() / len(self.bars)
        for i, (label, v) in enumerate(self.bars):
            h = (area.height() - 16) * v / top
            bar = QRectF(area.left() + i * w + w * 0.15, area.bottom() - 16 - h, w * 0.7, h)
            p.fillRect(bar, SERIES[0 if self.one_colour else i % len(SERIES)])
            p.setPen(self.ink)
            p.drawText(QRectF(bar.left(), bar.top() - 16, bar.width(), 16),
                       Qt.AlignmentFlag.AlignCenter, self.fmt(v))
            p.drawText(QRectF(area.left() + i * w, area.bottom() - 14, w, 16),
                       Qt.AlignmentFlag.AlignCenter, label)
        p.end()


def _nice(top: float) -> float:
    """A round axis maximum at or above `top` (1, 2, 4 or 5 times a power of ten)."""
    import math

    exp = math.floor(math.log10(top))
    for m in (1, 2, 4, 5, 10):
        if m * 10**exp >= top:
            return float(m * 10**exp)
    return float(10 ** (exp + 1))
