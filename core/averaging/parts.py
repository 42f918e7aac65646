"""One part's exchange in a butterfly all-reduce, on both sides: a member sends a reducer its
part, a few at a time over its shared upload, and checks the slice result it gets back; a
reducer waits for the group to be running here, reads the part, reduces the slice with the
round's rule when every part arrived or its part deadline passed, and answers with the result
and the digest of every part in it. A mixin of `AveragingService` (under `AllReduce`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.averaging import wire
from core.averaging.moshpit import UploadRate, reduce_slice
from core.averaging.rounds import (
    PART_SHARE_OF_TIME,
    PART_WAIT,
    SEND_PARALLEL,
    Bounds,
    _Reduction,
    _robust_reduce,
    _Round,
    out_of_range,
)
from core.averaging.spotcheck import Receipt, SpotCheck, _Sent
from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)


class PartExchange(SpotCheck):
    ctx: ServiceContext
    upload: UploadRate
    _groups: dict[str, _Reduction]
    _ready: dict[str, trio.Event]
    _rounds: dict[str, _Round]

    async def _reply(self, stream: Any, msg: wire.Control) -> None:
        await write_frame(stream, wire.encode(msg))

    def _maybe_reduce(self, red: _Reduction) -> None:
        if len(red.parts) >= red.expected:
            self._finish(red)

    def _finish(self, red: _Reduction) -> None:
        """Reduce the parts that arrived (at once when all did, else at the part deadline)."""
        if red.done.is_set() and red.result is not None:
            return
        who = [p for p in red.members if p in red.parts]
        if who and red.rule != "mean":
            with self.ctx.compute.counted():  # within the CPU share (core.compute)
                red.result, red.rule_used, red.rule_note = _robust_reduce(
                    [red.parts[p][0] for p in who], red.rule, red.f, red.center)
            if red.rule_note:
                log.info("averaging: slice %d: %s", red.my_slice, red.rule_note)
        elif who:
            with self.ctx.compute.counted():
                red.result = reduce_slice([red.parts[p][0] for p in who],
                                          [red.parts[p][1] for p in who]).astype(np.float32)
        if who:
            red.result_members = tuple(who)
            red.result_weight = float(sum(red.parts[p][1] for p in who))
        red.done.set()

    async def _send_part(self, group_id: str, reducer: str, index: int, part: np.ndarray, *,
                         weight: float, dtype: str, deadline: float, sending: trio.Semaphore,
                         bounds: Bounds | None = None, answer_by: float | None = None,
                         sent: _Sent | None = None) -> Receipt | None:
        host = self.ctx.transport
        with self.ctx.compute.counted():
            payload, scale, zero = wire.pack(part, dtype)
        header = wire.PartHeader(wire.VERSION, group_id, index, int(part.size), dtype, weight,
                                 scale, zero)
        if sent is not None:
            sent.parts[index] = (header, payload)
        try:
            with trio.fail_at(deadline):
                stream = None
                try:
                    # the upload is shared: a few parts at a time, each stream opened only
                    # when its part can go (one opened ahead sat silent behind the others,
                    # and the reducer drops a stream whose header is late: HEADER_WAIT)
                    async with sending:
                        stream = await host.open_stream(reducer, wire.PROTOCOL, timeout=10)
                        log.debug("averaging: %s opened a stream to %s", self.me[-6:],
                                  reducer[-6:])
                        await write_frame(stream, wire.encode(header))
                        streams, began = SEND_PARALLEL - sending.value, trio.current_time()
                        await write_frame(stream, payload)
                        self.upload.add(len(payload), trio.current_time() - began, streams)
                    log.debug("averaging: part %d (%d B) sent to %s", index, len(payload),
                              reducer[-6:])
                    left = min(deadline, answer_by or deadline) - trio.current_time()
                    data = await read_frame(stream, max_size=wire.MAX_CONTROL,
                                            timeout=max(0.1, left), peer=reducer)
                    res = wire.decode(data, reducer)
                    if not isinstance(res, wire.SliceResult):
                        raise PeerMisbehaviour(reducer, f"answered a part with "
                                               f"{type(res).__name__}", proven=True)
                    if not res.ok:
                        log.info("averaging: reducer %s refused our part: %s", reducer,
                                 res.reason)
                        return None
                    if res.length != part.size or self.me not in res.members:
                        raise PeerMisbehaviour(reducer, "a slice result that does not match",
                                               proven=True)
                    if res.digests and res.digests[res.members.index(self.me)] != \
                            wire.part_digest(dtype, scale, zero, weight, payload):
                        raise PeerMisbehaviour(reducer, "a slice result listing a part we "
                                               "did not send", proven=True)
                    body = await read_frame(stream, max_size=res.length * wire.BYTES_PER[
                        res.dtype], timeout=deadline - trio.current_time(), peer=reducer)
                    log.debug("averaging: %s got slice %d from %s", self.me[-6:], index,
                              reducer[-6:])
                finally:
                    if stream is not None:
                        with trio.CancelScope(shield=True):  # also when the answer is no
                            await close_stream(stream)       # longer awaited (bounded, 1 s)
        except PeerMisbehaviour as e:
            self._offence(reducer, e.reason, proven=e.proven)
            return None
        except (trio.TooSlowError, NetworkError, StreamClosed, trio.BrokenResourceError) as e:
            log.info("averaging: reducer %s failed (%s: %s)", reducer, type(e).__name__, e)
            return None
        except Exception as e:  # a reset stream from a host that went away
            log.info("averaging: reducer %s failed (%s: %s)", reducer, type(e).__name__, e)
            return None
        try:
            values = wire.unpack(body, res.dtype, res.length, scale=res.scale, zero=res.zero,
                                 peer=reducer)
        except PeerMisbehaviour as e:
            self._offence(reducer, e.reason, proven=e.proven)
            return None
        why = out_of_range(values, bounds)
        if why:  # a result no average of parts in range can give: the reducer lied
            self._offence(reducer, f"a slice result out of range: {why}", proven=True)
            return None
        return Receipt(index, res, values)

    async def _await_group(self, group_id: str, peer: str) -> trio.Event:
        """Wait for a part's group to run here: PART_WAIT; or, for a part from a member of a
        round running here that may still start a group of it (its recovery starts at each
        member when that member's checks of the first butterfly end, seconds apart: parts
        refused after PART_WAIT failed the whole recovery), until it starts one, or up to
        PART_SHARE_OF_TIME of the time left (the sender waits longer for our answer: it
        hears "no such group" rather than silence). Once this village started all its groups
        of the round, a part for another of them waits PART_WAIT at most, as before."""
        event = self._ready.setdefault(group_id, trio.Event())
        now = trio.current_time()
        short = now + PART_WAIT
        pending = [r for r in self._rounds.values() if r.message is not None
                   and not r.groups_started and any(m.peer == peer for m in r.message.members)]
        until = max([short, *(now + (r.deadline - now) * PART_SHARE_OF_TIME for r in pending)])
        with trio.move_on_at(until):
            while not event.is_set():
                if trio.current_time() >= short and all(r.groups_started for r in pending):
                    break
                with trio.move_on_after(0.2):
                    await event.wait()
        return event

    async def _serve_part(self, stream: Any, peer: str, head: wire.PartHeader) -> None:
        event = await self._await_group(head.group_id, peer)
        red = self._groups.get(head.group_id)
        if red is None:  # late (the round ended here) or a stranger: not worth more
            if not event.is_set():
                self._ready.pop(head.group_id, None)
            await self._reply(stream, wire.SliceResult(
                wire.VERSION, False, [], 0.0, 0, "f32", reason="no such group here"))
            log.info("averaging: %s sent a part for a group not running here", peer)
            return

        def refuse(reason: str) -> wire.SliceResult:
            return wire.SliceResult(wire.VERSION, False, [], 0.0, 0, "f32", reason=reason)

        if peer not in red.members:
            await self._reply(stream, refuse("you were not matched into this group"))
            raise PeerMisbehaviour(peer, "joined an averaging group it was not matched into",
                                   proven=True)
        if head.slice != red.my_slice or head.length != red.stop - red.start:
            red.rejected.add(peer)
            await self._reply(stream, refuse("wrong slice"))
            raise PeerMisbehaviour(peer, f"sent slice {head.slice} of {head.length} values to "
                                   f"the reducer of slice {red.my_slice} "
                                   f"({red.stop - red.start} values)", proven=True)
        if peer in red.receiving:
            if not red.done.is_set():  # neither copy counts: the member is dropped
                red.parts.pop(peer, None)
            red.rejected.add(peer)
            await self._reply(stream, refuse("duplicate part"))
            raise PeerMisbehaviour(peer, "sent its part twice", proven=True)
        red.receiving.add(peer)
        if red.done.is_set():
            await self._reply(stream, refuse("too late: the slice is reduced"))
            log.info("averaging: %s's part came after the reduction", peer)
            return
        timeout = max(0.1, red.part_deadline - trio.current_time())
        log.debug("averaging: %s reads %s's part", self.me[-6:], peer[-6:])
        try:
            body = await read_frame(stream, max_size=head.length * wire.BYTES_PER[head.dtype],
                                    timeout=timeout, peer=peer)
            values = wire.unpack(body, head.dtype, head.length, scale=head.scale,
                                 zero=head.zero, peer=peer)
            _in_range(values, red, peer)
            red.digests[peer] = wire.part_digest(head.dtype, head.scale, head.zero,
                                                 head.weight, body)
        except PeerMisbehaviour:
            red.rejected.add(peer)  # late, silent or malformed: dropped from this round
            raise
        if peer in red.rejected or red.done.is_set():
            await self._reply(stream, refuse("dropped from this round" if peer in red.rejected
                                             else "too late: the slice is reduced"))
            return
        red.parts[peer] = (values, head.weight)
        log.debug("averaging: %s has %d/%d parts", self.me[-6:], len(red.parts), red.expected)
        self._maybe_reduce(red)
        with trio.move_on_at(red.part_deadline):
            await red.done.wait()
        if not red.done.is_set():
            self._finish(red)
        if red.result is None:
            await self._reply(stream, refuse("nothing to reduce"))
            return
        payload, scale, zero = wire.pack(red.result, head.dtype)
        log.debug("averaging: %s answers %s", self.me[-6:], peer[-6:])
        who = list(red.result_members)
        await self._reply(stream, wire.SliceResult(
            wire.VERSION, True, who, red.result_weight, int(red.result.size), head.dtype,
            scale, zero, digests=[red.digests[p] for p in who],
            weights=[red.parts[p][1] for p in who],
            center=wire.center_digest(red.center if red.rule != "mean" else None)))
        await write_frame(stream, payload)
        log.debug("averaging: %s answered %s", self.me[-6:], peer[-6:])


def _in_range(values: np.ndarray, red: _Reduction, peer: str) -> None:
    why = out_of_range(values, red.bounds)
    if why:
        raise PeerMisbehaviour(peer, f"a part out of range: {why}", proven=True)
