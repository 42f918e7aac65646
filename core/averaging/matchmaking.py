"""Matchmaking for an averaging round: announce under the round's directory key, read who
else did, rank them by `leader_rank` (a hash of the round key and the id: no id leads every
round), follow the first (or lead), and answer Joins. A leader that cannot be reached costs
one dial: the member moves to the next in rank (at most LEADER_TRIES that do not answer, and
MAX_ASKS candidates in all, since one that declines is quick), and leads itself if
that is its own turn. A Join that reaches a member still dialling its leader waits for that
dial to settle, so every member that skipped the same silent leader meets at the same next
one. A peer that offended us in averaging (bytes no honest member sends, or a leader that took
our Join and said nothing until SILENT_AFTER s past the latest answer an honest one gives) is
shunned for SHUN_MEMORY s: neither it nor a redirect to it is followed, and a group we lead
does not take it. One such round is what it costs; the next ones form without it. A round
whose group is full (max_group villages listed, or joined) is decided and closed then, not at
the deadline. A mixin of `AveragingService`."""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

import trio

from core.averaging import wire
from core.averaging.moshpit import UploadRate, shares_of
from core.averaging.rounds import (
    ASSEMBLE_SLACK,
    DECIDE_MARGIN,
    DIAL_WAIT,
    DIRECTORY_POLL,
    LATE_JOIN,
    LEADER_TRIES,
    MAX_ASKS,
    MAX_SHUNNED,
    POLL_REPLICAS,
    RETRY_PAUSE,
    SHUN_MEMORY,
    SILENT_AFTER,
    _Round,
    group_id_for,
    leader_rank,
)
from core.dht.queries import DIR_REPLICAS
from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)


