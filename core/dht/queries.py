"""Asking the DHT: one request to a peer, iterative lookups, and the record, provider and
closest-peer queries built on them. A mixin of `DhtService` (which owns the routing table,
the stream pool and the store these read); split out to keep each file one role.

Time comes from the context's clock; a peer that answers wrongly is penalised through the
context, never raised into the caller.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import trio

from core.dht import providers as proofs
from core.dht import records as rec
from core.dht.keyspace import kad_id, peer_kad_id
from core.dht.lookup import Candidate, Lookup
from core.dht.store import PROVIDER_TTL, Provider
from core.errors import NetworkError, PeerMisbehaviour
from core.net import kad
from core.net.kad import KadMessage, KadPeer

if TYPE_CHECKING:
    from core.dht.routing import RoutingTable
    from core.dht.store import RecordStore
    from core.dht.streams import StreamPool
    from core.ports import ServiceContext, Transport
    from core.ratelimit import PeerRates

# Requests sent by every DHT of this process, per message type (the benchmarks report them).
RPC_COUNTS: collections.Counter[str] = collections.Counter()
# s for one request, stream opening included. A busy village takes seconds to negotiate a
# stream (each of its ~10 steps waits a scheduler round): at 5 s half of all requests to 50
# villages sharing a core were abandoned mid-negotiation, the work done for them wasted, and
# the retries kept the core saturated (20/50 records held). At 15 s: 43/50 and no collapse.
# Lookups do not wait that long: a query older than SLOW_AFTER no longer holds them up.
RPC_TIMEOUT = 15.0
LOOKUP_TIMEOUT = 10.0
SLOW_AFTER = 1.0  # s: a lookup stops waiting for a query this old (its answer still counts)
DIR_REPLICAS = 8
REPAIR_CLOSEST = 3  # of a lookup's closest peers, those without the record get it
PROOF_SKEW = 30.0  # s of clock difference a provider's signed expiry may show


class DhtQueries:
    ctx: ServiceContext
    host: Transport
    table: RoutingTable | None
    store: RecordStore
    streams: StreamPool
    villages: dict[str, rec.ValidRecord]
    last_hops = 0  # how deep the last lookup went (the simulation's benchmark reads it)
    _stores_out: PeerRates  # paces our stores to each peer (store.store_pacer)

    def _failed(self, peer: str) -> None:
        raise NotImplementedError

    def _admit(self, peer: str) -> None:
        raise NotImplementedError

    # -- asking ------------------------------------------------------------------------------
    async def rpc(self, peer: str, addrs: tuple[str, ...], msg: KadMessage) -> KadMessage:
        """One request/answer with `peer`; it enters the routing table if it answers."""
        assert self.table is not None
        if addrs and not self.host.is_connected(peer):
            self.host.remember(peer, addrs)
        if msg.type in (kad.PUT_VALUE, kad.ADD_PROVIDER):  # within its put budget
            await trio.sleep(self._stores_out.delay(peer, self.ctx.clock.mono()))
        RPC_COUNTS[kad.TYPE_NAMES.get(msg.type, "?")] += 1  # type: ignore[call-overload]
        try:
            answer = await self.streams.request(peer, msg, RPC_TIMEOUT)
        except PeerMisbehaviour:
            self._failed(peer)
            raise
        except NetworkError as e:
            self._failed(peer)
            raise NetworkError(f"cannot reach {peer} for the DHT ({e})", "") from None
        except Exception as e:  # the stream broke (reset, peer gone): not an offence
            self._failed(peer)
            raise NetworkError(f"the DHT stream to {peer} broke ({type(e).__name__})",
                               "") from None
        self._admit(peer)
        return answer

    async def _lookup(self, target: int, make: Any, on_answer: Any = None,
                      stop_when: Any = None, k: int | None = None) -> Lookup:
        """Iterative lookup towards `target`; `make(candidate)` builds each request. It ends
        when the `k` closest it knows have answered (the table's k by default; fewer for a key
        that lives on fewer peers, such as a directory key on its DIR_REPLICAS)."""
        assert self.table is not None
        seeds = [Candidate(c.peer_id, c.addrs, c.kid) for c in self.table.closest(target)]
        lk = Lookup(target, seeds, k=k or self.table.k, own_peer_id=self.host.peer_id)
        send, receive = trio.open_memory_channel[tuple[Candidate, KadMessage | str | None]](64)

        async def ask(c: Candidate) -> None:
            async def say_slow() -> None:
                await trio.sleep(SLOW_AFTER)
                await send.send((c, "slow"))

            answer: KadMessage | None = None
            try:
                async with trio.open_nursery() as timer:
                    timer.start_soon(say_slow)
                    try:
                        answer = await self.rpc(c.peer_id, c.addrs, make(c))
                    except PeerMisbehaviour as e:
                        self.ctx.penalise(e.peer, e.reason)
                    except NetworkError:
                        pass
                    timer.cancel_scope.cancel()
                await send.send((c, answer))
            except trio.BrokenResourceError:  # the lookup is over
                pass

        with trio.move_on_after(LOOKUP_TIMEOUT):
            async with trio.open_nursery() as nursery:
                while not (stop_when is not None and stop_when()):
                    for c in lk.next_queries():
                        nursery.start_soon(ask, c)
                    if lk.done:
                        break
                    c, answer = await receive.receive()
                    if isinstance(answer, str):  # "slow"
                        lk.slow(c.peer_id)
                        continue
                    if answer is None:
                        lk.failed(c.peer_id)
                        continue
                    lk.answered(c.peer_id, [Candidate(p.peer_id, p.addrs,
                                                      peer_kad_id(p.peer_id))
                                            for p in answer.closer])
                    if on_answer is not None:
                        on_answer(c, answer)
                nursery.cancel_scope.cancel()
        self.last_hops = lk.hops
        return lk

    async def find_closest(self, key: bytes, k: int | None = None) -> list[Candidate]:
        lk = await self._lookup(kad_id(key), lambda c: KadMessage(kad.FIND_NODE, key=key),
                                k=k)
        return lk.closest_answered()

    async def get_village(self, peer_id: str, quorum: int = 2,
                          ask_owner: bool = False) -> rec.ValidRecord | None:
        """The best unexpired record of a village, from the network (and what we hold).
        `ask_owner`: a village in our routing table is asked for its own record first (one
        request instead of a lookup; the signature makes its word as good as anyone's)."""
        best = await self.get_record(rec.village_key(peer_id), quorum,
                                     owner=peer_id if ask_owner else None)
        if best is not None and best.record.peer_id != self.host.peer_id:
            self.villages[peer_id] = best
        return best

    async def get_progress(self, project: str, peer_id: str) -> rec.ValidRecord | None:
        """A village's latest progress in a training project (asked of the village first)."""
        return await self.get_record(rec.progress_key(project, peer_id), 1, owner=peer_id)

    async def get_record(self, key: bytes, quorum: int = 2,
                         owner: str | None = None) -> rec.ValidRecord | None:
        """The best unexpired record under `key` from what we hold, its `owner` (when in our
        routing table) and a lookup, until `quorum` copies are in."""
        now = self.ctx.clock.wall()
        found: list[rec.ValidRecord] = []
        held = self.store.get(key, now)
        if held is not None:
            found.append(held)
        answered: dict[str, bytes] = {}  # peer -> the record value it gave (b"": none)

        def on_answer(c: Candidate, answer: KadMessage) -> None:
            answered[c.peer_id] = b""
            if answer.record_value:
                try:
                    found.append(rec.validate(key, answer.record_value, self.ctx.clock.wall()))
                    answered[c.peer_id] = answer.record_value
                except rec.RecordRejected as e:
                    self.ctx.penalise(c.peer_id, f"served a bad record: {e}")

        contact = self.table.get(owner) if owner and self.table is not None else None
        if contact is not None and owner is not None and len(found) < quorum:
            try:
                on_answer(Candidate(owner, contact.addrs, contact.kid), await self.rpc(
                    owner, contact.addrs, KadMessage(kad.GET_VALUE, key=key)))
            except PeerMisbehaviour as e:
                self.ctx.penalise(e.peer, e.reason)
            except NetworkError:
                pass
        lk = None
        if len(found) < quorum:
            lk = await self._lookup(kad_id(key), lambda c: KadMessage(kad.GET_VALUE, key=key),
                                    on_answer, stop_when=lambda: len(found) >= quorum)
        best = rec.select([r for r in found if r.expires_at > self.ctx.clock.wall()])
        if best is not None and lk is not None:
            # read repair: the closest peers that answered without it (the lookup went all
            # the way: fewer copies than the quorum), or with an older version, get it
            lacking = [c for c in lk.closest_answered(REPAIR_CLOSEST)
                       if answered.get(c.peer_id, best.value) != best.value
                       and (answered[c.peer_id] or len(found) < quorum)]
            if lacking:
                self._repair(best, lacking)
        return best

    def _repair(self, best: rec.ValidRecord, peers: list[Candidate]) -> None:
        """Store `best` on `peers`, beside the caller (nothing waits for it)."""
        raise NotImplementedError

    async def _put_on(self, value: rec.ValidRecord, c: Candidate) -> bool:
        """Store `value` on one peer; True if it acknowledged."""
        try:
            answer = await self.rpc(c.peer_id, c.addrs, KadMessage(
                kad.PUT_VALUE, key=value.key, record_key=value.key, record_value=value.value))
        except (NetworkError, PeerMisbehaviour):
            return False
        return answer.record_value == value.value

    async def get_record_from(self, peer: str, addrs: tuple[str, ...] | list[str],
                              key: bytes) -> rec.ValidRecord | None:
        """`key`'s record as `peer` holds it (one request; checked like any record; a bad
        one is recorded against the peer)."""
        answer = await self.rpc(peer, tuple(addrs), KadMessage(kad.GET_VALUE, key=key))
        if not answer.record_value:
            return None
        try:
            return rec.validate(key, answer.record_value, self.ctx.clock.wall())
        except rec.RecordRejected as e:
            self.ctx.penalise(peer, f"served a bad record: {e}")
            return None

    async def put_record(self, value: rec.ValidRecord, also: tuple[Candidate, ...] = (),
                         acked: list[Candidate] | None = None) -> int:
        """Store on the k closest peers, and on `also` (the holders of a version this one
        replaces, so that none keeps serving the old one); returns how many of the closest
        acknowledged, and lists every peer that did in `acked`."""
        lk = await self._lookup(kad_id(value.key), lambda c: KadMessage(kad.FIND_NODE,
                                                                         key=value.key))
        closest = lk.closest_reached()
        ids = {c.peer_id for c in closest}
        acks = 0

        async def put(c: Candidate) -> None:
            nonlocal acks
            if await self._put_on(value, c):
                acks += c.peer_id in ids
                if acked is not None:
                    acked.append(c)

        async with trio.open_nursery() as nursery:
            for c in closest + [c for c in also if c.peer_id not in ids]:
                nursery.start_soon(put, c)
        return acks

    async def announce(self, dir_key: bytes, quick: bool = False) -> int:
        """Add us as a provider under `dir_key` at the peers closest to it; returns how many
        answered. `quick`: the closest our routing table knows, in one hop (no lookup) - for
        short-lived keys (averaging rounds) in a network our table already covers well."""
        assert self.table is not None
        target = kad_id(dir_key)
        closest: list[Any] = (self.table.closest(target, DIR_REPLICAS) if quick else
                              (await self.find_closest(dir_key, DIR_REPLICAS)))
        me = KadPeer(self.host.peer_id, tuple(self._own_addrs()))
        now = self.ctx.clock.wall()
        proof = proofs.sign_provider(dir_key, me.peer_id, now + PROVIDER_TTL, self.ctx.sign)
        try:  # we hold it too: a reader whose closest set includes us finds it here
            self.store.add_provider(dir_key, Provider(me.peer_id, me.addrs, proof.expires_at,
                                                      signature=proof.signature),
                                    me.peer_id, now)
        except rec.RecordRejected:
            pass
        signed = proofs.encode([proof])
        answered = 0

        async def add(c: Any) -> None:
            nonlocal answered
            try:
                await self.rpc(c.peer_id, c.addrs, KadMessage(
                    kad.ADD_PROVIDER, key=dir_key, providers=(me,), record_key=dir_key,
                    record_value=signed))
                answered += 1
            except (NetworkError, PeerMisbehaviour):
                pass

        async with trio.open_nursery() as nursery:
            for c in closest:
                nursery.start_soon(add, c)
        return answered

    async def find_providers(self, dir_key: bytes, quick: bool = False,
                             into: dict[str, KadPeer] | None = None,
                             replicas: slice = slice(0, DIR_REPLICAS)) -> list[KadPeer]:
        """Providers under `dir_key`, deduplicated. `quick`: ask the closest peers our table
        knows (those `replicas` of the DIR_REPLICAS closest), in parallel, one hop; plus what
        we hold ourselves. `into` collects them as answers arrive (kept when the caller's
        deadline cuts the read short)."""
        assert self.table is not None
        found: dict[str, KadPeer] = {} if into is None else into
        for p in self.store.get_providers(dir_key, self.ctx.clock.wall()):
            found.setdefault(p.peer_id, KadPeer(p.peer_id, p.addrs))

        def on_answer(c: Candidate, answer: KadMessage) -> None:
            for p in self._proven(c.peer_id, dir_key, answer):
                found.setdefault(p.peer_id, p)  # deduplicated

        if quick:
            async def ask(c: Candidate) -> None:
                try:
                    on_answer(c, await self.rpc(c.peer_id, c.addrs, KadMessage(
                        kad.GET_PROVIDERS, key=dir_key)))
                except (NetworkError, PeerMisbehaviour):
                    pass

            async with trio.open_nursery() as nursery:
                for c in self.table.closest(kad_id(dir_key), DIR_REPLICAS)[replicas]:
                    nursery.start_soon(ask, c)
            return list(found.values())
        await self._lookup(kad_id(dir_key), lambda c: KadMessage(kad.GET_PROVIDERS,
                                                                 key=dir_key), on_answer,
                           k=DIR_REPLICAS)
        return list(found.values())

    def _proven(self, holder: str, dir_key: bytes, answer: KadMessage) -> list[KadPeer]:
        """The providers in `answer` that signed for `dir_key`. A holder that lists one
        without a valid proof inserted it: an offence, and none of its list is believed."""
        if not answer.providers:
            return []
        now = self.ctx.clock.wall()
        try:
            proofs.check_listed(dir_key, (p.peer_id for p in answer.providers),
                                answer.record_value, now - PROOF_SKEW,
                                PROVIDER_TTL + 2 * PROOF_SKEW)
        except proofs.BadProof as e:
            self.ctx.penalise(holder, f"DHT provider list refused: {e}")
            return []
        return list(answer.providers)

    def _own_addrs(self) -> list[str]:
        raise NotImplementedError
