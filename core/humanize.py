"""Numbers for people: credits, bytes, rates, durations, ages, shares and estimates in the
words a gardener reads at a glance. Pure; every page, the tray, the CLI's text output and the
web dashboard use these (`--json` keeps the raw numbers).

Rules: no more digits than the number deserves; a unit always; a share never above 100 %;
an estimate with its uncertainty; a plural that agrees with its count.
"""

from __future__ import annotations

import math
import time

from core.i18n import QT_TR_NOOP, tr

NOT_MEASURED = QT_TR_NOOP("not measured")
# the nouns counted on the pages (plural() and estimate() translate the word they are given)
NOUNS = (QT_TR_NOOP("village"), QT_TR_NOOP("villages"), QT_TR_NOOP("other village"),
         QT_TR_NOOP("other villages"), QT_TR_NOOP("other"), QT_TR_NOOP("others"),
         QT_TR_NOOP("receipt"), QT_TR_NOOP("receipts"), QT_TR_NOOP("check"),
         QT_TR_NOOP("checks"), QT_TR_NOOP("day"), QT_TR_NOOP("days"), QT_TR_NOOP("entry"),
         QT_TR_NOOP("entries"), QT_TR_NOOP("persona"), QT_TR_NOOP("personas"))


def plural(n: float, one: str, many: str | None = None) -> str:
    """"1 village", "3 villages", "0 villages" (`n` rounded as it is shown)."""
    shown = round(n)
    return f"{shown:,} {tr(one) if shown == 1 else tr(many or one + 's')}"


def credits(x: float) -> str:
    """"0 credits", "less than 0.01 credits", "4.1 credits", "1,234 credits"."""
    if math.isnan(x):
        return tr(NOT_MEASURED)
    sign = "-" if x < 0 else ""
    a = abs(x)
    if a == 0:
        return tr("0 credits")
    if a < 0.01:
        return tr("more than -0.01 credits") if sign else tr("less than 0.01 credits")
    if a < 10:
        text = f"{a:.2f}".rstrip("0").rstrip(".")
    elif a < 100:
        text = f"{a:.1f}".rstrip("0").rstrip(".")
    else:
        text = f"{a:,.0f}"
    return (tr("{0} credit") if text == "1" else tr("{0} credits")).format(sign + text)


def credit_rate(per_unit: float, one: str, many: str | None = None) -> str:
    """What a kind of work earns, scaled to an amount a person can picture: "4 credits per
    million samples" rather than "4e-06 per unit"."""
    if per_unit <= 0:
        return tr("nothing")
    many = many or one + "s"
    for scale, words in ((1e3, QT_TR_NOOP("{0} per thousand {1}")),
                         (1e6, QT_TR_NOOP("{0} per million {1}")),
                         (1e9, QT_TR_NOOP("{0} per billion {1}"))):
        if per_unit >= 0.1:
            return tr("{0} per {1}").format(credits(per_unit), one)
        if per_unit * scale >= 0.1:
            return tr(words).format(credits(per_unit * scale), many)
    return tr("{0} per trillion {1}").format(credits(per_unit * 1e12), many)


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
        return tr("{0} s").format(s)
    if s < 3600:
        return tr("{0} min").format(s // 60)
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return tr("{0} h").format(h) + (" " + tr("{0} min").format(m) if m else "")
    return plural(s / 86400, "day")


def hours(seconds: float) -> str:
    """Work time as hours: "0 h", "12 min", "1.5 h", "230 h"."""
    h = max(0.0, seconds) / 3600
    if h == 0:
        return tr("{0} h").format(0)
    if h < 1:
        return tr("{0} min").format(max(1, round(h * 60)))
    return tr("{0} h").format(f"{h:.1f}" if h < 10 else f"{h:,.0f}")


def ago(seconds: float) -> str:
    """"just now", "45 s ago", "3 min ago", "2 h ago", "yesterday", "4 days ago"."""
    if seconds < 5:
        return tr("just now")
    if seconds < 60:
        return tr("{0:.0f} s ago").format(seconds)
    if seconds < 3600:
        return tr("{0:.0f} min ago").format(seconds // 60)
    if seconds < 86400:
        return tr("{0:.0f} h ago").format(seconds // 3600)
    if seconds < 2 * 86400:
        return tr("yesterday")
    return tr("{0:.0f} days ago").format(seconds // 86400)


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
        return tr(NOT_MEASURED)
    p = 100 * min(1.0, max(0.0, share))
    if 0 < p < 1:
        return "<1 %"
    return f"{p:.0f} %"


def estimate(value: float, uncertainty: float, one: str, many: str | None = None) -> str:
    """"about 30 villages (±3)": a count with its relative uncertainty as a ± in the same
    units; an exactly counted one ("3 villages") when the uncertainty rounds to nothing."""
    if value <= 0 or math.isnan(value):
        return tr(NOT_MEASURED)
    spread = abs(value * uncertainty)
    if round(spread) < 1:
        return plural(value, one, many)
    return tr("about {0} (±{1:,.0f})").format(plural(value, one, many), spread)


def temperature(celsius: float | None) -> str:
    return tr(NOT_MEASURED) if celsius is None else f"{celsius:.0f} °C"


def day_start(now: float) -> float:
    """Local midnight before `now` (the gardener's "today")."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
