"""The bandwidth caps at the connection layer, on real villages on loopback: the upload and
the download cap hold for bulk traffic (bytes counted by the application and by both
villages), control traffic (ping) is not queued behind a saturated cap, and traffic with a
village on the local network is capped only when the gardener asks (`limit_lan`)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from bench.limits import transfer
from tests.nodes import run_villages, trio_villages, trio_wait_for

pytestmark = pytest.mark.timeout(240)
CAP = 100  # kB/s: one 32 KiB frame takes a third of a second, so queueing would show
# What a cap lets through beyond its rate: the bucket's burst (64 KiB), one batch of frames
# (60 kB), and for a download the window the sender was given before it was paced (256 KiB)
SLACK_UP = 64 * 1024 + 60_000
SLACK_DOWN = SLACK_UP + 256 * 1024


def held(result: dict, slack: int) -> bool:
    """The bytes that came, over the time they took, are the cap's rate within the slack."""
    allowed = CAP * 1000 * result["seconds"]
    return allowed - slack <= result["bytes"] <= allowed + slack


def test_upload_and_download_caps_hold_and_control_traffic_goes_first(tmp_path: Path) -> None:
    async def main() -> None:
        async with trio_villages(tmp_path, 2, mdns=False) as (a, b):
            await trio_wait_for(lambda: a.host.is_connected(b.host.peer_id), 30, "connected")
            for n in (a, b):  # loopback is the local network: capped only when asked
                await n.settings_service.change({"limit_lan": True})
            await a.settings_service.change({"upload_kbps": CAP})
            await trio_wait_for(lambda: a.bandwidth.up.rate == CAP * 1000, 10, "the cap")
            up = await transfer(a, b, 8.0, pings=10)
            assert held(up, SLACK_UP), up
            # both villages counted it: the sender's bulk bytes are the application's bytes
            # and their frame headers; the receiver read them all off the connection
            assert up["bytes"] <= up["sender_counted"] <= up["bytes"] * 1.01, up
            assert up["receiver_counted"] >= up["bytes"], up
            # pings (control) went first: 0.4-0.6 ms here, as with no transfer; queued with
            # the bulk frames (pings made bulk, to check this test) they took 55 ms
            assert statistics.median(up["ping_ms"]) < 20, up["ping_ms"]

            await a.settings_service.change({"upload_kbps": 0})
            await b.settings_service.change({"download_kbps": CAP})
            await trio_wait_for(lambda: b.bandwidth.down.rate == CAP * 1000 and
                                a.bandwidth.up.rate is None, 10, "the caps")
            down = await transfer(a, b, 8.0)
            assert held(down, SLACK_DOWN), down

            # the local network is not capped unless the gardener asks
            await b.settings_service.change({"limit_lan": False})
            await trio_wait_for(lambda: not b.bandwidth.limit_lan, 10, "the setting")
            lan = await transfer(a, b, 3.0)
            assert lan["rate"] / 1000 > 5 * CAP, lan

    run_villages(main, timeout=200)
