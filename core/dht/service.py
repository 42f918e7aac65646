"""The DHT service: Grove's Kademlia over `/grove/kad/1.0.0`, publishing this village's record.

Service layer (trio, node thread) driving the pure pieces in `core.dht`: the routing table
(admission only after a peer spoke our protocol), iterative lookups, the validating store, and
the village's own signed record (TTL 5 min, republished at half-life, withdrawn with a
short-lived overwrite on a clean shutdown). Random-walk lookups keep the buckets filled, so a
network joined through one bootstrap peer does not leave routing tables of size 1.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import trio

from core.dht import records as rec
from core.dht.keyspace import kad_id, peer_kad_id
from core.dht.lookup import Candidate, Lookup
from core.dht.routing import RoutingTable
from core.dht.store import PROVIDER_TTL, Provider, RecordStore
from core.dht.streams import SERVER_IDLE, StreamPool
from core.errors import NetworkError, PeerMisbehaviour
from core.net import kad
from core.net.kad import KadMessage, KadPeer
from core.tiers import TIER_NAMES

if TYPE_CHECKING:
    from core.node import Node

log = logging.getLogger(__name__)

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
REFRESH_PERIOD = 300.0
JOIN_WALKS = 2
YOUNG_REFRESH = 15.0
ADMIT_PERIOD = 1.0
VILLAGE_SCAN_PERIOD = 10.0
DIR_REPLICAS = 8
SCAN_PER_ROUND = 8
DIRECTORY_SWEEP = 30.0  # s between reads of one tier's directory key (finds relay-only villages)
GROWTH_CHECK = 2.0


class DhtService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.table: RoutingTable | None = None
        self.store = RecordStore()
        self.villages: dict[str, rec.ValidRecord] = {}  # records met in lookups
        self.own: rec.ValidRecord | None = None
        self._tried: dict[str, float] = {}
        self.put_acks = 0
        self.withdraw_on_stop = True  # False: vanish like a crashed or unplugged computer
        self._joined = trio.Event()  # set once the routing table has its first peer

    # -- running -----------------------------------------------------------------------------
    async def run(self) -> None:
        assert self.node.host is not None, "the DHT runs only while the host runs"
        self.host: Any = self.node.host  # kept: handlers may still run while the host closes
        self.table = RoutingTable(self.host.peer_id)
        self.streams = StreamPool(self.host)
        self.host.set_handler(kad.PROTOCOL, self._serve)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._admit_loop)
                nursery.start_soon(self._refresh_loop)
                nursery.start_soon(self._publish_loop)
                nursery.start_soon(self._scan_loop)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                if self.withdraw_on_stop:
                    await self._withdraw()
                await self.streams.close()

    def known_villages(self, now: float) -> list[rec.ValidRecord]:
        """Villages whose records we hold and that have not expired (never an expired one)."""
        for pid in [p for p, r in self.villages.items() if r.expires_at <= now]:
            del self.villages[pid]
        return sorted(self.villages.values(), key=lambda r: r.record.peer_id)

    # -- serving -----------------------------------------------------------------------------
    async def _serve(self, stream: Any, peer: str) -> None:
        reader = kad.FrameReader(stream, peer)
        while True:
            with trio.move_on_after(SERVER_IDLE):
                data = await reader.read(kad.MAX_REQUEST)
                if data is None:
                    return
                msg = kad.decode(data, peer)
                self._admit(peer)
                await kad.send(stream, self._answer(msg, peer))
                continue
            return

    def _answer(self, msg: KadMessage, peer: str) -> KadMessage:
        assert self.table is not None
        now = time.time()
        if msg.type == kad.PING:
            return KadMessage(kad.PING)
        target = kad_id(msg.key)
        closer = tuple(KadPeer(c.peer_id, c.addrs) for c in
                       self.table.closest(target, exclude=frozenset({peer})))
        if msg.type == kad.FIND_NODE:
            return KadMessage(kad.FIND_NODE, key=msg.key, closer=closer)
        if msg.type == kad.GET_VALUE:
            held = self.store.get(msg.key, now)
            if held is None and self.own is not None and msg.key == self.own.key and \
                    self.own.expires_at > now:
                held = self.own
            return KadMessage(kad.GET_VALUE, key=msg.key, closer=closer,
                              record_key=held.key if held else b"",
                              record_value=held.value if held else b"")
        if msg.type == kad.PUT_VALUE:
            try:
                self.store.put(msg.record_key, msg.record_value, peer, now)
            except rec.RecordRejected as e:
                self.node.record_misbehaviour(peer, f"DHT store refused: {e}")
                return KadMessage(kad.PUT_VALUE, key=msg.key)  # no record echoed: refused
            return KadMessage(kad.PUT_VALUE, key=msg.key, record_key=msg.record_key,
                              record_value=msg.record_value)
        if msg.type == kad.ADD_PROVIDER:
            for p in msg.providers[:1]:
                try:
                    self.store.add_provider(msg.key, Provider(p.peer_id, p.addrs,
                                                              now + PROVIDER_TTL), peer, now)
                except rec.RecordRejected as e:
                    self.node.record_misbehaviour(peer, f"DHT provider refused: {e}")
            return KadMessage(kad.ADD_PROVIDER, key=msg.key)
        if msg.type == kad.GET_PROVIDERS:
            provs = tuple(KadPeer(p.peer_id, p.addrs) for p in self.store.get_providers(
                msg.key, now))
            return KadMessage(kad.GET_PROVIDERS, key=msg.key, closer=closer, providers=provs)
        raise PeerMisbehaviour(peer, "unsupported DHT request")

    def _failed(self, peer: str) -> None:
        """An RPC failed. A peer we are still connected to is alive, only slow or busy: it
        keeps its place (evicting live peers under load emptied whole tables)."""
        assert self.table is not None
        if not self.host.is_connected(peer):
            self.table.failed(peer)

    def _admit(self, peer: str) -> None:
        assert self.table is not None
        addrs = tuple(a for a in self.host.known_addrs(peer) if "/ip4/0.0.0.0/" not in a)
        if self.table.add(peer, addrs, time.time()):
            self._joined.set()

    # -- asking ------------------------------------------------------------------------------
    async def rpc(self, peer: str, addrs: tuple[str, ...], msg: KadMessage) -> KadMessage:
        """One request/answer with `peer`; it enters the routing table if it answers."""
        assert self.table is not None
        if addrs and not self.host.is_connected(peer):
            self.host.remember(peer, addrs)
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
                        self.node.record_misbehaviour(e.peer, e.reason)
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
        now = time.time()
        found: list[rec.ValidRecord] = []
        held = self.store.get(key, now)
        if held is not None:
            found.append(held)

        def on_answer(c: Candidate, answer: KadMessage) -> None:
            if answer.record_value:
                try:
                    found.append(rec.validate(key, answer.record_value, time.time()))
                except rec.RecordRejected as e:
                    self.node.record_misbehaviour(c.peer_id, f"served a bad record: {e}")

        contact = self.table.get(owner) if owner and self.table is not None else None
        if contact is not None and owner is not None and len(found) < quorum:
            try:
                on_answer(Candidate(owner, contact.addrs, contact.kid), await self.rpc(
                    owner, contact.addrs, KadMessage(kad.GET_VALUE, key=key)))
            except PeerMisbehaviour as e:
                self.node.record_misbehaviour(e.peer, e.reason)
            except NetworkError:
                pass
        if len(found) < quorum:
            await self._lookup(kad_id(key), lambda c: KadMessage(kad.GET_VALUE, key=key),
                               on_answer, stop_when=lambda: len(found) >= quorum)
        return rec.select([r for r in found if r.expires_at > time.time()])

    async def get_record_from(self, peer: str, addrs: tuple[str, ...] | list[str],
                              key: bytes) -> rec.ValidRecord | None:
        """`key`'s record as `peer` holds it (one request; checked like any record; a bad
        one is recorded against the peer)."""
        answer = await self.rpc(peer, tuple(addrs), KadMessage(kad.GET_VALUE, key=key))
        if not answer.record_value:
            return None
        try:
            return rec.validate(key, answer.record_value, time.time())
        except rec.RecordRejected as e:
            self.node.record_misbehaviour(peer, f"served a bad record: {e}")
            return None

    async def put_record(self, value: rec.ValidRecord) -> int:
        """Store on the k closest peers; returns how many acknowledged."""
        closest = await self.find_closest(value.key)
        acks = 0

        async def put(c: Candidate) -> None:
            nonlocal acks
            try:
                answer = await self.rpc(c.peer_id, c.addrs, KadMessage(
                    kad.PUT_VALUE, key=value.key, record_key=value.key,
                    record_value=value.value))
                if answer.record_value == value.value:
                    acks += 1
            except (NetworkError, PeerMisbehaviour):
                pass

        async with trio.open_nursery() as nursery:
            for c in closest:
                nursery.start_soon(put, c)
        return acks

    async def announce(self, dir_key: bytes, quick: bool = False) -> None:
        """Add us as a provider under `dir_key` at the peers closest to it. `quick`: the
        closest our routing table knows, in one hop (no lookup) - for short-lived keys
        (averaging rounds) in a network our table already covers well."""
        assert self.table is not None
        target = kad_id(dir_key)
        closest: list[Any] = (self.table.closest(target, DIR_REPLICAS) if quick else
                              (await self.find_closest(dir_key, DIR_REPLICAS)))
        me = KadPeer(self.host.peer_id, tuple(self._own_addrs()))
        now = time.time()
        try:  # we hold it too: a reader whose closest set includes us finds it here
            self.store.add_provider(dir_key, Provider(me.peer_id, me.addrs, now + PROVIDER_TTL),
                                    me.peer_id, now)
        except rec.RecordRejected:
            pass

        async def add(c: Any) -> None:
            try:
                await self.rpc(c.peer_id, c.addrs, KadMessage(kad.ADD_PROVIDER, key=dir_key,
                                                              providers=(me,)))
            except (NetworkError, PeerMisbehaviour):
                pass

        async with trio.open_nursery() as nursery:
            for c in closest:
                nursery.start_soon(add, c)

    async def find_providers(self, dir_key: bytes, quick: bool = False,
                             into: dict[str, KadPeer] | None = None,
                             replicas: slice = slice(0, DIR_REPLICAS)) -> list[KadPeer]:
        """Providers under `dir_key`, deduplicated. `quick`: ask the closest peers our table
        knows (those `replicas` of the DIR_REPLICAS closest), in parallel, one hop; plus what
        we hold ourselves. `into` collects them as answers arrive (kept when the caller's
        deadline cuts the read short)."""
        assert self.table is not None
        found: dict[str, KadPeer] = {} if into is None else into
        for p in self.store.get_providers(dir_key, time.time()):
            found.setdefault(p.peer_id, KadPeer(p.peer_id, p.addrs))

        def on_answer(c: Candidate, answer: KadMessage) -> None:
            for p in answer.providers:
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

    # -- loops -------------------------------------------------------------------------------
    async def _admit_loop(self) -> None:
        """Connected peers that speak our DHT protocol join the routing table; one that does
        not (an IPFS-only node, say) never does."""
        assert self.table is not None
        while True:
            now = trio.current_time()
            for p in self.host.connected_peers():
                if p.peer_id in self.table or now - self._tried.get(p.peer_id, -1e9) < 30:
                    continue
                self._tried[p.peer_id] = now
                try:
                    await self.rpc(p.peer_id, (), KadMessage(kad.FIND_NODE, key=_own_key(
                        self.host.peer_id)))
                except (NetworkError, PeerMisbehaviour) as e:
                    log.debug("%s is not a Grove DHT peer: %s", p.peer_id, e)
            await self.streams.sweep()
            await trio.sleep(ADMIT_PERIOD)

    async def _refresh_loop(self) -> None:
        """Join by looking up our own id (and two random keys, to reach beyond our
        neighbourhood); then refresh every REFRESH_PERIOD with one own-id lookup and a random
        walk. Peers that ask us something are admitted too, so tables fill as the network
        talks, without lookup storms."""
        assert self.table is not None
        await self._joined.wait()
        walks = JOIN_WALKS
        fruitless = 0  # refreshes in a row that did not grow the table
        while True:
            before = len(self.table)
            await self.find_closest(_own_key(self.host.peer_id))
            for _ in range(walks):
                await self.find_closest(self.node.rng.randbytes(32))
            walks = 1
            fruitless = 0 if len(self.table) > before else fruitless + 1
            young = len(self.table) < self.table.k  # still filling: look again soon
            # ... but less often each time a look found no one new: a small network, or
            # peers too busy to answer, gain nothing from a lookup storm
            period = min(YOUNG_REFRESH * 2 ** fruitless, REFRESH_PERIOD) if young \
                else REFRESH_PERIOD
            await trio.sleep(period * self.node.rng.uniform(0.75, 1.25))

    def _own_addrs(self) -> list[str]:
        """Our listen addresses; behind a NAT, the circuit addresses through our relays first
        (a dialer tries them in order)."""
        direct = [a.split("/p2p/")[0] for a in self.host.listen_addrs()
                  if "/ip4/0.0.0.0/" not in a]
        nat = self.host.nat
        if nat is None or not nat.reservations:
            return direct
        return nat.circuit_addrs(self.host.peer_id) + direct

    def relay_records(self) -> list[rec.ValidRecord]:
        """Villages that said they serve as relays, from records we hold (never expired)."""
        return [r for r in self.known_villages(time.time()) if "relay-hop" in r.record.services]

    def _services(self) -> list[str]:
        services = list(self.node.governor.tier.spec.services)
        if self.node.relay_hop:
            services.append("relay-hop")  # serving circuits now (the tier only allows it)
        return services

    def make_own_record(self, ttl: float) -> rec.ValidRecord:
        s = self.node.settings
        now = time.time()
        tier = self.node.governor.tier
        record = rec.VillageRecord(
            v=rec.VERSION, peer_id=self.host.peer_id, addrs=self._own_addrs()[:8],
            tier=tier.tier, services=self._services(),
            limits=rec.LimitsSummary(s.cpu_share, s.upload_kbps, s.download_kbps),
            personas=[rec.PersonaSummary(p.id, p.name, p.status, p.availability)
                      for p in self.node.personas.current[:32]],
            gardener_online=s.participate, software=_software(),
            region=s.region[:64], seq=time.time_ns() // 1000, issued_at=now,
            expires_at=now + ttl)
        value = rec.sign_record(record, self.node.config.key.sign)
        return rec.ValidRecord(rec.village_key(record.peer_id), value, record)

    async def _publish_loop(self) -> None:
        """Publish our record, and republish at half-life or when what it says changes."""
        assert self.table is not None
        await self._joined.wait()
        announced_at = -1e9
        unheard = 0  # publications in a row that no peer acknowledged
        while True:
            self.own = self.make_own_record(rec.DEFAULT_TTL)
            self.put_acks = await self.put_record(self.own)
            published_with = len(self.table)
            log.info("published village record to %d peers", self.put_acks)
            unheard = 0 if self.put_acks else unheard + 1
            if unheard:  # nobody took it (peers busy, or refusing a flood): back off
                await trio.sleep(min(GROWTH_CHECK * 2 ** unheard, 60.0)
                                 * self.node.rng.uniform(0.5, 1.0))
            if trio.current_time() - announced_at > PROVIDER_TTL / 2:
                announced_at = trio.current_time()
                for key in self.directory_keys():
                    await self.announce(key)
            # Republish at half-life, when the settings change, and while the network is
            # still growing around us (new neighbours should hold our record too).
            with trio.move_on_after(rec.DEFAULT_TTL / 2):
                async with trio.open_nursery() as wait:
                    async def settings_changed() -> None:
                        await self.node.wait_settings_changed()
                        wait.cancel_scope.cancel()

                    async def reachability_changed() -> None:
                        await self.node.reachability.wait_changed()
                        wait.cancel_scope.cancel()

                    wait.start_soon(settings_changed)
                    wait.start_soon(reachability_changed)
                    while not self._should_republish(published_with):  # noqa: ASYNC110 (a size, not an event)
                        await trio.sleep(GROWTH_CHECK)
                    wait.cancel_scope.cancel()

    def _should_republish(self, published_with: int) -> bool:
        """The network grew around us since we published: more peers should hold our record."""
        assert self.table is not None
        size = len(self.table)
        if self.put_acks == 0:
            return size > 0
        return self.put_acks < self.table.k and size >= 2 * max(1, published_with)

    def directory_keys(self) -> list[bytes]:
        tier = self.node.governor.tier
        keys = [b"/grove/dir/tier/" + tier.tier.encode()]
        keys += [b"/grove/dir/service/" + s.encode() for s in tier.spec.services]
        if self.node.settings.region:
            keys.append(b"/grove/dir/region/" + self.node.settings.region.encode()[:64])
        return keys

    async def _scan_loop(self) -> None:
        """Fetch the records of the villages our routing table knows: the ones we have none
        of, and the ones whose record is about to expire (so a gone village drops out). Each
        round also reads one tier's directory key, so villages that are not in any routing
        table (relay-only ones, which others cannot dial) are found too."""
        assert self.table is not None
        await self._joined.wait()
        sweep = 0
        next_sweep = trio.current_time()
        while True:
            await trio.sleep(VILLAGE_SCAN_PERIOD * self.node.rng.uniform(0.5, 1.0))
            soon = time.time() + VILLAGE_SCAN_PERIOD * 2
            due = [c.peer_id for c in self.table.all() if c.peer_id not in self.villages
                   or self.villages[c.peer_id].expires_at < soon]
            if trio.current_time() >= next_sweep:
                tier = TIER_NAMES[sweep % len(TIER_NAMES)]
                sweep += 1
                next_sweep = trio.current_time() + DIRECTORY_SWEEP * self.node.rng.uniform(
                    0.75, 1.25)
                listed = await self.find_providers(b"/grove/dir/tier/" + tier.encode())
                due += [p.peer_id for p in listed if p.peer_id != self.host.peer_id
                        and p.peer_id not in self.villages and p.peer_id not in due]
            self.node.rng.shuffle(due)
            for pid in due[:SCAN_PER_ROUND]:  # bounded: a big table is learned over rounds
                await self.get_village(pid, quorum=1, ask_owner=True)

    async def _withdraw(self) -> None:
        if self.own is None or self.table is None or len(self.table) == 0:
            return
        short = self.make_own_record(rec.WITHDRAW_TTL)
        for c in self.table.closest(kad_id(short.key), 8):
            try:
                await self.rpc(c.peer_id, c.addrs, KadMessage(
                    kad.PUT_VALUE, key=short.key, record_key=short.key,
                    record_value=short.value))
            except (NetworkError, PeerMisbehaviour):
                continue


def _own_key(peer_id: str) -> bytes:
    from core.dht.keyspace import peer_bytes

    return peer_bytes(peer_id)


def _software() -> str:
    from core import __version__

    return f"grove-village/{__version__} ({os.name})"
