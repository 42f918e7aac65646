"""Small, pure calendar helpers."""

from __future__ import annotations

import datetime as dt


def tomorrow_at(hour: int, now: float) -> float:
    """Wall-clock seconds of `hour`:00 local time on the day after `now`."""
    t = dt.datetime.fromtimestamp(now).astimezone()
    nxt = (t + dt.timedelta(days=1)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return nxt.timestamp()
