"""What Grove did on this computer, per hour: the meter's arithmetic, the SQLite store across a
kill -9 (a child process killed mid-run), and the summary the Overview reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.activity import HOUR, ActivityMeter, ActivityStore, Hour, summarise
from core.humanize import day_start


def test_the_meter_counts_increments_into_their_hour_and_survives_a_reset() -> None:
    m = ActivityMeter()
    t0 = 100 * HOUR + 3000.0
    m.read(t0, 10.0, 1000, 2000, True)           # the first reading: nothing yet
    assert m.take() == []
    m.read(t0 + 60, 13.0, 1500, 2600, True)      # +3 s CPU, +500 B, +600 B, 60 s allowed
    m.read(t0 + 660, 14.0, 1600, 2700, False)    # the next hour; not allowed
    m.read(t0 + 720, 1.0, 100, 50, True)         # a restart: totals start over
    hours = m.take()
    assert hours == [Hour(100 * HOUR, 3.0, 500, 600, 60.0),
                     Hour(101 * HOUR, 2.0, 200, 150, 60.0)]


def test_the_store_adds_to_an_hour_and_forgets_old_ones(tmp_path: Path) -> None:
    now = time.time()
    store = ActivityStore(tmp_path / "a.db")
    h = int(now // HOUR) * HOUR
    store.add([Hour(h, 1.0, 10, 20, 30.0), Hour(h - 40 * 86400, 5.0, 1, 1, 1.0)], now)
    store.add([Hour(h, 2.0, 5, 5, 30.0)], now)
    assert store.since(now - 86400) == [Hour(h, 3.0, 15, 25, 60.0)]
    assert store.since(now - 50 * 86400) == [Hour(h, 3.0, 15, 25, 60.0)]  # 40 days: gone
    store.close()


def test_the_summary_splits_today_from_the_week() -> None:
    now = day_start(time.time()) + 12 * HOUR + 600
    today_h = int(now // HOUR) * HOUR
    hours = [Hour(today_h, 1800.0, 1000, 2000, 3600.0),
             Hour(today_h - 2 * 86400, 3600.0, 5, 5, 0.0),
             Hour(today_h - 9 * 86400, 9999.0, 5, 5, 0.0)]  # older than a week
    pending = [Hour(today_h, 900.0, 10, 10, 60.0)]
    today, week, series = summarise(hours, pending, now)
    assert today.cpu_seconds == 2700.0 and today.sent == 1010
    assert week.cpu_seconds == 6300.0
    assert series == ((float(today_h - 2 * 86400), 1.0), (float(today_h), 0.75))


CHILD = """
import sys, time
from pathlib import Path
from core.activity import ActivityStore, Hour, HOUR
store = ActivityStore(Path(sys.argv[1]))
h = int(time.time() // HOUR) * HOUR
i = 0
while True:
    store.add([Hour(h, 1.0, 1, 1, 1.0)])
    i += 1
    print(i, flush=True)
"""


def test_an_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "activity.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).parent.parent)
    assert child.stdout is not None
    acked = 0
    while acked < 50:
        acked = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = ActivityStore(path)
    [hour] = store.since(time.time() - 86400)
    assert hour.cpu_seconds >= acked  # every acknowledged add is there
    store.close()
