"""Hostile villages on the simulated network, one behaviour each, for the adversarial tests
(`tests/adversarial/`) and `bench.adversary`. Never part of a gardener's build: nothing in
core/ or app/ imports this.

Each behaviour takes a running `World` and the village it turns hostile (and a nursery for
behaviours that act on their own); what it does is what an attacker who read the code would
send. Measurements read only what the honest villages hold.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import trio
from msgspec.structs import replace as msgspec_replace

from core.averaging import wire as avg_wire
from core.averaging.rounds import leader_rank
from core.net import kad
from core.simnet.measure import dht_gets
from core.simnet.world import SimVillage, World


def _garbage(rng: random.Random, n: int) -> bytes:
    # bytes that no protobuf parser accepts as a DHT message: an invalid wire type first
    return b"\x0f" + rng.randbytes(n - 1)


def garbage_dht_answers(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Answers every DHT request with well-framed garbage."""
    rng = random.Random(v.index)

    async def serve(stream: Any, peer: str) -> None:
        reader = kad.FrameReader(stream, peer)
        while await reader.read(kad.MAX_REQUEST) is not None:
            data = _garbage(rng, 64)
            await stream.write(kad.uvarint(len(data)) + data)

    v.host.set_handler(kad.PROTOCOL, serve)


def _flood(w: World, v: SimVillage, nursery: trio.Nursery, frame: Callable[[], bytes],
           every: float) -> None:
    async def flood() -> None:
        rng = random.Random(v.index)
        while v.running:
            others = [o for o in w.alive() if o is not v]
            for o in rng.sample(others, min(8, len(others))):
                v.host.remember(o.peer_id, [o.host.address])
                try:
                    s = await v.host.open_stream(o.peer_id, kad.PROTOCOL, timeout=2)
                    await s.write(frame())
                except Exception:  # refused, reset: the flood goes on elsewhere
                    pass
            await trio.sleep(every)

    nursery.start_soon(flood)


