"""The DHT service: Grove's Kademlia over `/grove/kad/1.0.0`, publishing this village's record.

Service layer (trio, node thread) driving the pure pieces in `core.dht`: the routing table
(admission only after a peer spoke our protocol), iterative lookups, the validating store, and
the village's own signed record (TTL 5 min, republished at half-life, withdrawn with a
short-lived overwrite on a clean shutdown). Random-walk lookups keep the buckets filled, so a
network joined through one bootstrap peer does not leave routing tables of size 1.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import trio

from core.dht import providers as proofs
from core.dht import records as rec
from core.dht.keyspace import kad_id
from core.dht.lookup import Candidate
from core.dht.queries import (  # noqa: F401 (re-exported: the benchmarks read RPC_COUNTS)
    DIR_REPLICAS,
    LOOKUP_TIMEOUT,
    PROOF_SKEW,
    RPC_COUNTS,
    RPC_TIMEOUT,
    SLOW_AFTER,
    DhtQueries,
)
from core.dht.routing import RoutingTable
from core.dht.store import PROVIDER_TTL, Provider, RecordStore, StoreFull, store_pacer
from core.dht.streams import SERVER_IDLE, StreamPool
from core.errors import NetworkError, PeerMisbehaviour
from core.net import kad
from core.net.kad import KadMessage, KadPeer
from core.ratelimit import PeerRates
from core.tiers import TIER_NAMES

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.village import VillageRecordSource

log = logging.getLogger(__name__)

REFRESH_PERIOD = 300.0
JOIN_WALKS = 2
YOUNG_REFRESH = 15.0
ADMIT_PERIOD = 1.0
ADMIT_RETRY = 30.0  # s before a connected peer that did not answer our DHT is asked again
ADMIT_RETRY_ALONE = 3.0  # ... while our table is empty (a busy bootstrap peer: ask again soon)
VILLAGE_SCAN_PERIOD = 10.0
SCAN_PER_ROUND = 8
DIRECTORY_SWEEP = 30.0  # s between reads of a tier's directory key (finds relay-only villages;
# one key a round, in turn, left a relay-only cpu village unseen for up to 90 s)
EMPTY_TIER_SLOWER = 3  # a tier key that listed no other village is read this much less often
# (most networks have no GPU villages: 1.7 provider lookups a village every 30 s, not 3)
GROWTH_CHECK = 2.0
SHORT_SHARE = 0.75  # a publication acknowledged by fewer than this share of the peers the
SHORT_RETRIES = 6   # table says should hold it is repeated soon (after 4, 8, ... 60 s), this
                    # many times: a put made while the table was young or its peers too busy
                    # to answer left the record on 2 far peers, and lost it at 20% churn
MAX_REPAIRS = 8  # read repairs (records stored on peers a lookup found lacking) in flight
REQUESTS_PER_SECOND = 30.0  # DHT requests one peer may send us (a busy honest one: ~10)
REQUESTS_BURST = 100.0


class DhtService(DhtQueries):
    """Kademlia plus the record store, publishing what `village` (the record source) says;
    `village` None: a DHT that publishes nothing of its own (a relay-only test peer)."""

    def __init__(self, ctx: ServiceContext, village: VillageRecordSource | None = None
                 ) -> None:
        self.ctx = ctx
        self.village = village
        self.host = ctx.transport
        self.table: RoutingTable | None = None
        self.store = RecordStore()
        self.villages: dict[str, rec.ValidRecord] = {}  # records met in lookups
        self.own: rec.ValidRecord | None = None
        self._tried: dict[str, float] = {}
        # what one peer may ask of us (a 50-byte request can draw a 64 KiB answer)
        self._requests = PeerRates(REQUESTS_PER_SECOND, REQUESTS_BURST)
        self._stores_out = store_pacer()
        self.put_acks = 0  # of the k closest, how many took our record's last version
        self._published_with = 0  # our routing table's size then
        self.withdraw_on_stop = True  # False: vanish like a crashed or unplugged computer
        self._joined = trio.Event()  # set once the routing table has its first peer
        self._nursery: trio.Nursery | None = None  # the service's own, while it runs
        self._repairs = 0  # read repairs in flight

    # -- running -----------------------------------------------------------------------------
    async def run(self) -> None:
        self.table = RoutingTable(self.host.peer_id)
        self.streams = StreamPool(self.host)
        self.host.set_handler(kad.PROTOCOL, self._serve)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._admit_loop)
                nursery.start_soon(self._refresh_loop)
                if self.village is not None:
                    nursery.start_soon(self._publish_loop)
                nursery.start_soon(self._scan_loop)
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                if self.withdraw_on_stop:
                    await self._withdraw()
                await self.streams.close()

    def size_measure(self) -> tuple[float, float]:
        """(villages in the network, relative uncertainty) from our routing table (see
        `RoutingTable.size_measure`); (0, 1) before it holds anyone."""
        if self.table is None or len(self.table) == 0:
            return 0.0, 1.0
        return self.table.size_measure()

    def hold(self, own: rec.ValidRecord) -> None:
        """Hold a record of our own (training progress, a SWARM server record) where readers
        that ask us find it; no put budget is spent on it."""
        self.store.records[own.key] = own

    def held(self, key: bytes) -> rec.ValidRecord | None:
        """The unexpired record this village holds under `key`, if any."""
        return self.store.get(key, self.ctx.clock.wall())

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
                if not self._requests.take(peer, self.ctx.clock.mono()):  # no amplification
                    raise PeerMisbehaviour(peer, f"more than {REQUESTS_PER_SECOND:g} DHT "
                                                 "requests a second")
                self._admit(peer)
                await kad.send(stream, self._answer(msg, peer))
                continue
            return

    def _answer(self, msg: KadMessage, peer: str) -> KadMessage:
        assert self.table is not None
        now = self.ctx.clock.wall()
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
            except StoreFull:
                return KadMessage(kad.PUT_VALUE, key=msg.key)  # no room: not its fault
            except rec.RecordRejected as e:
                self.ctx.penalise(peer, f"DHT store refused: {e}")
                return KadMessage(kad.PUT_VALUE, key=msg.key)  # no record echoed: refused
            return KadMessage(kad.PUT_VALUE, key=msg.key, record_key=msg.record_key,
                              record_value=msg.record_value)
        if msg.type == kad.ADD_PROVIDER:
            try:
                proof = proofs.proof_of(peer, msg.record_value)
                proofs.check(msg.key, proof, now, PROVIDER_TTL + PROOF_SKEW)
                self.store.add_provider(msg.key, Provider(
                    peer, tuple(next((p.addrs for p in msg.providers if p.peer_id == peer),
                                     ())), proof.expires_at, signature=proof.signature),
                    peer, now)
            except StoreFull:
                pass
            except (rec.RecordRejected, proofs.BadProof) as e:
                self.ctx.penalise(peer, f"DHT provider refused: {e}")
            return KadMessage(kad.ADD_PROVIDER, key=msg.key)
        if msg.type == kad.GET_PROVIDERS:
            listed = self.store.get_providers(msg.key, now)[:kad.MAX_PEERS_IN_MESSAGE]
            return KadMessage(kad.GET_PROVIDERS, key=msg.key, closer=closer,
                              providers=tuple(KadPeer(p.peer_id, p.addrs) for p in listed),
                              record_key=msg.key if listed else b"",
                              record_value=proofs.encode(proofs.ProviderProof(
                                  p.peer_id, p.expires_at, p.signature) for p in listed)
                              if listed else b"")
        raise PeerMisbehaviour(peer, "unsupported DHT request")

    def _repair(self, best: rec.ValidRecord, peers: list[Candidate]) -> None:
        if self._nursery is None or self._repairs >= MAX_REPAIRS:
            return  # not running, or enough repairs in flight: a later read repairs it
        self._repairs += 1

        async def repair() -> None:
            try:
                async with trio.open_nursery() as nursery:
                    for c in peers:
                        nursery.start_soon(self._put_on, best, c)
            finally:
                self._repairs -= 1

        self._nursery.start_soon(repair)

    def _failed(self, peer: str) -> None:
        """An RPC failed. A peer we are still connected to is alive, only slow or busy: it
        keeps its place (evicting live peers under load emptied whole tables)."""
        assert self.table is not None
        if not self.host.is_connected(peer):
            self.table.failed(peer)

    def _admit(self, peer: str) -> None:
        assert self.table is not None
        addrs = tuple(a for a in self.host.known_addrs(peer) if "/ip4/0.0.0.0/" not in a)
        if self.table.add(peer, addrs, self.ctx.clock.wall()):
            self._joined.set()

    # -- loops -------------------------------------------------------------------------------
    async def _admit_loop(self) -> None:
        """Connected peers that speak our DHT protocol join the routing table; one that does
        not (an IPFS-only node, say) never does."""
        assert self.table is not None
        while True:
            now = trio.current_time()
            for p in self.host.connected_peers():
                retry = ADMIT_RETRY if len(self.table) else ADMIT_RETRY_ALONE
                if p.peer_id in self.table or now - self._tried.get(p.peer_id, -1e9) < retry:
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
                await self.find_closest(self.ctx.rng.randbytes(32))
            walks = 1
            fruitless = 0 if len(self.table) > before else fruitless + 1
            young = len(self.table) < self.table.k  # still filling: look again soon
            # ... but less often each time a look found no one new: a small network, or
            # peers too busy to answer, gain nothing from a lookup storm
            period = min(YOUNG_REFRESH * 2 ** fruitless, REFRESH_PERIOD) if young \
                else REFRESH_PERIOD
            await trio.sleep(period * self.ctx.rng.uniform(0.75, 1.25))

    def _own_addrs(self) -> list[str]:
        if self.village is not None:
            return self.village.own_addrs()
        return [a.split("/p2p/")[0] for a in self.host.listen_addrs()]

    def relay_records(self) -> list[rec.ValidRecord]:
        """Villages that said they serve as relays, from records we hold (never expired)."""
        return [r for r in self.known_villages(self.ctx.clock.wall())
                if "relay-hop" in r.record.services]

    def make_own_record(self, ttl: float) -> rec.ValidRecord:
        assert self.village is not None
        return self.village.make(ttl)

    async def _publish_loop(self) -> None:
        """Publish our record, and republish at half-life or when what it says changes."""
        assert self.table is not None and self.village is not None
        await self._joined.wait()
        announced_at = -1e9
        unheard = 0  # publications in a row that no peer acknowledged
        short = 0  # ... that fewer acknowledged than the table says should hold it
        holders: list[Candidate] = []  # who acknowledged the last version
        while True:
            self.own = self.make_own_record(rec.DEFAULT_TTL)
            # the last version's holders, the closest to the key first, 2k at most
            target = kad_id(self.own.key)
            previous = tuple(sorted(holders, key=lambda c: c.kid ^ target)[:2 * self.table.k])
            holders = []
            self.put_acks = await self.put_record(self.own, also=previous, acked=holders)
            self._published_with = len(self.table)
            log.info("published village record to %d peers", self.put_acks)
            unheard = 0 if self.put_acks else unheard + 1
            short = short + 1 if self.put_acks and not self.record_placed else 0
            retry_at = (trio.current_time() + min(GROWTH_CHECK * 2 ** (short + 1), 60.0)
                        * self.ctx.rng.uniform(0.75, 1.25)) if 0 < short <= SHORT_RETRIES \
                else math.inf
            if unheard:  # nobody took it (peers busy, or refusing a flood): back off
                await trio.sleep(min(GROWTH_CHECK * 2 ** unheard, 60.0)
                                 * self.ctx.rng.uniform(0.5, 1.0))
            if trio.current_time() - announced_at > PROVIDER_TTL / 2:
                announced_at = trio.current_time()
                for key in self.directory_keys():
                    await self.announce(key)
            # Republish at half-life, when the settings change, and while the network is
            # still growing around us (new neighbours should hold our record too).
            with trio.move_on_after(rec.DEFAULT_TTL / 2):
                async with trio.open_nursery() as wait:
                    async def on(change: Any) -> None:
                        await change()
                        wait.cancel_scope.cancel()

                    for change in self.village.changes:
                        wait.start_soon(on, change)
                    while not (self._should_republish()  # noqa: ASYNC110 (a size, not an event)
                               or trio.current_time() >= retry_at):
                        await trio.sleep(GROWTH_CHECK)
                    wait.cancel_scope.cancel()

    @property
    def record_placed(self) -> bool:
        """Our record's last publication reached most of the peers that should hold it (at
        least SHORT_SHARE of the k closest, or of our table while it is smaller)."""
        expected = min(self.table.k if self.table is not None else 0, self._published_with)
        return self.own is not None and self.put_acks >= max(1.0, SHORT_SHARE * expected)

    def _should_republish(self) -> bool:
        """The network grew around us since we published: more peers should hold our record."""
        assert self.table is not None
        size = len(self.table)
        if self.put_acks == 0:
            return size > 0
        return self.put_acks < self.table.k and size >= 2 * max(1, self._published_with)

    def directory_keys(self) -> list[bytes]:
        return self.village.directory_keys() if self.village is not None else []

    async def _scan_loop(self) -> None:
        """Fetch the records of the villages our routing table knows: the ones we have none
        of, and the ones whose record is about to expire (so a gone village drops out). It
        also reads each tier's directory key every DIRECTORY_SWEEP s (an empty one less
        often), so villages that are not in any routing table (relay-only ones, which others
        cannot dial) are found too."""
        assert self.table is not None
        await self._joined.wait()
        next_read = dict.fromkeys(TIER_NAMES, trio.current_time())
        while True:
            await trio.sleep(VILLAGE_SCAN_PERIOD * self.ctx.rng.uniform(0.5, 1.0))
            soon = self.ctx.clock.wall() + VILLAGE_SCAN_PERIOD * 2
            due = [c.peer_id for c in self.table.all() if c.peer_id not in self.villages
                   or self.villages[c.peer_id].expires_at < soon]
            for tier in TIER_NAMES:
                if trio.current_time() < next_read[tier]:
                    continue
                listed = [p.peer_id for p in await self.find_providers(
                    b"/grove/dir/tier/" + tier.encode()) if p.peer_id != self.host.peer_id]
                gap = DIRECTORY_SWEEP * (1 if listed else EMPTY_TIER_SLOWER)
                next_read[tier] = trio.current_time() + gap * self.ctx.rng.uniform(0.75, 1.25)
                due += [p for p in listed if p not in self.villages and p not in due]
            self.ctx.rng.shuffle(due)
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


