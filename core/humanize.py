"""Numbers for people: credits, bytes, rates, durations, ages, shares and estimates in the
words a gardener reads at a glance. Pure; every page, the tray, the CLI's text output and the
web dashboard use these (`--json` keeps the raw numbers).

Rules: no more digits than the number deserves; a unit always; a share never above 100 %;
an estimate with its uncertainty; a plural that agrees with its count.
"""

from __future__ import annotations

import math
import time

NOT_MEASURED = "not measured"


def plural(n: float, one: str, many: str | None = None) -> str:
    """"1 village", "3 villages", "0 villages" (`n` rounded as it is shown)."""
    shown = round(n)
    return f"{shown:,} {one if shown == 1 else (many or one + 's')}"


def credits(x: float) -> str:
    """"0 credits", "less than 0.01 credits", "4.1 credits", "1,234 credits"."""
    if math.isnan(x):
        return NOT_MEASURED
    sign = "-" if x < 0 else ""
    a = abs(x)
    if a == 0:
        return "0 credits"
    if a < 0.01:
        return f"{'more than -' if sign else 'less than '}0.01 credits"
    if a < 10:
        text = f"{a:.2f}".rstrip("0").rstrip(".")
    elif a < 100:
        text = f"{a:.1f}".rstrip("0").rstrip(".")
    else:
        text = f"{a:,.0f}"
    return f"{sign}{text} credit{'' if text == '1' else 's'}"


def credit_rate(per_unit: float, one: str, many: str | None = None) -> str:
    """What a kind of work earns, scaled to an amount a person can picture: "4 credits per
    million samples" rather than "4e-06 per unit"."""
    if per_unit <= 0:
        return "nothing"
    many = many or one + "s"
    for scale, words in ((1e3, "thousand "), (1e6, "million "), (1e9, "billion ")):
        if per_unit >= 0.1:
            return f"{credits(per_unit)} per {one}"
        if per_unit * scale >= 0.1:
            return f"{credits(per_unit * scale)} per {words}{many}"
    return f"{credits(per_unit * 1e12)} per trillion {many}"


def nbytes(n: float) -> str:
    """"512 B", "4.2 kB", "12 MB", "1.3 GB" (decimal units, as disks and networks count)."""
    n = max(0.0, float(n))
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.1f} {unit}" if v < 10 else f"{v:,.0f} {unit}"
    return f"{n:.0f} B"


def byte_rate(bytes_per_s: float) -> str:
    return nbytes(bytes_per_s) + "/s"


def kbps(kb_per_s: float) -> str:
    """A rate given in kB/s (as the limits are set)."""
    return byte_rate(kb_per_s * 1000)


def duration(seconds: float) -> str:
    """"45 s", "12 min", "2 h 5 min", "3 days"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h" + (f" {m} min" if m else "")
    return plural(s / 86400, "day")


def hours(seconds: float) -> str:
    """Work time as hours: "0 h", "12 min", "1.5 h", "230 h"."""
    h = max(0.0, seconds) / 3600
    if h == 0:
        return "0 h"
    if h < 1:
        return f"{max(1, round(h * 60))} min"
    return f"{h:.1f} h" if h < 10 else f"{h:,.0f} h"


def ago(seconds: float) -> str:
    """"just now", "45 s ago", "3 min ago", "2 h ago", "yesterday", "4 days ago"."""
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    return f"{seconds // 86400:.0f} days ago"


def at_clock(wall: float) -> str:
    """"18:00" today, "Tue 18:00" within a week, else the date."""
    now = time.time()
    lt = time.localtime(wall)
    if time.localtime(now)[:3] == lt[:3]:
        return time.strftime("%H:%M", lt)
    if abs(wall - now) < 6 * 86400:
        return time.strftime("%a %H:%M", lt)
    return time.strftime("%d %b %Y", lt)


def percent(share: float) -> str:
    """A share (0..1) as "37 %", never below 0 or above 100; "<1 %" for a little."""
    if math.isnan(share):
        return NOT_MEASURED
    p = 100 * min(1.0, max(0.0, share))
    if 0 < p < 1:
        return "<1 %"
    return f"{p:.0f} %"


def estimate(value: float, uncertainty: float, one: str, many: str | None = None) -> str:
    """"about 30 villages (±3)": a count with its relative uncertainty as a ± in the same
    units; an exactly counted one ("3 villages") when the uncertainty rounds to nothing."""
    if value <= 0 or math.isnan(value):
        return NOT_MEASURED
    spread = abs(value * uncertainty)
    if round(spread) < 1:
        return plural(value, one, many)
    return f"about {plural(value, one, many)} (±{spread:,.0f})"


def temperature(celsius: float | None) -> str:
    return NOT_MEASURED if celsius is None else f"{celsius:.0f} °C"


def day_start(now: float) -> float:
    """Local midnight before `now` (the gardener's "today")."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
