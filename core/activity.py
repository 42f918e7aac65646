"""What Grove did on this computer, hour by hour: the processor time the node process used,
the bytes it sent and received, and how long the network's work was allowed to run. For the
Overview's "today / this week" and the contribution charts.

Measured, never estimated: `ActivityMeter` turns running totals the node reads (the process's
CPU seconds from psutil, the bandwidth meter's byte counts, the governor's allowance) into
per-hour sums (pure: the caller passes the totals and the clock). `ActivityStore` keeps the
hours in one SQLite file (WAL, synchronous=FULL: a kill -9 loses at most the minute not yet
written) and forgets hours older than `KEEP_DAYS`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import sqlite_utils
import trio

from core.humanize import day_start
from core.snapshot import ActivityView

if TYPE_CHECKING:
    from core.ports import ServiceContext

HOUR = 3600
KEEP_DAYS = 35
FILE = "activity.db"
FLUSH_EVERY = 60.0  # s between writes (the node's activity task)


@dataclass(frozen=True)
class Hour:
    start: int             # wall-clock seconds, a multiple of HOUR
    cpu_seconds: float     # processor time of the node process (all cores)
    sent: int              # bytes through the bandwidth caps
    received: int
    allowed_seconds: float  # wall time the governor let the network's work run


class ActivityMeter:
    """Running totals -> per-hour increments. Pure."""

    def __init__(self) -> None:
        self._last: tuple[float, float, int, int] | None = None
        self.pending: dict[int, list[float]] = {}  # hour start -> [cpu, sent, received, allowed]

    def read(self, now: float, cpu_seconds: float, sent: int, received: int,
             allowed: bool) -> None:
        """Count what happened since the last reading into the hour of `now` (readings a
        minute apart: an increment that straddles an hour counts in the later one). A total
        that went down (a restarted process, a reset meter) starts over from it."""
        last, self._last = self._last, (now, cpu_seconds, sent, received)
        if last is None or now <= last[0]:
            return
        row = self.pending.setdefault(int(now // HOUR) * HOUR, [0.0, 0.0, 0.0, 0.0])
        row[0] += max(0.0, cpu_seconds - last[1]) if cpu_seconds >= last[1] else cpu_seconds
        row[1] += max(0, sent - last[2]) if sent >= last[2] else sent
        row[2] += max(0, received - last[3]) if received >= last[3] else received
        row[3] += (now - last[0]) if allowed else 0.0

    def take(self) -> list[Hour]:
        out = [Hour(h, r[0], int(r[1]), int(r[2]), r[3]) for h, r in sorted(self.pending.items())]
        self.pending.clear()
        return out


class ActivityStore:
    """The hours, in one SQLite file. Call it off the trio thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        db = sqlite_utils.Database(self._conn)
        if "hours" not in db.table_names():
            db.table("hours").create({"start": int, "cpu_seconds": float, "sent": int,
                                "received": int, "allowed_seconds": float}, pk="start")

    def close(self) -> None:
        self._conn.close()

    def add(self, hours: list[Hour], now: float | None = None) -> None:
        """Add the increments (one transaction) and forget hours past KEEP_DAYS."""
        now = time.time() if now is None else now
        with self._conn:
            self._conn.execute("BEGIN")
            for h in hours:
                self._conn.execute(
                    "INSERT INTO hours VALUES (?, ?, ?, ?, ?) ON CONFLICT(start) DO UPDATE SET "
                    "cpu_seconds = cpu_seconds + excluded.cpu_seconds, "
                    "sent = sent + excluded.sent, received = received + excluded.received, "
                    "allowed_seconds = allowed_seconds + excluded.allowed_seconds",
                    (h.start, h.cpu_seconds, h.sent, h.received, h.allowed_seconds))
            self._conn.execute("DELETE FROM hours WHERE start < ?",
                               (int(now - KEEP_DAYS * 86400),))

    def since(self, start: float) -> list[Hour]:
        rows = self._conn.execute(
            "SELECT start, cpu_seconds, sent, received, allowed_seconds FROM hours "
            "WHERE start >= ? ORDER BY start", (int(start // HOUR) * HOUR,)).fetchall()
        return [Hour(int(r[0]), float(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows]


def summarise(hours: list[Hour], pending: list[Hour], now: float
              ) -> tuple[Hour, Hour, tuple[tuple[float, float], ...]]:
    """(today, the last 7 days, processor hours per hour over the last 7 days) from the
    stored hours and the ones not yet written. Pure."""
    by: dict[int, list[float]] = {}
    for h in [*hours, *pending]:
        r = by.setdefault(h.start, [0.0, 0.0, 0.0, 0.0])
        r[0] += h.cpu_seconds
        r[1] += h.sent
        r[2] += h.received
        r[3] += h.allowed_seconds

    def total(since: float) -> Hour:
        rows = [r for s, r in by.items() if s >= since - HOUR + 1]
        return Hour(int(since), sum(r[0] for r in rows), int(sum(r[1] for r in rows)),
                    int(sum(r[2] for r in rows)), sum(r[3] for r in rows))

    week_from = now - 7 * 86400
    series = tuple((float(s), r[0] / HOUR) for s, r in sorted(by.items()) if s >= week_from)
    return total(day_start(now)), total(week_from), series


class ActivityService:
    """Reads the totals every FLUSH_EVERY s (trio's clock), writes the hours (off the
    trio thread), and keeps the summary the snapshot shows. `cpu_seconds`: the node
    process's processor time so far; `allowed`: whether the governor lets work run now."""

    def __init__(self, ctx: ServiceContext, *, cpu_seconds: Callable[[], float],
                 allowed: Callable[[], bool]) -> None:
        self.ctx, self.cpu_seconds, self.allowed = ctx, cpu_seconds, allowed
        self.meter = ActivityMeter()
        self.stored: list[Hour] = []  # the last week's, as last read back
        self.store: ActivityStore | None = None

    def _read(self) -> None:
        bw = self.ctx.bandwidth
        self.meter.read(self.ctx.clock.wall(), self.cpu_seconds(),
                        bw.sent if bw is not None else 0, bw.received if bw is not None else 0,
                        self.allowed())

    def _flush(self) -> None:  # in a worker thread
        assert self.store is not None
        now = self.ctx.clock.wall()
        self.store.add(self.meter.take(), now)
        self.stored = self.store.since(now - 7 * 86400 - HOUR)

    async def run(self) -> None:
        self.store = await trio.to_thread.run_sync(ActivityStore, self.ctx.data_dir / FILE)
        try:
            self._read()
            await trio.to_thread.run_sync(self._flush)
            while True:
                await trio.sleep(FLUSH_EVERY)
                self._read()
                await trio.to_thread.run_sync(self._flush)
        finally:
            with trio.CancelScope(shield=True):  # what was counted since the last write
                self._read()
                await trio.to_thread.run_sync(self._flush)
                store, self.store = self.store, None
                store.close()

    def view(self) -> ActivityView:
        if self.store is not None:
            self._read()  # what happened since the last reading counts now, not in a minute
        now = self.ctx.clock.wall()
        pending = [Hour(h, r[0], int(r[1]), int(r[2]), r[3])
                   for h, r in self.meter.pending.items()]
        today, week, series = summarise(self.stored, pending, now)
        return ActivityView(True, today.cpu_seconds, week.cpu_seconds, today.sent,
                            today.received, week.sent, week.received, today.allowed_seconds,
                            series)


def process_cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)
