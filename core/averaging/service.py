"""The averaging service: DHT matchmaking, then a butterfly all-reduce on /grove/avg/1.0.0.

`await service.average(key, vector, close_at=..., deadline_at=...)`:

1. Matchmaking. The village announces itself under the DHT directory key of `key` (a run, a
   round and a Moshpit group key), and shortly before `close_at` reads who else announced.
   The smallest peer id seen leads: the others send it a Join; it answers each, at
   `close_at` (or up to LATE_JOIN later, while villages it saw listed are still joining), with
   the same Assembled message (members in slice order, their shares, a group
   id). A village that thinks someone else leads redirects joiners there. Views that differ
   make smaller groups, never inconsistent ones.
2. All-reduce. The vector is cut into one slice per member (sized by announced bandwidth; a
   relay-only village is a client with no slice). Each member sends each reducer its part and
   gets the reduced slice back on the same stream. A reducer reduces when every part arrived or
   at its part deadline with what arrived; every result names the members in it.
3. Outcome. Members dropped anywhere (late, failed, malformed) are named; the result is the
   exact weighted mean of `members` when `complete`. No step waits past `deadline_at`.

Deadlines are wall-clock times (peers agree on them); waits use the trio clock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.averaging import rounds, wire
from core.averaging.allreduce import AllReduce
from core.averaging.matchmaking import Matchmaking
from core.averaging.moshpit import UploadRate
from core.averaging.rounds import (  # noqa: F401 (the public names of averaging)
    DECIDE_MARGIN,
    MAX_OFFENDERS,
    AveragingResult,
    _Reduction,
    _Round,
    group_id_for,
    out_of_range,
)
from core.averaging.spotcheck import _Sent
from core.errors import PeerMisbehaviour
from core.memory import ROUND_BUFFERS, MemoryRefused
from core.net.framing import read_frame

if TYPE_CHECKING:
    from core.ports import ReachabilityPort, ServiceContext

log = logging.getLogger(__name__)


class AveragingService(Matchmaking, AllReduce):
    """`directory`: the DHT (announce and find providers); `reachability`: whether we are
    relay-only (then a client, with no slice to reduce)."""

    def __init__(self, ctx: ServiceContext, directory: Any, reachability: ReachabilityPort
                 ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.reachability = reachability
        self._rounds: dict[str, _Round] = {}
        self._groups: dict[str, _Reduction] = {}
        self._ready: dict[str, trio.Event] = {}
        self._shunned: dict[str, float] = {}  # peer -> until (clock.mono): not led, not followed
        self._offenders: dict[str, float] = {}  # peers that offended here (mono time), recent
        self._sent: dict[str, _Sent] = {}  # group id -> the parts we sent (for checks)
        self.upload = UploadRate()  # measured from our own transfers; announced in Joins

    async def run(self) -> None:
        host = self.ctx.transport
        host.set_handler(wire.PROTOCOL, self._serve)
        await trio.sleep_forever()

    @property
    def me(self) -> str:
        return self.ctx.peer_id

    def _is_client(self) -> bool:
        return self.reachability.current.state in ("relay-only", "unreachable")

    def _trio_at(self, wall: float) -> float:
        return trio.current_time() + (wall - self.ctx.clock.wall())

    def _offence(self, peer: str, reason: str, *, proven: bool = False) -> None:
        self.ctx.penalise(peer, f"averaging: {reason}")
        if proven:  # not slowness nor a broken stream, which honest villages show too
            self._shun(peer)
        self._offenders.pop(peer, None)
        self._offenders[peer] = trio.current_time()  # compared with a round's start
        if len(self._offenders) > MAX_OFFENDERS:  # the oldest goes
            del self._offenders[next(iter(self._offenders))]

    async def average(self, key: str, vector: np.ndarray, *, close_at: float,
                      deadline_at: float, weight: float = 1.0, max_group: int = 16,
                      compression: str = "none", rule: str = "mean", f: int = 0,
                      center: np.ndarray | None = None,
                      bounds: tuple[np.ndarray, np.ndarray] | None = None,
                      collect: bool = False) -> AveragingResult:
        """Average `vector` (float32) with the villages matched under `key`. `rule` (see
        core.robust) is how each reducer reduces its slice, tolerating `f` Byzantine members;
        a group too small for it falls back to a rule it allows, and the result says so.
        Members must agree on both: put them in the key. `center`: the previous aggregate,
        for centered clipping. `bounds`: (lowest, highest) per element that any member may
        send (members agree on them, as on the rule): a part outside them, or a reducer's
        result outside them, is an offence and is not used. `collect`: the result carries
        the other members' whole vectors where the reducer checks fetched every slice of
        them (`AveragingResult.contributions`)."""
        started = trio.current_time()
        vec = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        if not 0 < vec.size <= wire.MAX_ELEMENTS:
            raise ValueError(f"cannot average {vec.size} values (1..{wire.MAX_ELEMENTS})")
        if not 0 < weight <= wire.MAX_WEIGHT:
            raise ValueError(f"a weight of {weight} is outside (0, {wire.MAX_WEIGHT:g}]")
        if not np.isfinite(vec).all():
            raise ValueError("the vector to average holds NaN or Inf")
        if key in self._rounds:
            raise RuntimeError(f"already averaging under {key!r}")
        if rule not in wire.RULE_NAMES or not 0 <= f < wire.MAX_GROUP:
            raise ValueError(f"unknown rule {rule!r} or f={f} out of range")
        if center is not None:
            center = np.ascontiguousarray(center, dtype=np.float32).reshape(-1)
            if center.size != vec.size or not np.isfinite(center).all():
                raise ValueError("the center must be a finite vector as long as the vector")
        if bounds is not None:
            bounds = (np.broadcast_to(np.asarray(bounds[0], np.float32), vec.shape),
                      np.broadcast_to(np.asarray(bounds[1], np.float32), vec.shape))
            if out_of_range(vec, bounds):
                raise ValueError(f"the vector breaks its own bounds: {out_of_range(vec, bounds)}")
        close = self._trio_at(close_at)
        deadline = self._trio_at(deadline_at)
        group = min(max_group, wire.MAX_GROUP)
        try:  # the round's buffers, within the RAM cap (the vector itself is the caller's;
            # with `collect`, each member's whole vector too)
            held = self.ctx.memory.reserve(
                vec.nbytes * (ROUND_BUFFERS + (group if collect else 0)), f"averaging {key}")
        except MemoryRefused as e:
            return self._alone(key, vec, weight, started, f"not averaged: {e.reason}")
        rnd = _Round(key, int(vec.size), close, group, deadline, rule, f)
        self._rounds[key] = rnd
        try:
            with trio.move_on_after(max(0.0, deadline - trio.current_time())):
                msg, reason = await self._matchmake(rnd, weight)
                if msg is None:
                    return self._alone(key, vec, weight, started, reason)
                return await self._allreduce(msg, vec, weight, deadline=deadline,
                                             started=started, compression=compression,
                                             center=center, bounds=bounds,
                                             collect=collect)
            return self._alone(key, vec, weight, started, "the round's deadline passed")
        finally:
            rnd.state = "closed"
            rnd.decided.set()
            rnd.assembled.set()
            del self._rounds[key]
            held.release()

    def _alone(self, key: str, vec: np.ndarray, weight: float, started: float,
               reason: str) -> AveragingResult:
        return AveragingResult(key, vec, (self.me,), weight, True, (), 1,
                               trio.current_time() - started, reason)

    async def _serve(self, stream: Any, peer: str) -> None:
        try:
            data = await read_frame(stream, max_size=wire.MAX_CONTROL,
                                    timeout=rounds.HEADER_WAIT, peer=peer)
            msg = wire.decode(data, peer)
            if isinstance(msg, wire.Join):
                await self._serve_join(stream, peer, msg)
            elif isinstance(msg, wire.PartHeader):
                await self._serve_part(stream, peer, msg)
            elif isinstance(msg, wire.PartAsk):
                await self._serve_part_ask(stream, peer, msg)
            else:
                self._unexpected(peer, msg)
        except PeerMisbehaviour as e:
            self._offence(peer, e.reason, proven=e.proven)  # for the reputation layer too
            raise

    @staticmethod
    def _unexpected(peer: str, msg: wire.Control) -> None:
        raise PeerMisbehaviour(peer, f"opened an averaging stream with {type(msg).__name__}",
                               proven=True)

