"""Pure pieces: backoff, status text, wire decoding."""

from __future__ import annotations

import random

import msgspec
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from core.backoff import backoff_delay
from core.errors import PeerMisbehaviour
from core.net import pex
from core.net.framing import StreamClosed, read_frame, write_frame
from core.snapshot import (
    NodeSnapshot,
    NodeState,
    PeerView,
    ServiceStatus,
    status_line,
    status_sentence,
)


@given(st.integers(min_value=1, max_value=200), st.integers(min_value=0, max_value=2**32))
def test_backoff_grows_and_is_capped(failures: int, seed: int) -> None:
    rng = random.Random(seed)
    d = backoff_delay(failures, rng, base=0.5, cap=30)
    full = min(30, 0.5 * 2 ** (failures - 1))
    assert full / 2 <= d <= full


def test_backoff_zero_failures() -> None:
    assert backoff_delay(0, random.Random(1)) == 0


RUNNING = NodeSnapshot(state=NodeState.RUNNING, profile="p", peer_id="12D3KooWabcdefghijk",
                       started_at=1000.0, peers=(PeerView("12D3KooWxyzxyzxyz", "/ip4/x"),))


def test_status_sentences() -> None:
    assert status_sentence(NodeSnapshot()) == "The village is offline."
    assert "participation off" in status_sentence(RUNNING)
    from dataclasses import replace

    assert status_sentence(replace(RUNNING, participating=True)) == \
        "Participating with 1 peer."
    assert status_sentence(replace(RUNNING, paused_until=2000.0), now=1500.0).startswith(
        "Paused until")
    failed = replace(RUNNING, state=NodeState.FAILED, error="port busy")
    assert status_sentence(failed) == "Stopped by an error: port busy"


def test_status_line_names_errors_and_uptime() -> None:
    from dataclasses import replace

    snap = replace(RUNNING, services=(ServiceStatus("discovery", "restarting", "boom", 1),))
    line = status_line(snap, now=1000.0 + 125)
    assert "up 2m05s" in line and "peers 1" in line and "discovery: boom" in line


class MemoryStream:
    def __init__(self, data: bytes = b"", chunk: int = 7) -> None:
        self.inbox = bytearray(data)
        self.sent = bytearray()
        self.chunk = chunk
        self.writes: list[int] = []

    async def read(self, n: int) -> bytes:
        await trio.lowlevel.checkpoint()
        part = bytes(self.inbox[: min(n, self.chunk)])
        del self.inbox[: len(part)]
        return part

    async def write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self.sent += data


class SilentStream(MemoryStream):
    async def read(self, n: int) -> bytes:
        await trio.sleep_forever()
        raise AssertionError


def test_frames_round_trip_in_32k_writes() -> None:
    async def main() -> None:
        out = MemoryStream()
        payload = bytes(range(256)) * 1000
        await write_frame(out, payload)
        assert max(out.writes) <= 32 * 1024
        back = await read_frame(MemoryStream(bytes(out.sent), chunk=5000), max_size=300_000,
                                timeout=5)
        assert back == payload
    trio.run(main)


def test_frame_caps_truncation_silence_and_clean_end() -> None:
    async def main() -> None:
        big = (1000).to_bytes(4, "big") + b"x" * 1000
        with pytest.raises(PeerMisbehaviour, match="exceeds the cap"):
            await read_frame(MemoryStream(big), max_size=999, timeout=5)
        with pytest.raises(PeerMisbehaviour, match="ended inside a frame"):
            await read_frame(MemoryStream(big[:500]), max_size=5000, timeout=5)
        with pytest.raises(StreamClosed):
            await read_frame(MemoryStream(b""), max_size=10, timeout=5)
        with pytest.raises(PeerMisbehaviour, match="silent"):
            await read_frame(SilentStream(), max_size=10, timeout=0.05)
    trio.run(main)


def test_pex_round_trip_and_rejections() -> None:
    peers = [pex.PexPeer("12D3KooWpeer", ["/ip4/127.0.0.1/tcp/1"])]
    assert pex.decode_response(pex.encode_response(peers), "s").peers == peers
    bad_version = msgspec.msgpack.encode(pex.PexResponse(99, []))
    with pytest.raises(PeerMisbehaviour, match="version"):
        pex.decode_response(bad_version, "s")
    many = msgspec.msgpack.encode(pex.PexResponse(1, [pex.PexPeer("x", [])] * 33))
    with pytest.raises(PeerMisbehaviour, match="too many"):
        pex.decode_response(many, "s")
    long_addr = msgspec.msgpack.encode(pex.PexResponse(1, [pex.PexPeer("x", ["a" * 300])]))
    with pytest.raises(PeerMisbehaviour, match="too long"):
        pex.decode_response(long_addr, "s")


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_pex_decoder_never_crashes_on_random_bytes(data: bytes) -> None:
    try:
        pex.decode_response(data, "fuzz")
    except PeerMisbehaviour:
        pass


def test_bandwidth_caps_bulk_behind_control_on_a_fake_clock() -> None:
    """The connection layer's caps: bulk waits for the bucket, control goes first (until it
    alone owes a second of the rate), local-network traffic is capped only when asked."""
    from trio.testing import MockClock

    from core.net.bandwidth import CONTROL_DEBT_S, MIN_BURST, Bandwidth, is_bulk, is_lan

    async def main() -> None:
        bw = Bandwidth()
        bw.set_rates(upload_bps=100_000, download_bps=50_000)
        start, sent = trio.current_time(), 0
        while sent < 1_000_000:  # a writer sending bulk in 60 kB batches
            if (wait := bw.up_wait(False, control=False)) > 0:
                await trio.sleep(wait)
                continue
            bw.sent_now(60_000, False, bulk=True)
            sent += 60_000
        elapsed = trio.current_time() - start
        assert (sent - 60_000 - MIN_BURST) / 100_000 <= elapsed <= sent / 100_000
        assert bw.up_wait(False, control=False) > 0  # the bucket is in debt for bulk...
        assert bw.up_wait(False, control=True) == 0  # ...and control still goes at once
        bw.sent_now(int(100_000 * CONTROL_DEBT_S) + 60_000, False, bulk=False)
        assert bw.up_wait(False, control=True) > 0  # control that floods waits too
        assert (bw.sent, bw.sent_bulk) == (sent + 160_000, sent)
        assert bw.up_wait(True, control=False) == 0  # the LAN is not capped...
        bw.set_rates(upload_bps=100_000, download_bps=50_000, limit_lan=True)
        assert bw.up_wait(True, control=False) > 0  # ...unless the gardener asks
        # download: every byte is counted as it arrives; a bulk reader waits for the debt
        bw.received_now(200_000, False)
        t0 = trio.current_time()
        await bw.bulk_read(False)
        assert abs(trio.current_time() - t0 - (200_000 - MIN_BURST) / 50_000) < 0.01
        bw.set_rates(None, None)
        assert bw.up_wait(False, control=False) == 0 and bw.down_wait(False) == 0

    trio.run(main, clock=MockClock(autojump_threshold=0))
    assert is_bulk("/grove/avg/1.0.0") and is_bulk("/libp2p/circuit/relay/0.2.0/hop")
    assert not is_bulk("/grove/kad/1.0.0") and not is_bulk(None)
    assert is_lan("127.0.0.1") and is_lan("192.168.1.4") and is_lan("fe80::1%eth0")
    assert not is_lan("8.8.8.8") and not is_lan(None) and not is_lan("not-an-ip")