def malformed_dht_requests(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Opens DHT streams to villages it meets and sends garbage requests, several a second."""
    rng = random.Random(v.index)

    def frame() -> bytes:
        data = _garbage(rng, 40)
        return kad.uvarint(len(data)) + data

    _flood(w, v, nursery, frame, every=0.25)


def oversized_dht_frames(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Announces DHT frames of 100 MB (the cap is 8 KiB) and trickles bytes after them."""
    _flood(w, v, nursery, lambda: kad.uvarint(100 * 2**20) + b"\0" * 1024, every=0.25)


def dht_request_flood(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Well-formed FIND_NODE requests, ten at a time on one stream (reopened when cut) to each
    of 4 public villages: each answer is hundreds of times the request (an amplifier, or a
    way to burn their CPU)."""
    ask = kad.encode(kad.KadMessage(kad.FIND_NODE, key=b"flood"))

    async def flood_one(o: SimVillage) -> None:
        v.host.remember(o.peer_id, [o.host.address])
        while v.running:
            try:
                s = await v.host.open_stream(o.peer_id, kad.PROTOCOL, timeout=2)
                reader = kad.FrameReader(s, o.peer_id)
                while True:  # ten at a time, pipelined: a few hundred a second
                    await s.write((kad.uvarint(len(ask)) + ask) * 10)
                    for _ in range(10):
                        await reader.read(kad.MAX_RESPONSE)
            except Exception:  # cut off or refused: try again
                await trio.sleep(0.5)

    rng = random.Random(v.index)
    public = [o for o in w.alive() if o is not v and not o.host.behind_nat]
    for o in rng.sample(public, min(4, len(public))):
        nursery.start_soon(flood_one, o)


def held_open_streams(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Opens DHT streams to villages it meets and never writes on them (a slow-read flood
    holding their handlers), 60 more to each every second."""
    async def flood() -> None:
        rng = random.Random(v.index)
        held: list[Any] = []
        while v.running:
            others = [o for o in w.alive() if o is not v]
            for o in rng.sample(others, min(8, len(others))):
                v.host.remember(o.peer_id, [o.host.address])
                for _ in range(60):
                    try:
                        held.append(await v.host.open_stream(o.peer_id, kad.PROTOCOL,
                                                             timeout=2))
                    except Exception:
                        break
            await trio.sleep(1.0)

    nursery.start_soon(flood)


def unreachable_leader(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Announces itself for averaging rounds but answers no Join (its averaging protocol is
    gone): with the old rule (the smallest id leads) an id ground to sort first stopped
    every round it was listed in."""
    v.host.handlers.pop(avg_wire.PROTOCOL, None)


def _rpc_flood(w: World, v: SimVillage, nursery: trio.Nursery,
               make: Callable[[random.Random, SimVillage], kad.KadMessage],
               every: float = 0.1) -> None:
    """Well-formed DHT requests from `make`, one every `every` s on one stream to each of 8
    villages it meets (reopened when cut; answers left unread)."""
    async def flood_one(o: SimVillage, rng: random.Random) -> None:
        v.host.remember(o.peer_id, [o.host.address])
        while v.running:
            try:
                s = await v.host.open_stream(o.peer_id, kad.PROTOCOL, timeout=2)
                while True:
                    data = kad.encode(make(rng, o))
                    await s.write(kad.uvarint(len(data)) + data)
                    await trio.sleep(every)
            except Exception:  # cut off or refused: try again
                await trio.sleep(0.5)

    rng = random.Random(v.index)
    others = [o for o in w.alive() if o is not v]
    for o in rng.sample(others, min(8, len(others))):
        nursery.start_soon(flood_one, o, random.Random(rng.random()))


def store_flood(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Stores valid records it signed itself (training progress in ever new projects) at 8
    villages, 25 a second each: to fill their stores and their memory."""
    from core.dht import records as rec

    def make(rng: random.Random, o: SimVillage) -> kad.KadMessage:
        now = w.clock.wall()
        project = f"p{rng.getrandbits(40):x}"
        record = rec.ProgressRecord(rec.VERSION, v.peer_id, project, 1, 1, 1.0, "ab" * 32,
                                    int(now * 1e6), now, now + 100)
        key = rec.progress_key(project, v.peer_id)
        return kad.KadMessage(kad.PUT_VALUE, key=key, record_key=key,
                              record_value=rec.sign_progress(record, v.key.sign))

    _rpc_flood(w, v, nursery, make, every=0.04)  # 25 a second to each


def announcing_others(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Announces other villages as providers of directory keys (ADD_PROVIDER naming them,
    with proofs it signed itself): to list them where they never offered anything."""
    from core.dht import providers as proofs

    def make(rng: random.Random, o: SimVillage) -> kad.KadMessage:
        victim = rng.choice([x for x in w.alive() if x is not v and x is not o])
        key = b"/grove/dir/service/swarm-" + str(rng.randrange(100)).encode()
        proof = proofs.sign_provider(key, victim.peer_id, w.clock.wall() + 200, v.key.sign)
        return kad.KadMessage(kad.ADD_PROVIDER, key=key,
                              providers=(kad.KadPeer(victim.peer_id, (victim.host.address,)),),
                              record_key=key, record_value=proofs.encode([proof]))

    _rpc_flood(w, v, nursery, make, every=0.5)


def forged_records(w: World, v: SimVillage, nursery: trio.Nursery) -> Check:
    """As a holder, answers every GET_VALUE with the record asked for, altered: the
    village's addresses replaced by its own (a man in the middle), the signature kept."""
    import msgspec

    from core.dht import records as rec

    real = v.dht._answer

    def lying(msg: kad.KadMessage, peer: str) -> kad.KadMessage:
        answer = real(msg, peer)
        if msg.type != kad.GET_VALUE or not answer.record_value or \
                not answer.record_key.startswith(rec.NAMESPACE):
            return answer
        signed = msgspec.msgpack.decode(answer.record_value, type=rec.SignedRecord)
        body = msgspec.msgpack.decode(signed.body, type=rec.VillageRecord)
        body = msgspec.structs.replace(body, addrs=[v.host.address])
        forged = rec.SignedRecord(msgspec.msgpack.encode(body), signed.signature)
        return replace(answer, record_value=msgspec.msgpack.encode(forged))

    v.dht._answer = lying  # type: ignore[method-assign]

    async def check() -> tuple[bool, str]:
        # the records of the 5 honest villages whose keys lie closest to the attacker (it
        # holds them), each read by 10 other honest villages
        from core.dht.keyspace import kad_id, peer_kad_id

        honest = [o for o in w.alive() if o is not v]
        me = peer_kad_id(v.peer_id)
        owners = sorted(honest, key=lambda o: kad_id(rec.village_key(o.peer_id)) ^ me)[:5]
        readers = [o for o in honest if o not in owners][:10]
        wrong = right = 0
        for owner in owners:
            for r in readers:
                got = await r.dht.get_record(rec.village_key(owner.peer_id), quorum=3)
                if got is not None:
                    wrong += v.host.address in got.record.addrs
                    right += v.host.address not in got.record.addrs
        return wrong == 0 and right > 0, (f"{wrong} forged copies believed, {right} reads "
                                          "right")

    return check


def probe_flood(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Probes of 1 MiB back to back to 4 villages (each costs the answerer a hash of all of
    it, and its upload the bytes)."""
    from core import probe

    async def flood_one(o: SimVillage) -> None:
        v.host.remember(o.peer_id, [o.host.address])
        while v.running:
            try:
                await probe.probe(v.host, o.peer_id, probe.MAX_PROBE)  # type: ignore[arg-type]
            except Exception:
                await trio.sleep(0.5)

    rng = random.Random(v.index)
    for o in rng.sample([o for o in w.alive() if o is not v], 4):
        nursery.start_soon(flood_one, o)


def records_under_others_keys(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Stores village records under other villages' keys, signed with its own key (to
    replace what readers find for them: their addresses, their tier)."""
    from core.dht import records as rec

    def make(rng: random.Random, o: SimVillage) -> kad.KadMessage:
        victim = rng.choice([x for x in w.alive() if x is not v])
        now = w.clock.wall()
        body = victim.dht.own.record if victim.dht.own is not None else None
        if body is None:
            return kad.KadMessage(kad.PING)
        forged = msgspec_replace(body, addrs=[v.host.address], seq=body.seq + 1,
                                 issued_at=now, expires_at=now + 200)
        key = rec.village_key(victim.peer_id)
        return kad.KadMessage(kad.PUT_VALUE, key=key, record_key=key,
                              record_value=rec.sign_record(forged, v.key.sign))

    _rpc_flood(w, v, nursery, make, every=0.5)


def stream_churn(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Opens DHT streams to villages it meets and resets each at once, 200 a second in all
    (what a buggy or hostile client does to make a village set up and tear down handlers)."""
    async def churn() -> None:
        rng = random.Random(v.index)
        while v.running:
            o = rng.choice([x for x in w.alive() if x is not v])
            v.host.remember(o.peer_id, [o.host.address])
            try:
                s = await v.host.open_stream(o.peer_id, kad.PROTOCOL, timeout=2)
                await s.reset()
            except Exception:
                pass
            await trio.sleep(0.005)

    nursery.start_soon(churn)


def slow_answers(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Answers every DHT request correctly, 14 s late (just inside a reader's 15 s limit):
    every lookup that meets it would wait, if lookups waited for slow peers."""
    real = v.dht._answer

    async def serve(stream: Any, peer: str) -> None:
        reader = kad.FrameReader(stream, peer)
        while (data := await reader.read(kad.MAX_REQUEST)) is not None:
            answer = real(kad.decode(data, peer), peer)
            await trio.sleep(14)
            await kad.send(stream, answer)

    v.host.set_handler(kad.PROTOCOL, serve)


def sybil_providers(w: World, v: SimVillage, nursery: trio.Nursery) -> Check:
    """40 fresh identities (villages of its own) re-announce themselves under one directory
    key every 2 s, after 5 honest villages announced there: to push the honest providers
    out of the holders' lists, or ahead of them."""
    key = b"/grove/dir/service/sybil-target"
    honest = [o for o in w.alive() if o is not v]

    sybils: list[SimVillage] = []

    async def start() -> None:
        for o in honest[:5]:
            await o.dht.announce(key)
        for _ in range(40):
            s = w.make_village()
            nursery.start_soon(w.run_village, s)
            sybils.append(s)

        async def announce(s: SimVillage) -> None:
            await trio.sleep(10)  # joined
            while s.running:
                try:
                    await s.dht.announce(key)
                except Exception:
                    pass
                await trio.sleep(2)

        for s in sybils:
            nursery.start_soon(announce, s)

    nursery.start_soon(start)

    async def check() -> tuple[bool, str]:
        readers = honest[5:15]
        found = 0
        for o in readers:
            got = [p.peer_id for p in await o.dht.find_providers(key)]
            found += all(h.peer_id in got for h in honest[:5])
        return found == len(readers), (f"{len(sybils)} sybils announcing; {found}/"
                                       f"{len(readers)} readers found all 5 honest providers")

    return check


def duplicate_parts(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Leads (it ranks first) and sends each of its parts to its reducer twice."""
    real = v.averaging._send_part

    async def twice(*a: Any, **kw: Any) -> Any:
        out: list[Any] = []

        async def one() -> None:
            out.append(await real(*a, **kw))

        async with trio.open_nursery() as n:
            n.start_soon(one)
            n.start_soon(one)
        return out[0]

    v.averaging._send_part = twice  # type: ignore[method-assign]


def wrong_slices(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Leads (it ranks first) and sends each reducer the part meant for another."""
    real = v.averaging._send_part

    async def shifted(group_id: str, reducer: str, index: int, part: Any, **kw: Any) -> Any:
        return await real(group_id, reducer, (index + 1) % avg_wire.MAX_GROUP, part, **kw)

    v.averaging._send_part = shifted  # type: ignore[method-assign]


def poisoned_updates(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Takes part in every training round like an honest village, but sends its update
    reversed and scaled 20 times (a well-formed part no check on bytes can refuse): to drag
    the honest villages' models away from what their data teach."""
    real = v.averaging.average

    async def reversed_update(key: str, vector: np.ndarray, **kw: Any) -> Any:
        return await real(key, -20.0 * np.asarray(vector, dtype=np.float32), **kw)

    v.averaging.average = reversed_update  # type: ignore[method-assign]


def phantom_members(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Leads (it ranks first) and lists 5 made-up villages in every group it assembles, each
    with a large share of the vector to reduce: members send slices to no one."""
    from core.dht.keyspace import peer_id_from_public_key
    from core.identity import VillageKey

    rng = random.Random(v.index)
    fakes = [peer_id_from_public_key(VillageKey(rng.randbytes(32)).public_bytes)
             for _ in range(5)]
    real = v.averaging._assemble

    def padded(rnd: Any, weight: float) -> Any:
        msg, why = real(rnd, weight)
        if msg is None:
            return msg, why
        members = sorted([*msg.members, *(avg_wire.Member(f, 1000.0) for f in fakes)],
                         key=lambda m: m.peer)
        ids = [m.peer for m in members]
        from core.averaging.rounds import group_id_for

        rnd.message = msgspec_replace(msg, members=members,
                                      group_id=group_id_for(rnd.key, ids))
        return rnd.message, why

    v.averaging._assemble = padded  # type: ignore[method-assign]


def silent_leader(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Ranks first for the round's key, takes every Join and never answers it (a leader that
    accepted the Join): each member waits for it until the assembly deadline."""
    from core.net.framing import read_frame

    async def serve(stream: Any, peer: str) -> None:
        await read_frame(stream, max_size=avg_wire.MAX_CONTROL, timeout=30, peer=peer)
        await trio.sleep(60)

    v.host.set_handler(avg_wire.PROTOCOL, serve)


def inserted_provider_ids(w: World, v: SimVillage, nursery: trio.Nursery) -> Check:
    """As a holder, lists 10 made-up provider ids (real Ed25519 ids of keys it made, with
    proofs it signed itself) in every directory answer: ids no one announced, to send
    readers to peers that do not exist or that it controls."""
    from core.dht import providers as proofs
    from core.dht.keyspace import peer_id_from_public_key
    from core.identity import VillageKey

    rng = random.Random(v.index)
    fake = [peer_id_from_public_key(VillageKey(rng.randbytes(32)).public_bytes)
            for _ in range(10)]
    real = v.dht._answer

    def lying(msg: kad.KadMessage, peer: str) -> kad.KadMessage:
        answer = real(msg, peer)
        if msg.type != kad.GET_PROVIDERS:
            return answer
        now = w.clock.wall()
        listed = list(proofs.decode(answer.record_value)) + [
            proofs.sign_provider(msg.key, f, now + 200, v.key.sign) for f in fake]
        return replace(answer, providers=answer.providers + tuple(
            kad.KadPeer(f, (v.host.address,)) for f in fake),
            record_key=msg.key, record_value=proofs.encode(listed))

    v.dht._answer = lying  # type: ignore[method-assign]

    async def check() -> tuple[bool, str]:
        # a directory key the attacker holds (it is the closest village to it), announced
        # by 5 honest villages, then read by 10 others
        honest = [o for o in w.alive() if o is not v]
        key = _key_held_by(v, w.alive(), b"/grove/dir/avg/adv-")
        for o in honest[:5]:
            await o.dht.announce(key)
        seen: set[str] = set()
        found_honest = 0
        for o in honest[5:15]:
            got = {p.peer_id for p in await o.dht.find_providers(key)}
            seen |= got
            found_honest += bool(got & {h.peer_id for h in honest[:5]})
        inserted = len(seen & set(fake))
        return (inserted == 0 and found_honest == 10,
                f"{inserted} made-up ids believed, {found_honest}/10 readers found honest ones")

    return check


def inflated_telemetry(w: World, v: SimVillage, nursery: trio.Nursery) -> Check:
    """Sends 1e6 for every telemetry field (the village count's size field too) in every
    telemetry round it joins, to set the network's figures: before reducers held parts to
    the round's bounds, one such village moved every average it touched by 1e6 / group."""
    real = v.averaging.average

    async def lying(key: str, vector: Any, **kw: Any) -> Any:
        if key.startswith("telemetry/"):
            vector = np.full_like(np.asarray(vector, dtype=np.float32), 1e6)
            kw.pop("bounds", None)
        return await real(key, vector, **kw)

    v.averaging.average = lying  # type: ignore[method-assign]
    return _telemetry_check(w, v)


def false_count(w: World, v: SimVillage, nursery: trio.Nursery) -> Check:
    """Says in every telemetry round, within the round's bounds, that the network holds 16.7
    million villages (the size field's largest value), to set every village's count: when
    the count was the inverse of one "seed" village's averaged share, one village claiming
    to be that seed halved every count."""
    from core.telemetry import SIZE

    real = v.averaging.average

    async def lying(key: str, vector: Any, **kw: Any) -> Any:
        if key.startswith("telemetry/"):
            vector = np.array(vector, dtype=np.float32)
            vector[SIZE] = 1.0
        return await real(key, vector, **kw)

    v.averaging.average = lying  # type: ignore[method-assign]
    return _telemetry_check(w, v, median_count_within=COUNT_WITHIN)


COUNT_WITHIN = 1.5  # how far from the truth the honest villages' median count may be moved


def lying_reducer(w: World, v: SimVillage, nursery: trio.Nursery) -> Check:
    """Reduces its slice of every telemetry round honestly, then answers every member with
    1e6 in each value (a reducer that lies about the result)."""
    lie_in_results(v.averaging, lambda result: np.full_like(result, 1e6))
    return _telemetry_check(w, v)


def lying_reducer_in_range(w: World, v: SimVillage, nursery: trio.Nursery) -> None:
    """Leads (it ranks first), reduces its slice of every training round honestly, then
    answers every member with that slice reversed and scaled 20 times: a result no bound
    refuses (training rounds have none) and no check of bytes or signatures can tell from an
    honest one - only reducing the listed parts again can."""
    lie_in_results(v.averaging, lambda result: (-20.0 * result).astype(np.float32))


def lie_in_results(averaging: Any, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Make `averaging` (a village's averaging service) reduce each slice honestly, then
    answer every member with `change(result)` instead."""
    real_finish = averaging._finish

    def finish(red: Any) -> None:
        real_finish(red)
        if red.result is not None:
            red.result = change(red.result)

    averaging._finish = finish


def framing_member(w: World, v: SimVillage, nursery: trio.Nursery) -> Check:
    """Leads (it ranks first), averages honestly, but answers every other member's check with
    its parts altered: to get honest reducers refused as liars, and their slices dropped."""
    real = v.averaging._serve_part_ask
    altered_groups: set[str] = set()  # each round's parts are altered once, then kept so

    async def altered(stream: Any, peer: str, ask: Any) -> None:
        entry = v.averaging._sent.get(ask.group_id)
        if entry is not None and ask.group_id not in altered_groups:
            altered_groups.add(ask.group_id)
            entry.parts = {i: (h, bytes(b ^ 1 for b in data))
                           for i, (h, data) in entry.parts.items()}
        await real(stream, peer, ask)

    v.averaging._serve_part_ask = altered  # type: ignore[method-assign]

    async def check() -> tuple[bool, str]:
        honest = [o for o in w.alive() if o is not v]
        ids = {o.peer_id for o in honest}
        wronged = sum(any(o.averaging._is_shunned(p) for p in ids) for o in honest)
        return wronged == 0, f"{wronged} honest villages shun an honest one"

    return check


def _telemetry_check(w: World, v: SimVillage, *, median_count_within: float = 3.0) -> Check:
    async def check() -> tuple[bool, str]:
        from core.telemetry import SCALE

        honest = [o for o in w.alive() if o is not v]
        before = {o.peer_id: o.telemetry.state.network for o in honest}
        for _ in range(40):  # until a telemetry period ends after the attack began
            if sum(o.telemetry.state.network is not before[o.peer_id] for o in honest) \
                    >= len(honest) * 0.9:
                break
            await trio.sleep(5)
        figures = [o.telemetry.state.network for o in honest
                   if o.telemetry.state.network is not None]
        worst = max((max(abs(x) / SCALE.get(k, 1.0) for k, x in a.means.items())
                     for a in figures), default=0.0)  # in [0, 1] from honest villages
        counts = [a.villages for a in figures if a.villages]
        n = len(w.alive())
        offs = sorted(max(c / n, n / c) for c in counts) or [math.inf]
        off, median = offs[-1], offs[len(offs) // 2]
        ok = bool(figures) and worst <= 1.0 and off <= 3.0 and median <= median_count_within
        return ok, (f"largest figure {worst:.3g} of its scale, village count off by "
                    f"{median:.2f}x (median), {off:.2f}x (worst) at {len(counts)} of "
                    f"{len(honest)} honest villages (truth {n})")

    return check


def _key_held_by(v: SimVillage, alive: list[SimVillage], prefix: bytes) -> bytes:
    from core.dht.keyspace import kad_id, peer_kad_id

    for i in range(100_000):
        key = prefix + str(i).encode()
        target = kad_id(key)
        if min(alive, key=lambda o: peer_kad_id(o.peer_id) ^ target) is v:
            return key
    raise RuntimeError("no key found")


Check = Callable[[], Awaitable[tuple[bool, str]]]

BEHAVIOURS: dict[str, Callable[[World, SimVillage, trio.Nursery], Check | None]] = {
    "dht: garbage answers": garbage_dht_answers,
    "dht: malformed requests": malformed_dht_requests,
    "dht: oversized frames": oversized_dht_frames,
    "dht: request flood": dht_request_flood,
    "streams: held open": held_open_streams,
    "averaging: unreachable leader": unreachable_leader,
    "averaging: silent leader": silent_leader,
    "dht: inserted provider ids": inserted_provider_ids,
    "telemetry: inflated figures": inflated_telemetry,
    "telemetry: lying reducer": lying_reducer,
    "telemetry: false count": false_count,
    "dht: store flood": store_flood,
    "dht: announcing others": announcing_others,
    "dht: forged records": forged_records,
    "dht: records under others' keys": records_under_others_keys,
    "dht: stream churn": stream_churn,
    "dht: slow answers": slow_answers,
    "dht: sybil providers": sybil_providers,
    "probe: flood": probe_flood,
    "averaging: duplicate parts": duplicate_parts,
    "averaging: wrong slices": wrong_slices,
    "averaging: phantom members": phantom_members,
    "averaging: lying reducer in range": lying_reducer_in_range,
    "averaging: framing member": framing_member,
    "training: poisoned updates": poisoned_updates,
}


# behaviours every village they offend must refuse (within 60 s of the first offence)
AVG_ROUNDS = 20  # averaging rounds measured per averaging behaviour
LEADER_CAPTURE = {"averaging: unreachable leader", "averaging: silent leader"}

MUST_REFUSE = {"dht: garbage answers", "dht: malformed requests", "dht: oversized frames",
               "dht: request flood", "streams: held open", "dht: inserted provider ids",
               "dht: store flood", "dht: announcing others", "dht: forged records",
               "telemetry: inflated figures", "telemetry: lying reducer",
               "dht: records under others' keys", "probe: flood"}


@dataclass(frozen=True)
class Outcome:
    behaviour: str
    succeeded: bool        # the attack worked (its goal reached, or honest service below goal)
    honest_get_success: float
    honest_avg_success: float | None  # share of honest villages whose round formed a group
    seconds_to_refuse: float | None   # first offence -> refused, the slowest honest village
    offended: int          # honest villages that recorded an offence by the attacker
    refused_by: int        # of those, how many refused it
    note: str
    honest_accuracy: float | None = None  # digits test accuracy after the rounds, honest mean


def refusal(w: World, bad: SimVillage) -> tuple[int, int, float | None]:
    """(villages it offended, villages that refused it, the slowest first offence -> refusal
    among those that refused it)."""
    offended = refused = 0
    slowest: float | None = None
    for v in w.alive():
        if v is bad or bad.peer_id not in v.guard.first_offence:
            continue
        offended += 1
        at = v.guard.refused_at.get(bad.peer_id)
        if at is not None:
            refused += 1
            took = at - v.guard.first_offence[bad.peer_id]
            slowest = took if slowest is None else max(slowest, took)
    return offended, refused, slowest


async def averaging_round(w: World, villages: list[SimVillage], key: str, *,
                          slot: float = 8.0, vectors: list[np.ndarray] | None = None,
                          kwargs: list[dict[str, Any]] | None = None) -> list[Any]:
    """One averaging round of `villages` under `key` (village i averages `vectors[i]` with
    `kwargs[i]`; by default i everywhere); each result, in order."""
    at = w.clock.wall() + 1
    out: list[Any] = [None] * len(villages)

    async def one(i: int, v: SimVillage) -> None:
        vec = vectors[i] if vectors is not None else np.full(64, float(i), dtype=np.float32)
        out[i] = await v.averaging.average(key, vec, close_at=at + slot * 0.4,
                                           deadline_at=at + slot * 0.95, max_group=32,
                                           **(kwargs[i] if kwargs else {}))

    async with trio.open_nursery() as n:
        for i, v in enumerate(villages):
            n.start_soon(one, i, v)
    return out


def key_led_by(peer: str, members: list[str], prefix: str) -> str:
    """A round key for which `peer` ranks first among `members` (what an attacker grinds)."""
    for i in range(100_000):
        key = f"{prefix}/{i}"
        if min(members, key=lambda p: leader_rank(key, p)) == peer:
            return key
    raise RuntimeError("no key found")


async def run_behaviour(w: World, name: str, nursery: trio.Nursery, rng: random.Random,
                        *, watch: float = 60.0, gets: int = 40) -> Outcome:
    """Turn one live village hostile with `name` ("": none, the clean run), let `watch` s
    pass, then measure the honest villages: DHT lookups among them; for the averaging and
    training behaviours (and the clean run) AVG_ROUNDS steps of the digits project among 10
    villages whose keys rank the attacker first, and the honest villages' test accuracy
    after them; and how fast the attacker was refused."""
    alive = w.alive()
    # the middle village that others can dial: an attacker that serves (a holder, a
    # reducer, a leader) makes itself reachable - one behind a NAT is never asked
    public = [v for v in alive if not v.host.behind_nat]
    bad = public[len(public) // 2]
    check = BEHAVIOURS[name](w, bad, nursery) if name else None
    honest = [v for v in w.alive() if v is not bad]
    avg_success = accuracy = None
    note = ""
    if not name or name.startswith(("averaging", "training")):
        # AVG_ROUNDS steps of the digits project among 10 villages, each round's key ranking
        # the attacker first
        from bench.hostile_training import SPEC, DigitsRounds

        group = [bad, *rng.sample(honest, 9)]
        training = DigitsRounds(len(group), seed=w.seed)
        shares, led = [], False
        for r in range(AVG_ROUNDS):
            key = key_led_by(bad.peer_id, [v.peer_id for v in group],
                             f"train/digits/{SPEC.rule}/f{SPEC.f}/s{r}/{w.seed}")
            updates = training.updates()
            results = await averaging_round(
                w, group, key, vectors=[u for u, _ in updates],
                kwargs=[training.average_kwargs(i, n) for i, (_, n) in enumerate(updates)])
            for i, res in enumerate(results):
                training.apply(i, res.vector)
            training.round += 1
            formed = [x for x in results[1:] if x.group_size >= 2 and x.complete]
            shares.append(len(formed) / len(results[1:]))
            led = led or any(bad.peer_id in x.members for x in results[1:])
        avg_success = sum(shares) / len(shares)
        accuracy = sum(training.accuracy(i) for i in range(1, len(group))) / (len(group) - 1)
        # leaders that never answer aim to be followed; the others only to break rounds
        ok_goal = avg_success >= 0.95 and not (led and name in LEADER_CAPTURE)
        note = (f"rounds formed (%): {' '.join(f'{100 * x:.0f}' for x in shares)}; honest "
                f"test accuracy {accuracy:.3f}; ")
    else:
        await trio.sleep(watch)
        ok_goal = True
    if check is not None:
        checked, note = await check()
        ok_goal = ok_goal and checked
        note += "; "
    got = await _honest_gets(w, bad, gets, rng)
    offended, refused_by, slowest = refusal(w, bad)
    if not name:  # the clean run: nothing to refuse
        return Outcome("", False, got, avg_success, None, 0, 0, note, accuracy)
    if name in MUST_REFUSE:
        ok_goal = ok_goal and offended > 0 and refused_by == offended and \
            slowest is not None and slowest <= 60.0
    succeeded = not ok_goal or got < 0.99
    note += f"{offended} villages offended, {refused_by} refused it"
    return Outcome(name, succeeded, got, avg_success, slowest, offended, refused_by, note,
                   accuracy)


async def attack_in_new_world(name: str, *, villages: int, seed: int, nat: float = 0.4,
                              watch: float = 60.0, gets: int = 40
                              ) -> tuple[Outcome, dict[str, int]]:
    """`name` ("": none) against `villages` honest villages in a network of its own (run it
    under MockClock): 20 simulated seconds to settle, then `run_behaviour`. Returns the outcome
    and the network's event counts."""
    w = World(seed, nat_share=nat, settings={"telemetry_period_s": 60})
    World.seed_scheduler(seed)
    rng = random.Random(seed)
    async with trio.open_nursery() as nursery:
        await w.start(villages, nursery, stagger=0.1)
        await trio.sleep(20)
        out = await run_behaviour(w, name, nursery, rng, watch=watch, gets=gets)
        counts = dict(w.net.counts)
        nursery.cancel_scope.cancel()
    return out, counts


async def _honest_gets(w: World, bad: SimVillage, n: int, rng: random.Random) -> float:
    """Lookups of honest villages' records by honest villages (the attacker stays up)."""
    return (await dht_gets(w, n, rng, among=[v for v in w.alive() if v is not bad])).success
