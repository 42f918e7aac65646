"""The guard on the wire: real py-libp2p hosts on loopback. A village that sends bytes no
correct implementation sends is refused by the village it sent them to: its open streams
are reset unread, it is disconnected, and dialling it from there fails at once; an honest
village next to it is served as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from core.errors import NetworkError
from core.net import kad
from core.net.host import STREAM_COUNTS
from tests.nodes import run_trio_test, trio_villages, trio_wait_for


@pytest.mark.timeout(120)
def test_a_village_sending_garbage_dht_frames_is_refused_and_cut_off(tmp_path: Path) -> None:
    async def main(checks_done: Any) -> None:
        async with trio_villages(tmp_path, 3) as (target, hostile, honest):
            addr = target.host.listen_addrs()[0]
            for v in (hostile, honest):
                await v.host.connect(addr)
            bad = hostile.host.peer_id
            stream = await hostile.host.open_stream(target.host.peer_id, kad.PROTOCOL)
            junk = b"\x0f" + b"\xff" * 39
            await stream.write(kad.uvarint(len(junk)) + junk)
            await trio_wait_for(lambda: target.scores.is_refused(bad), 10, "the refusal")
            assert target.misbehaviour[bad] >= 1
            # cut off: the connection goes, new streams are reset unread, dials fail at once
            await trio_wait_for(lambda: not target.host.is_connected(bad), 10, "the cut")
            with pytest.raises(NetworkError, match="refused"):
                await target.host.open_stream(bad, kad.PROTOCOL)
            # it comes back (a new connection) and asks properly: reset unread, unanswered.
            # A try can also fail before it reaches the target (the hostile side may still
            # hold the connection the target just cut), so it tries until the target itself
            # has turned one away; no try is ever answered.
            ask = kad.encode(kad.KadMessage(kad.FIND_NODE, key=b"k"))
            key = f"refused {kad.PROTOCOL}"
            before = STREAM_COUNTS[key]
            with trio.fail_after(30):
                while STREAM_COUNTS[key] == before:
                    with pytest.raises(Exception):  # a reset, an EOF or a failed dial
                        s2 = await hostile.host.open_stream(target.host.peer_id, kad.PROTOCOL)
                        await s2.write(kad.uvarint(len(ask)) + ask)
                        if not await s2.read(1):
                            raise EOFError("closed unanswered")
                    await trio.sleep(0.2)
            # the honest neighbour is still served
            s3 = await honest.host.open_stream(target.host.peer_id, kad.PROTOCOL)
            answer = await kad.request(s3, kad.KadMessage(kad.FIND_NODE, key=b"k"),
                                       target.host.peer_id, timeout=10)
            assert answer.type == kad.FIND_NODE
            assert not target.scores.is_refused(honest.host.peer_id)
            checks_done()

    run_trio_test(main, timeout=100)


@pytest.mark.timeout(120)
def test_a_village_holding_streams_open_is_capped_then_refused(tmp_path: Path) -> None:
    """Streams opened and never written (a slow-read flood): past 32 open DHT streams from one
    village each new one is reset unread and counts as an offence; five and it is refused."""
    from core.peer_guard import MAX_STREAMS_PER_PROTOCOL

    async def main(checks_done: Any) -> None:
        async with trio_villages(tmp_path, 2) as (target, hostile):
            await hostile.host.connect(target.host.listen_addrs()[0])
            bad = hostile.host.peer_id
            held = []
            for _ in range(MAX_STREAMS_PER_PROTOCOL + 10):
                try:
                    held.append(await hostile.host.open_stream(target.host.peer_id,
                                                               kad.PROTOCOL, timeout=5))
                except NetworkError:
                    break
            await trio_wait_for(lambda: target.scores.is_refused(bad), 20, "the refusal")
            assert STREAM_COUNTS[f"too many streams {kad.PROTOCOL}"] >= 5
            assert target.scores.book.offences(bad) >= 5
            checks_done()

    run_trio_test(main, timeout=100)


@pytest.mark.timeout(120)
def test_a_negotiation_message_past_its_cap_ends_the_connection_at_once(tmp_path: Path
                                                                        ) -> None:
    """multistream-select on a raw connection: a length prefix of 1 GiB. py-libp2p 0.8.1
    read whatever the prefix claimed (GHSA-hmjq-g7pp-rw3x); the cap ends the connection
    before a second MiB is taken."""
    from core.net.limits import MAX_NEGOTIATION

    async def main(checks_done: Any) -> None:
        async with trio_villages(tmp_path, 1) as (target,):
            port = int(target.host.listen_addrs()[0].split("/tcp/")[1].split("/")[0])
            conn = await trio.open_tcp_stream("127.0.0.1", port)
            sent = 0
            with trio.move_on_after(20):
                try:
                    await conn.send_all(kad.uvarint(1 << 30))
                    while sent < 64 * 2**20:
                        await conn.send_all(b"\0" * 2**20)
                        sent += 2**20
                        await trio.sleep(0.05)
                except (trio.BrokenResourceError, OSError):
                    pass  # cut off
            assert sent < 8 * 2**20, f"{sent} bytes taken past a {MAX_NEGOTIATION}-byte cap"
            checks_done()

    run_trio_test(main, timeout=100)


@pytest.mark.timeout(120)
def test_a_peer_sending_past_its_yamux_window_is_cut_off_and_refused(tmp_path: Path) -> None:
    """A stream whose reader does not read: the sender ignores the 256 KiB window it was
    given and sends 4 MiB. py-libp2p 0.8.1 logged it and buffered all of it; now the
    connection closes and the sender is refused."""
    async def main(checks_done: Any) -> None:
        async with trio_villages(tmp_path, 2) as (target, hostile):
            await hostile.host.connect(target.host.listen_addrs()[0])

            async def never_reads(stream: Any, peer: str) -> None:
                await trio.sleep(60)

            target.host.set_handler("/grove/test-sink/1.0.0", never_reads)
            stream = await hostile.host.open_stream(target.host.peer_id,
                                                    "/grove/test-sink/1.0.0")
            stream.muxed_stream.send_window = 1 << 30  # what a hostile implementation does
            with trio.move_on_after(10):
                try:
                    for _ in range(16):
                        await stream.write(b"\0" * 256 * 1024)
                except Exception:
                    pass  # cut off
            bad = hostile.host.peer_id
            await trio_wait_for(lambda: target.scores.is_refused(bad), 10, "the refusal")
            assert "Yamux" in target.scores.book._peers[bad].last_reason
            await trio_wait_for(lambda: not target.host.is_connected(bad), 10, "the cut")
            checks_done()

    run_trio_test(main, timeout=100)
