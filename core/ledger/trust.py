"""Network trust: each village publishes its own trust view (whose work passed its sampled
checks) as a signed DHT record, reads the views of the villages it reaches from its anchors,
and runs EigenTrust over them. The villages that trust vouches for join the ones this village
measured itself in `LedgerService.trusted` (who is served first, whose credit is honoured,
whose training state is taken).

The protocol logic is here; the arithmetic is in `core.ledger.policy` (pure). A view is read
only if a village already reached vouches for it, so a ring of fresh identities vouching for
each other is never read, and gains nothing from its own words.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from core.dht import records as rec
from core.ledger import policy
from core.ports import ServiceContext

log = logging.getLogger(__name__)

TRUST_EVERY = 300.0   # s between refreshes (publish our view, read others, recompute)
TRUST_TTL = 900.0     # s our view lives in the DHT (three refreshes)
FIRST_AFTER = 20.0    # s after start before the first refresh (the DHT has neighbours)
MAX_VIEWS = 64        # views read per refresh
MAX_ROUNDS = 4        # breadth-first rounds out from the anchors
READ_TIMEOUT = 15.0   # s for one round of reads
READ_PARALLEL = 4     # views read at once (a burst of lookups puts dozens of DHT streams on
                      # the same few peers, past the cap a loaded peer counts as an offence)

Scores = Mapping[str, tuple[int, int, str]]


class NetworkTrust:
    """`scores()` reads this village's sampled-check scores (the ledger's); `on_trust(trust,
    vouched)` receives each refresh's result; `anchors()` are the pre-trusted villages."""

    def __init__(self, ctx: ServiceContext, directory: Any,
                 scores: Callable[[], Awaitable[Scores]],
                 on_trust: Callable[[dict[str, float], frozenset[str]], None],
                 anchors: Callable[[], frozenset[str]]) -> None:
        self.ctx = ctx
        self.directory = directory
        self.scores = scores
        self.on_trust = on_trust
        self.anchors = anchors
        self.trust: dict[str, float] = {}
        self.vouched: frozenset[str] = frozenset()
        self.views_read = 0
        self.last_error = ""
        self._seq = 0

    async def run(self) -> None:
        await trio.sleep(FIRST_AFTER * self.ctx.rng.uniform(0.8, 1.2))
        while True:
            try:
                await self.refresh()
            except Exception as e:  # a refresh that fails leaves the last trust in place
                self.last_error = str(e)[:200]
                log.warning("trust: refresh failed: %s", self.last_error)
            await trio.sleep(TRUST_EVERY * self.ctx.rng.uniform(0.8, 1.2))

    def own_view(self, scores: Scores) -> rec.ValidRecord:
        me = self.ctx.peer_id
        now = self.ctx.clock.wall()
        self._seq = max(self._seq + 1, int(now * 1_000_000))
        view = policy.local_trust(scores, me, rec.MAX_VOUCHES)
        record = rec.TrustRecord(rec.VERSION, me, sorted(view.items()), self._seq, now,
                                 now + TRUST_TTL)
        return rec.validate(rec.trust_key(me), rec.sign_trust(record, self.ctx.sign), now)

    async def refresh(self) -> frozenset[str]:
        """Publish our view, read the views we reach, recompute; returns the vouched set."""
        me = self.ctx.peer_id
        own = self.own_view(await self.scores())
        self.directory.hold(own)
        with trio.move_on_after(READ_TIMEOUT):
            try:
                await self.directory.put_record(own)
            except Exception as e:  # others read it from us (we hold it) meanwhile
                log.debug("trust: view not published: %s", e)
        views: dict[str, dict[str, float]] = {me: dict(own.record.vouches)}
        anchors = self.anchors() | {me}
        tried = {me}
        for _ in range(MAX_ROUNDS):
            batch = policy.next_views(views, anchors, tried, MAX_VIEWS - (len(tried) - 1))
            if not batch:
                break
            tried.update(batch)
            limit = trio.CapacityLimiter(READ_PARALLEL)
            with trio.move_on_after(READ_TIMEOUT):
                async with trio.open_nursery() as nursery:
                    for peer in batch:
                        nursery.start_soon(self._read, peer, views, limit)
        self.views_read = len(views) - 1
        self.trust, self.vouched = policy.network_trust(me, views, anchors)
        self.on_trust(self.trust, self.vouched)
        log.info("trust: %d views read, %d villages vouched for", self.views_read,
                 len(self.vouched))
        return self.vouched

    async def _read(self, peer: str, views: dict[str, dict[str, float]],
                    limit: trio.CapacityLimiter) -> None:
        try:
            async with limit:
                got = await self.directory.get_record(rec.trust_key(peer), 1, owner=peer)
        except Exception as e:  # unreadable: that village's view is left out this time
            log.debug("trust: view of %s not read: %s", peer[-8:], e)
            return
        if got is not None:
            views[peer] = dict(got.record.vouches)
