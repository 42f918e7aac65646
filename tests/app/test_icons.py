"""The tray icon at 16 px, the size most panels draw it: each state stands out from a dark and
from a light panel (WCAG's 3:1 for graphics, within its outer three pixels: the dark rim
does it on light panels, the disc on dark ones), and no two states look alike."""

from __future__ import annotations

import itertools
from typing import Any

from PySide6.QtGui import QColor, QImage, QPainter

from app.icons import STATES, icon_for

PANELS = {"dark": "#202124", "light": "#f1f3f4"}  # GNOME's and Windows' panels, roughly


def _luminance(c: QColor) -> float:
    def channel(v: int) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(c.red()) + 0.7152 * channel(c.green()) + 0.0722 * channel(c.blue())


def _contrast(a: QColor, b: QColor) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _render(state: str, panel: str) -> QImage:
    img = QImage(16, 16, QImage.Format.Format_ARGB32)
    img.fill(QColor(panel))
    p = QPainter(img)
    icon_for(state).paint(p, 0, 0, 16, 16)
    p.end()
    return img


def test_every_state_stands_out_from_dark_and_light_panels_at_16_px(qapp: Any) -> None:
    weak = []
    for (name, panel), state in itertools.product(PANELS.items(), STATES):
        img, bg = _render(state, panel), QColor(panel)
        for side in ((0, 1, 2), (15, 14, 13)):  # the rim, left and right of the middle row
            best = max(_contrast(img.pixelColor(x, 8), bg) for x in side)
            if best < 3.0:
                weak.append(f"{state} on {name}: {best:.2f}")
    assert not weak, weak


def test_no_two_states_look_alike_at_16_px(qapp: Any) -> None:
    def mean(img: QImage) -> tuple[float, float, float]:
        px = [img.pixelColor(x, y) for x in range(16) for y in range(16)]
        return (sum(c.red() for c in px) / 256, sum(c.green() for c in px) / 256,
                sum(c.blue() for c in px) / 256)

    for panel in PANELS.values():
        means = {s: mean(_render(s, panel)) for s in STATES}
        close = [(a, b) for a, b in itertools.combinations(STATES, 2)
                 if sum((x - y) ** 2 for x, y in zip(means[a], means[b], strict=True))
                 ** 0.5 < 12]
        assert not close, close