class Matchmaking:
    ctx: ServiceContext
    directory: Any
    upload: UploadRate
    _rounds: dict[str, _Round]
    _shunned: dict[str, float]

    @property
    def me(self) -> str:
        return self.ctx.peer_id

    def _is_client(self) -> bool:
        raise NotImplementedError

    def _offence(self, peer: str, reason: str, *, proven: bool = False) -> None:
        raise NotImplementedError

    async def _reply(self, stream: Any, msg: wire.Control) -> None:
        await write_frame(stream, wire.encode(msg))

    async def _matchmake(self, rnd: _Round, weight: float) -> tuple[wire.Assembled | None, str]:
        dht = self.directory
        dir_key = b"/grove/dir/avg/" + rnd.key.encode()[:100]
        t0 = trio.current_time()
        with trio.move_on_at(rnd.close_at - DECIDE_MARGIN):
            try:
                await dht.announce(dir_key, quick=True)
                log.debug("averaging %s: announced in %.3f s", rnd.key, trio.current_time() - t0)
            except Exception as e:  # no DHT peers yet: we may still be joined
                log.debug("averaging: announce %s failed: %s", rnd.key, e)
        # read the directory until the decision (repeatedly: a slow or partial read is made
        # up by the next), then decide with everything seen
        listed: dict[str, Any] = {}
        with trio.move_on_at(rnd.close_at - DECIDE_MARGIN):
            for poll in itertools.count():  # each read asks the next few holders
                first = poll * POLL_REPLICAS % DIR_REPLICAS
                try:
                    await dht.find_providers(dir_key, quick=True, into=listed, replicas=slice(
                        first, first + POLL_REPLICAS))
                except Exception as e:
                    log.debug("averaging: directory read for %s failed: %s", rnd.key, e)
                if len({self.me, *listed, *rnd.joiners}) >= rnd.max_group:
                    break  # a full group is listed: decide now, not at the deadline
                await trio.sleep(DIRECTORY_POLL)
        for pid, found in listed.items():  # the leader and the members-to-be: where they are
            if found.addrs and pid != self.me:  # (behind a NAT: their circuits first)
                self.ctx.transport.remember(pid, found.addrs)
        seen = {self.me, *listed}
        log.debug("averaging %s: directory lists %d", rnd.key, len(seen))
        seen |= set(rnd.joiners)  # whoever already asked us is out there too
        ranked = sorted((p for p in seen if not self._is_shunned(p)),
                        key=lambda p: leader_rank(rnd.key, p))
        tried: set[str] = set()
        retried: set[str] = set()
        reason = "the leader did not answer"
        leader = ranked[0]
        unanswered = 0  # candidates that cost a timeout or a failed dial (a decline is quick)
        for _ in range(MAX_ASKS):
            if not leader or unanswered >= LEADER_TRIES:
                break
            if leader == self.me:
                return await self._lead(rnd, seen - tried, weight)
            rnd.state, rnd.leader = "following", leader
            rnd.decided.set()
            tried.add(leader)
            got = await self._join(rnd, leader, weight)
            if isinstance(got, wire.Assembled):
                rnd.message = got
                return got, ""
            if got is None:
                unanswered += 1
            elif isinstance(got, wire.Reject):
                reason = f"the leader declined: {got.reason}"
                if got.leader and got.leader not in tried and got.leader != self.me \
                        and not self._is_shunned(got.leader):
                    leader = got.leader  # it follows another: so do we (unless we shun it)
                    continue
                if got.leader in tried and leader not in retried:
                    # it still waits on one that turned us away: it will be turned away too
                    # and move on as we did - most likely to lead itself. Ask it once more.
                    retried.add(leader)
                    await trio.sleep(RETRY_PAUSE)
                    continue
            leader = next((p for p in ranked if p not in tried), "")
        return None, f"no group formed this round ({reason})"

    async def _lead(self, rnd: _Round, listed: set[str], weight: float
                    ) -> tuple[wire.Assembled | None, str]:
        rnd.state = "leading"
        rnd.listed = listed - {self.me}
        rnd.decided.set()
        rnd.dialled.set()
        with trio.move_on_at(rnd.close_at):  # or as soon as the group is full
            while len(rnd.joiners) < rnd.max_group - 1:
                await rnd.joined.wait()
                rnd.joined = trio.Event()
        await self._await_late_joins(rnd)
        return self._assemble(rnd, weight)

    async def _await_late_joins(self, rnd: _Round) -> None:
        """Villages this leader saw in the directory may join a little after close_at when
        their hosts are busy: wait for them (never past LATE_JOIN) unless the group is full."""
        with trio.move_on_at(rnd.close_at + LATE_JOIN):
            while not rnd.listed <= set(rnd.joiners) and len(rnd.joiners) < rnd.max_group - 1:
                await rnd.joined.wait()
                rnd.joined = trio.Event()
        late = rnd.listed - set(rnd.joiners)
        if late:
            log.debug("averaging %s: %d listed villages never joined", rnd.key, len(late))

    def _assemble(self, rnd: _Round, weight: float) -> tuple[wire.Assembled | None, str]:
        joiners = sorted(rnd.joiners.items())[: rnd.max_group - 1]
        rnd.joiners = dict(joiners)
        if not joiners:
            rnd.assembled.set()
            return None, "no other village joined this round"
        entries = [(self.me, self.upload.mbps, self._is_client())]
        entries += [(p, j.bandwidth, j.client) for p, j in joiners]
        entries.sort()
        shares = shares_of([bw for _, bw, _ in entries], [client for _, _, client in entries])
        if sum(shares) == 0:
            rnd.assembled.set()
            return None, "every member is relay-only: nobody can reduce without a relay twice"
        members = [wire.Member(p, s) for (p, _, _), s in zip(entries, shares, strict=True)]
        ids = [m.peer for m in members]
        rnd.message = wire.Assembled(wire.VERSION, rnd.key, group_id_for(rnd.key, ids),
                                     members, rnd.length, rnd.rule, rnd.f)
        rnd.assembled.set()
        return rnd.message, ""

    async def _join(self, rnd: _Round, leader: str, weight: float
                    ) -> wire.Assembled | wire.Reject | None:
        host = self.ctx.transport
        join = wire.Join(wire.VERSION, rnd.key, weight, self.upload.mbps, self._is_client(),
                         rnd.length, rnd.rule, rnd.f)
        answer_by = rnd.close_at + LATE_JOIN + ASSEMBLE_SLACK
        silent_at = rnd.close_at + LATE_JOIN + SILENT_AFTER
        waiting = False  # the leader took our Join and owes us its answer
        try:
            with trio.fail_at(answer_by):
                rnd.dialling = True
                try:
                    stream = await host.open_stream(leader, wire.PROTOCOL, timeout=5)
                finally:
                    rnd.dialling = False
                    rnd.dialled.set()
                    rnd.dialled = trio.Event()
                try:
                    await write_frame(stream, wire.encode(join))
                    waiting = True
                    data = await read_frame(stream, max_size=wire.MAX_CONTROL,
                                            timeout=answer_by - trio.current_time() + 0.1,
                                            peer=leader)
                    waiting = False
                finally:
                    await close_stream(stream)
        except (trio.TooSlowError, NetworkError, StreamClosed) as e:
            log.info("averaging %s: leader %s did not answer (%s)", rnd.key, leader,
                     type(e).__name__)
            waiting = waiting and isinstance(e, trio.TooSlowError)
            return None
        except PeerMisbehaviour as e:
            if not (waiting and e.reason.startswith("silent for")):  # else: said nothing
                waiting = False
                self._offence(leader, e.reason, proven=e.proven)
            return None
        except Exception as e:  # the stream was reset (the leader's host went away)
            waiting = False
            log.info("averaging %s: the stream to leader %s broke (%s)", rnd.key, leader,
                     type(e).__name__)
            return None
        finally:
            # silent well past the latest answer of an honest leader only: a short round's
            # own deadline can come first, and busy honest leaders answer soon after it
            # (shunning them split the views of the next rounds; telemetry stopped converging)
            if waiting and trio.current_time() >= silent_at:
                self._went_silent(leader)
        msg = wire.decode(data, leader) if data else None
        if isinstance(msg, wire.Reject):
            log.debug("averaging %s: %s declined: %s", rnd.key, leader, msg.reason)
            return msg
        if isinstance(msg, wire.Assembled):
            ids = [m.peer for m in msg.members]
            if (msg.key != rnd.key or msg.length != rnd.length or self.me not in ids
                    or msg.group_id != group_id_for(rnd.key, ids)
                    or (msg.rule, msg.f) != (rnd.rule, rnd.f)):
                self._offence(leader, "an Assembled message that does not match the Join",
                              proven=True)
                return None
            return msg
        self._offence(leader, f"answered a Join with {type(msg).__name__}", proven=True)
        return None

    def _went_silent(self, leader: str) -> None:
        self._shun(leader)
        self._offence(leader, "took a Join and did not answer it")

    def _shun(self, peer: str) -> None:
        now = self.ctx.clock.mono()
        self._shunned.pop(peer, None)
        for p in [p for p, until in self._shunned.items() if until <= now]:
            del self._shunned[p]
        self._shunned[peer] = now + SHUN_MEMORY
        if len(self._shunned) > MAX_SHUNNED:  # bounded: the soonest to be forgiven goes
            del self._shunned[min(self._shunned, key=self._shunned.__getitem__)]

    def _is_shunned(self, peer: str) -> bool:
        return self._shunned.get(peer, -1.0) > self.ctx.clock.mono()

    async def _serve_join(self, stream: Any, peer: str, join: wire.Join) -> None:
        rnd = self._rounds.get(join.key)
        if rnd is None or rnd.state == "closed":
            await self._reply(stream, wire.Reject(wire.VERSION, "not averaging this round"))
            return
        if join.length != rnd.length:
            await self._reply(stream, wire.Reject(wire.VERSION, f"length {join.length} is "
                                                  f"not this round's {rnd.length}"))
            return
        if self._is_shunned(peer):
            await self._reply(stream, wire.Reject(wire.VERSION, "you offended this village "
                                                  "in averaging recently"))
            return
        if (join.rule, join.f) != (rnd.rule, rnd.f):
            await self._reply(stream, wire.Reject(wire.VERSION, f"this round reduces with "
                                                  f"{rnd.rule} (f={rnd.f})"))
            return
        with trio.move_on_at(rnd.close_at):
            await rnd.decided.wait()
        with trio.move_on_after(DIAL_WAIT):  # our leader may be one that does not answer
            while rnd.state == "following" and rnd.dialling:
                await rnd.dialled.wait()
        if rnd.state == "following":
            await self._reply(stream, wire.Reject(wire.VERSION, "not leading", rnd.leader))
            return
        if rnd.state != "leading" or rnd.assembled.is_set():
            await self._reply(stream, wire.Reject(wire.VERSION, "too late for this round"))
            return
        rnd.joiners[peer] = join
        rnd.joined.set()
        with trio.move_on_at(rnd.close_at + LATE_JOIN + ASSEMBLE_SLACK):
            await rnd.assembled.wait()
        if rnd.message is not None and any(m.peer == peer for m in rnd.message.members):
            await self._reply(stream, rnd.message)
        else:
            await self._reply(stream, wire.Reject(wire.VERSION, "the group is full"))
