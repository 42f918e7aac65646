"""Reachability: the pure decisions, and AutoNAT's dial-back probe against real listeners."""

from __future__ import annotations

import os
import socket

import pytest
import trio

from core.dht.keyspace import peer_id_from_public_key
from core.errors import NetworkError
from core.identity import VillageKey
from core.net.host import open_host
from core.net.nat import probe_libp2p_listener
from core.reachability import describe, pick_relays


def test_describe_says_what_it_means_and_how_to_fix_it() -> None:
    assert describe("public", 0, 0, 4001).state == "offline"
    assert describe("unknown", 3, 0, 4001).state == "unknown"
    assert describe("public", 3, 0, 4001).state == "direct"
    r = describe("private", 3, 2, 4001)
    assert r.state == "relay-only"
    assert "forward TCP port 4001" in r.detail and "2 relays" in r.detail
    r = describe("private", 3, 0, 4001)
    assert r.state == "unreachable" and "4001" in r.detail


def test_pick_relays_tops_up_to_two_without_repeats() -> None:
    assert pick_relays(["a", "b", "c"], set()) == ["a", "b"]
    assert pick_relays(["a", "b", "c"], {"a"}) == ["b"]
    assert pick_relays(["a", "b"], {"a", "b"}) == []
    assert pick_relays([], set()) == []


def test_dial_back_probe_needs_a_libp2p_listener_on_a_fresh_connection() -> None:
    async def main() -> None:
        async with open_host(os.urandom(32), "127.0.0.1", 0) as host:
            port = int(host.listen_addrs()[0].split("/tcp/")[1].split("/")[0])
            assert await probe_libp2p_listener("127.0.0.1", port)

        async def not_libp2p(stream: trio.SocketStream) -> None:
            await stream.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, not_libp2p, 0)
            other = listeners[0].socket.getsockname()[1]
            assert not await probe_libp2p_listener("127.0.0.1", other)
            nursery.cancel_scope.cancel()
        # the host above has stopped: nothing listens there any more
        assert not await probe_libp2p_listener("127.0.0.1", port, timeout=2)

    trio.run(main)


def test_a_peer_that_failed_once_is_dialled_again_at_once_when_asked() -> None:
    """A deliberate dial (bootstrap, a gardener's connect) is tried whenever asked: a peer that
    could not be reached a moment ago (here: not started yet) is reached as soon as it
    listens, not refused for a minute because its addresses failed once."""
    async def main() -> None:
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        later = VillageKey.generate()
        later_id = peer_id_from_public_key(later.public_bytes)
        address = f"/ip4/127.0.0.1/tcp/{port}/p2p/{later_id}"
        async with open_host(os.urandom(32), "127.0.0.1", 0) as host:
            with pytest.raises(NetworkError):
                await host.connect(address, timeout=5)
            async with open_host(later.seed, "127.0.0.1", port):
                assert await host.connect(address, timeout=5) == later_id
                assert host.is_connected(later_id)

    trio.run(main)


def test_a_village_that_restarted_on_a_new_port_is_dialled_at_once_from_its_fresh_record(
        ) -> None:
    """A stream to a village whose known addresses all fail puts it in py-libp2p's negative
    cache (a minute of refused dials), and py-libp2p dials only the first TCP address it
    holds. When the village's fresh record names a new address, remembering it puts that
    first and lifts the refusal: the stream opens now (a conversation partner that restarted
    was unreachable for a minute, or for the old address's ten, this way)."""
    async def main() -> None:
        with socket.socket() as s:  # the port the village had before it restarted
            s.bind(("127.0.0.1", 0))
            old = s.getsockname()[1]
        village = VillageKey.generate()
        vid = peer_id_from_public_key(village.public_bytes)
        async with open_host(os.urandom(32), "127.0.0.1", 0) as host:
            host.remember(vid, [f"/ip4/127.0.0.1/tcp/{old}"])
            with pytest.raises(NetworkError):
                await host.open_stream(vid, "/grove/test/1.0.0", timeout=5)
            async with open_host(village.seed, "127.0.0.1", 0) as restarted:
                async def answer(stream: object, peer: str) -> None:
                    await stream.write(b"ok")  # type: ignore[attr-defined]
                    await stream.close()  # type: ignore[attr-defined]
                restarted.set_handler("/grove/test/1.0.0", answer)
                with pytest.raises(NetworkError, match="negative cache"):  # not tried now
                    await host.open_stream(vid, "/grove/test/1.0.0", timeout=5)
                host.remember(vid, restarted.listen_addrs())
                stream = await host.open_stream(vid, "/grove/test/1.0.0", timeout=5)
                assert await stream.read(2) == b"ok"

    trio.run(main)
