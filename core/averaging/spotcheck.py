"""Checking reducers, as BTARD does: a reducer's signed-for result is only its word, and a
result that stays inside the round's bounds passes every other check. So every member

- keeps what it sent each reducer for a while after the round (`_Sent`) and gives each
  part, once, to a member of the same group that asks for it (`PartAsk`);
- checks at once that each reducer lists the digest of the part this member sent it;
- checks the round's reducers after the results came in - every one when the whole check
  downloads at most CHECK_ALL_BYTES, else SPOT_CHECKS chosen at random; a round with value
  bounds only with BOUNDED_CHECK_CHANCE: it fetches from every other member, in one request,
  the parts it sent those reducers, checks each against the digest and weight the reducer
  listed for it, reduces them itself with the round's rule and compares. A result its own
  listed parts do not give is a proven offence: the reducer is refused, and the vector is
  averaged again among the others without it (or keeps this village's values).

A member whose copy does not match the reducer's digest proves nothing about either (one of
the two lies, and this village cannot tell which), so that check ends without a verdict, as
does one with a different center (members that disagree about the previous aggregate) or
one the round's time cut short. A mixin of `AveragingService`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.averaging import wire
from core.averaging.moshpit import Slice, partition, reduce_slice
from core.averaging.rounds import _robust_reduce
from core.errors import PeerMisbehaviour
from core.net.framing import read_frame, write_frame
from core.net.host import close_stream

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

CHECK_ALL_BYTES = 4 << 20  # a round whose full check downloads at most this checks every
                           # reducer (telemetry, small models); a larger one SPOT_CHECKS
SPOT_CHECKS = 1      # reducers each member checks per round otherwise, chosen at random
BOUNDED_CHECK_CHANCE = 0.25  # rounds with value bounds (telemetry) are checked this often: a
# lie there moves a figure only inside its bounds, for the rounds until it is caught, and a
# check costs about as many streams as the all-reduce itself; rounds without bounds
# (training, where one lie taken stays in a model) are checked every time
SENT_KEEP = 30.0     # s past a round's deadline a member keeps its parts for checkers
MAX_SENT = 64        # rounds whose parts are kept at once (the oldest go first)
CHECK_SHARE = 0.5    # of the time left before the round's last margin, what checks may take


@dataclass
class _Sent:
    until: float                                   # trio clock
    members: frozenset[str]
    parts: dict[int, tuple[wire.PartHeader, bytes]] = field(default_factory=dict)
    asked: set[tuple[str, int]] = field(default_factory=set)  # (asker, slice): once each


@dataclass(frozen=True)
class Receipt:
    """What one reducer answered us: its slice index, its message and the values."""
    index: int
    result: wire.SliceResult
    values: np.ndarray


class SpotCheck:
    ctx: ServiceContext
    _sent: dict[str, _Sent]

    @property
    def me(self) -> str:
        return self.ctx.peer_id

    def _offence(self, peer: str, reason: str, *, proven: bool = False) -> None:
        raise NotImplementedError

    async def _reply(self, stream: Any, msg: wire.Control) -> None:
        raise NotImplementedError

    # -- what we sent ------------------------------------------------------------------------
    def _keep_sent(self, group_id: str, members: list[str], until: float) -> _Sent:
        now = trio.current_time()
        for gid in [g for g, s in self._sent.items() if s.until < now]:
            del self._sent[gid]
        while len(self._sent) >= MAX_SENT:
            del self._sent[next(iter(self._sent))]
        entry = self._sent[group_id] = _Sent(until, frozenset(members))
        return entry

    async def _serve_part_ask(self, stream: Any, peer: str, ask: wire.PartAsk) -> None:
        entry = self._sent.get(ask.group_id)
        for index in ask.slices:
            if entry is None or peer not in entry.members or index not in entry.parts \
                    or (peer, index) in entry.asked:
                await self._reply(stream, wire.Reject(wire.VERSION, "no such part here (or "
                                                      "asked for already)"))
                continue
            entry.asked.add((peer, index))
            header, payload = entry.parts[index]
            await self._reply(stream, header)
            await write_frame(stream, payload)

    # -- checking ----------------------------------------------------------------------------
    async def _spot_check(self, msg: wire.Assembled, receipts: dict[str, Receipt],
                          center: np.ndarray | None, until: float, *, bounded: bool,
                          fetched: dict[tuple[str, int], tuple[wire.PartHeader, bytes]]
                          | None = None) -> None:
        """Check the reducers that answered us (listing digests) - every one when the whole
        check costs at most CHECK_ALL_BYTES, else SPOT_CHECKS at random - by `until` (trio
        clock); a reducer caught is recorded as a proven offender. `bounded`: the round has
        value bounds (then it is checked with BOUNDED_CHECK_CHANCE). `fetched` gets the
        other members' parts it fetched."""
        if bounded and self.ctx.rng.random() >= BOUNDED_CHECK_CHANCE:
            return
        ready = sorted(r for r, rc in receipts.items() if r != self.me and rc.result.digests)
        if msg.length * 4 * max(0, len(msg.members) - 2) > CHECK_ALL_BYTES:
            ready = self.ctx.rng.sample(ready, min(SPOT_CHECKS, len(ready)))
        if not ready:
            return
        slices = partition(msg.length, [m.share for m in msg.members])
        # one request per member, for its parts of every slice checked that lists it
        wanted: dict[str, list[int]] = {}
        for r in ready:
            for m in receipts[r].result.members:
                if m != self.me:
                    wanted.setdefault(m, []).append(receipts[r].index)
        got: dict[tuple[str, int], tuple[wire.PartHeader, bytes]] = \
            fetched if fetched is not None else {}
        own = self._sent.get(msg.group_id)
        for index, part in (own.parts.items() if own is not None else ()):
            got[(self.me, index)] = part
        with trio.move_on_at(until):
            async with trio.open_nursery() as nursery:
                for m, indices in wanted.items():
                    nursery.start_soon(self._ask_parts, m, msg.group_id, indices, slices, got)
        for r in ready:
            self._check_reducer(msg, r, receipts[r], slices[receipts[r].index], center=center,
                                got=got)

    def _check_reducer(self, msg: wire.Assembled, reducer: str, rc: Receipt, s: Slice, *,
                       center: np.ndarray | None,
                       got: dict[tuple[str, int], tuple[wire.PartHeader, bytes]]) -> None:
        res = rc.result
        center_slice = None if center is None else center[s.start:s.stop]
        if res.center != wire.center_digest(center_slice if msg.rule != "mean" else None):
            log.info("averaging: check of %s skipped: another center", reducer[-6:])
            return
        parts, weights = [], []
        for i, m in enumerate(res.members):
            if (m, rc.index) not in got:
                log.info("averaging: check of %s: no copy of %s's part", reducer[-6:], m[-6:])
                return
            head, payload = got[(m, rc.index)]
            if wire.part_digest(head.dtype, head.scale, head.zero, head.weight, payload) \
                    != res.digests[i] or head.weight != res.weights[i]:
                log.info("averaging: check of %s: %s's copy differs from what it listed (one "
                         "of the two lies)", reducer[-6:], m[-6:])
                return
            try:
                parts.append(wire.unpack(payload, head.dtype, s.stop - s.start,
                                         scale=head.scale, zero=head.zero, peer=m))
            except PeerMisbehaviour as e:
                self._offence(m, e.reason, proven=e.proven)
                return
            weights.append(head.weight)
        with self.ctx.compute.counted():  # a reducer's check: within the CPU share
            if msg.rule != "mean":
                mine = _robust_reduce(parts, msg.rule, msg.f, center_slice)[0]
            else:
                mine = reduce_slice(parts, weights).astype(np.float32)
            payload, scale, zero = wire.pack(mine, res.dtype)
            expect = wire.unpack(payload, res.dtype, mine.size, scale=scale, zero=zero, peer="")
        if not np.allclose(rc.values, expect, rtol=1e-5, atol=1e-6):
            worst = float(np.max(np.abs(rc.values - expect)))
            self._offence(reducer, f"a slice result its own listed parts do not give "
                                   f"(checked: off by up to {worst:.3g})", proven=True)
        else:
            log.debug("averaging: check of %s passed", reducer[-6:])

    async def _ask_parts(self, member: str, group_id: str, indices: list[int],
                         slices: list[Slice],
                         into: dict[tuple[str, int], tuple[wire.PartHeader, bytes]]) -> None:
        try:
            stream = await self.ctx.transport.open_stream(member, wire.PROTOCOL, timeout=5)
            try:
                await write_frame(stream, wire.encode(wire.PartAsk(wire.VERSION, group_id,
                                                                   indices)))
                for index in indices:
                    length = slices[index].stop - slices[index].start
                    head = wire.decode(await read_frame(stream, max_size=wire.MAX_CONTROL,
                                                        timeout=5, peer=member), member)
                    if not isinstance(head, wire.PartHeader):
                        continue  # it has no such part (a Reject): no verdict on that slice
                    if head.length != length or head.slice != index:
                        raise PeerMisbehaviour(member, "answered a part request with "
                                               "another part", proven=True)
                    body = await read_frame(stream,
                                            max_size=length * wire.BYTES_PER[head.dtype],
                                            timeout=10, peer=member)
                    into[(member, index)] = (head, body)
            finally:
                await close_stream(stream)
        except PeerMisbehaviour as e:
            self._offence(member, e.reason, proven=e.proven)
        except Exception as e:  # unreachable, reset, slow: no verdict
            log.info("averaging: no parts from %s for a check (%s)", member[-6:],
                     type(e).__name__)
