"""The DHT on real nodes (real py-libp2p hosts on loopback): discovery through records,
admission only for Grove's protocol, and hostile input that leaves the node serving."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

from core import peer_scores
from core.dht import records as rec
from core.dht.store import PUT_BURST, PUTS_PER_SECOND
from core.identity import VillageKey
from core.net import kad, pex, yamux
from core.net.framing import write_frame
from core.net.host import open_host
from core.net.kad import KadMessage
from core.snapshot import NodeState
from tests.conftest import ROOT, wait_runtime
from tests.dhtkit import make_record, new_village, signed
from tests.nodes import make_handle, wait_for


def test_six_villages_find_each_others_records_through_one_bootstrap(tmp_path: Path) -> None:
    first = make_handle(tmp_path, "v0")
    first.start()
    boot = (first.snapshot().listen_addrs[0],)
    handles = [first] + [make_handle(tmp_path, f"v{i}", bootstrap=boot) for i in range(1, 6)]
    for h in handles[1:]:
        h.start()
    try:
        wait_for(lambda: all(len(h.snapshot().villages) == 5 for h in handles), 40,
                 "every village to know the other five")
        for h in handles:
            snap = h.snapshot()
            assert {v.tier for v in snap.villages} == {"cpu"}
            assert snap.dht_peers >= 4  # the routing tables filled, not size 1
            assert snap.record_acks >= 1
        # a stopped village withdraws; the others keep serving
        gone = handles.pop()
        gone_id = gone.snapshot().peer_id
        gone.stop()
        for h in handles:
            assert h.snapshot().state is NodeState.RUNNING
        assert all(gone_id != h.snapshot().peer_id for h in handles)
    finally:
        for h in handles:
            h.stop()


def test_an_ipfs_only_peer_is_not_admitted(tmp_path: Path) -> None:
    node = make_handle(tmp_path, "grove")
    node.start()
    addr = node.snapshot().listen_addrs[0]
    outcome: dict[str, object] = {}

    async def ipfs_peer() -> None:
        async with open_host(VillageKey.generate().seed, "127.0.0.1", 0) as host:
            async def answer(stream, peer):  # speaks Kademlia, but on the IPFS protocol id
                reader = kad.FrameReader(stream, peer)
                data = await reader.read(kad.MAX_REQUEST)
                if data:
                    await kad.send(stream, KadMessage(kad.FIND_NODE))
            host.set_handler("/ipfs/kad/1.0.0", answer)
            await host.connect(addr)
            outcome["peer"] = host.peer_id
            with trio.move_on_after(3):  # the node's admission runs every second
                while True:
                    await trio.sleep(0.2)
            outcome["connected"] = host.is_connected(node.snapshot().peer_id)
            outcome["dht_peers"] = node.snapshot().dht_peers

    try:
        trio.run(ipfs_peer)
        assert outcome["connected"] is True
        assert outcome["dht_peers"] == 0  # connected, but never in the routing table
    finally:
        node.stop()


INBOUND_PROTOCOLS = (
    kad.PROTOCOL, pex.PROTOCOL, "/grove/probe/1.0.0", "/grove/avg/1.0.0",
    "/libp2p/autonat/1.0.0", "/libp2p/circuit/relay/0.2.0/stop", "/libp2p/dcutr",
    "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0")


def test_hostile_input_is_rejected_and_the_node_keeps_serving(tmp_path: Path, caplog,
                                                             monkeypatch) -> None:
    """Each bad input is refused with its own reason. One attacker sends them all, so the
    guard that refuses a repeat offender (tests/adversarial) is switched off here."""
    monkeypatch.setattr(peer_scores, "THRESHOLD", math.inf)
    caplog.set_level(logging.WARNING)
    node = make_handle(tmp_path, "target")
    node.start()
    addr = node.snapshot().listen_addrs[0]
    target = node.snapshot().peer_id
    results: dict[str, object] = {}

    async def attacker() -> None:
        key = VillageKey.generate()
        async with open_host(key.seed, "127.0.0.1", 0) as host:
            await host.connect(addr)
            me = host.peer_id
            now = time.time()
            victim_key, victim = new_village()

            async def put(k: bytes, value: bytes) -> KadMessage:
                s = await host.open_stream(target, kad.PROTOCOL)
                try:
                    return await kad.request(s, KadMessage(kad.PUT_VALUE, key=k, record_key=k,
                                                           record_value=value), target, 5)
                finally:
                    await s.close()

            async def raw(protocol: str, data: bytes) -> None:
                if not host.is_connected(target):  # a handler may hang up on garbage
                    await host.connect(addr)
                s = await host.open_stream(target, protocol)
                try:
                    await s.write(data)
                    with trio.move_on_after(1):
                        await s.read(100)
                except Exception:
                    pass
                finally:
                    with trio.move_on_after(1):
                        try:
                            await s.reset()
                        except Exception:
                            pass

            good = make_record(key, me, now=now)
            refused = {
                "forged": await put(rec.village_key(me), signed(victim_key, good)),
                "other_key": await put(rec.village_key(victim), signed(key, good)),
                "oversized": await put(rec.village_key(me), signed(key, make_record(
                    key, me, now=now, software="x" * 5000))),
                "malformed": await put(rec.village_key(me), b"\x00\x01garbage"),
                "far_future": await put(rec.village_key(me), signed(key, make_record(
                    key, me, now=now, ttl=7200))),
                "expired": await put(rec.village_key(me), signed(key, make_record(
                    key, me, now=now - 1000))),
                "namespace": await put(b"/ipfs/" + me.encode(), signed(key, good)),
            }
            results["refused"] = {k: bool(v.record_value) for k, v in refused.items()}
            ok = await put(rec.village_key(me), signed(key, make_record(key, me, now=now,
                                                                        seq=5)))
            results["good_stored"] = bool(ok.record_value)
            replay = await put(rec.village_key(me), signed(key, make_record(key, me, now=now,
                                                                            seq=4, ttl=310)))
            results["replay_stored"] = bool(replay.record_value)
            began = trio.current_time()
            flood = [bool((await put(rec.village_key(me), signed(key, make_record(
                key, me, now=now, seq=10 + i)))).record_value) for i in range(60)]
            results["flood_refused"] = flood.count(False)
            # what the store's token bucket must have refused, however slow this machine
            # was: the puts beyond the burst and beyond what refilled meanwhile
            results["flood_must_refuse"] = int(
                60 + 10 - PUT_BURST - PUTS_PER_SECOND * (trio.current_time() - began)) - 2
            # random bytes into every inbound protocol the village serves
            for protocol in INBOUND_PROTOCOLS:
                for _ in range(20):
                    await raw(protocol, os.urandom(int.from_bytes(os.urandom(1), "big") + 1))
            await raw(kad.PROTOCOL, b"\xff\xff\xff\xff\x0f" + b"x" * 100)  # huge length
            s = await host.open_stream(target, pex.PROTOCOL)
            await write_frame(s, b"x" * 100)  # pex request over its 64-byte cap
            await s.close()
            # the node still answers a well-formed request
            s = await host.open_stream(target, kad.PROTOCOL)
            answer = await kad.request(s, KadMessage(kad.GET_VALUE, key=rec.village_key(me)),
                                       target, 5)
            results["still_serving"] = answer.record_value != b""

    try:
        trio.run(attacker)
        assert results["refused"] == dict.fromkeys(results["refused"], False)
        assert results["good_stored"] is True
        assert results["replay_stored"] is False
        assert results["flood_refused"] >= max(1, results["flood_must_refuse"])
        assert results["still_serving"] is True
        assert node.snapshot().state is NodeState.RUNNING and not node.snapshot().errors
        text = caplog.text
        for words in ("bad signature", "another peer", "exceeds", "malformed", "too far",
                      "expired", "unknown namespace", "replayed old seq", "too many stores"):
            assert words in text, words
        assert "misbehaved" in text
    finally:
        node.stop()


def test_a_frozen_village_is_dropped_and_the_others_keep_serving(
        tmp_path: Path, grove_env: dict[str, str], monkeypatch) -> None:
    """A computer that freezes (here: SIGSTOP) keeps its sockets open and answers nothing.
    Its connections are closed once a ping goes unanswered; the others keep serving."""
    monkeypatch.setattr(yamux, "RTT_EVERY", 1.0)
    monkeypatch.setattr(yamux, "PONG_TIMEOUT", 2.0)
    monkeypatch.setattr(yamux, "MISS_RETRY", 0.5)
    frozen = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--profile", "frozen", "node", "--listen-host",
         "127.0.0.1", "--no-default-bootstrap"], env=grove_env, cwd=ROOT, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handles = []
    try:
        rt = wait_runtime(Path(grove_env["GROVE_HOME"]), "frozen")
        frozen_id = str(rt["peer_id"])
        boot = tuple(str(a) for a in rt["listen_addrs"])[:1]  # type: ignore[union-attr]
        handles = [make_handle(tmp_path, f"v{i}", bootstrap=boot) for i in range(3)]
        for h in handles:
            h.start()
        wait_for(lambda: all(frozen_id in {p.peer_id for p in h.snapshot().peers} and
                             len(h.snapshot().villages) >= 3 for h in handles), 60,
                 "three villages that know each other and the soon-frozen one")
        frozen.send_signal(signal.SIGSTOP)
        wait_for(lambda: all(frozen_id not in {p.peer_id for p in h.snapshot().peers}
                             for h in handles), 30, "the silent connections to be closed")
        for h in handles:
            assert h.snapshot().state is NodeState.RUNNING
        other = handles[1].snapshot().peer_id  # the live ones still talk
        assert handles[0].probe(other, 16 * 1024).result(30).bytes == 16 * 1024
    finally:
        for h in handles:
            h.stop()
        frozen.send_signal(signal.SIGCONT)
        frozen.terminate()
        frozen.wait(timeout=20)
