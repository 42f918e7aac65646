"""Weekly compute schedule: parsing and "is now inside it?". Pure.

Text form, entries separated by ';':  `DAYS [HH:MM-HH:MM]`.
- DAYS: `mon`, `mon-fri`, `sat,sun`, `fri-mon` (wraps over the week end), or `daily`.
- A window that ends at or before it starts runs past midnight into the next day:
  `mon-fri 18:00-08:00` is Monday 18:00 to Tuesday 08:00, …, Friday 18:00 to Saturday 08:00.
- No times: the whole day. Empty text: any time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK = 7 * 24 * 60
_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True)
class Schedule:
    windows: tuple[tuple[int, int], ...]  # [start, end) minutes of the week; end may be > WEEK

    @property
    def always(self) -> bool:
        return not self.windows

    def allows(self, weekday: int, minute_of_day: int) -> bool:
        """`weekday` 0 = Monday (datetime.weekday()), `minute_of_day` 0..1439."""
        if self.always:
            return True
        m = weekday * 24 * 60 + minute_of_day
        return any(s <= m < e or s <= m + WEEK < e for s, e in self.windows)


def _minutes(text: str) -> int:
    match = _TIME.match(text)
    if not match or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValueError(f"'{text}' is not a time (HH:MM)")
    return int(match.group(1)) * 60 + int(match.group(2))


def _days(text: str) -> list[int]:
    if text == "daily":
        return list(range(7))
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            if a not in DAYS or b not in DAYS:
                raise ValueError(f"'{part}' is not a day range (like mon-fri)")
            i, j = DAYS.index(a), DAYS.index(b)
            out += [(i + k) % 7 for k in range((j - i) % 7 + 1)]
        elif part in DAYS:
            out.append(DAYS.index(part))
        else:
            raise ValueError(f"'{part}' is not a day (mon … sun, or daily)")
    return out


def parse_schedule(text: str) -> Schedule:
    windows: list[tuple[int, int]] = []
    for entry in (e.strip().lower() for e in text.split(";")):
        if not entry:
            continue
        parts = entry.split()
        if len(parts) > 2:
            raise ValueError(f"'{entry}' should be DAYS or DAYS HH:MM-HH:MM")
        days = _days(parts[0])
        if len(parts) == 1:
            start, length = 0, 24 * 60
        else:
            if "-" not in parts[1]:
                raise ValueError(f"'{parts[1]}' should be HH:MM-HH:MM")
            a, b = parts[1].split("-", 1)
            start, end = _minutes(a), _minutes(b)
            length = end - start if end > start else end + 24 * 60 - start
        for d in days:
            windows.append((d * 24 * 60 + start, d * 24 * 60 + start + length))
    return Schedule(tuple(sorted(windows)))
