"""The butterfly all-reduce inside an assembled group: each member sends each reducer its
part and gets the reduced slice back; a reducer reduces with the round's rule when every part
arrived or its part deadline passed; slices that did not average exactly the surviving members
are averaged again among them. A mixin of `AveragingService`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.averaging import wire
from core.averaging.moshpit import UploadRate, partition, reduce_slice
from core.averaging.rounds import (
    PART_SHARE_OF_TIME,
    PART_WAIT,
    RESULT_MARGIN,
    SEND_PARALLEL,
    AveragingResult,
    Bounds,
    _Reduction,
    _robust_reduce,
    _Round,
    group_id_for,
    lone_excluders,
    out_of_range,
    slice_bounds,
)
from core.averaging.spotcheck import CHECK_SHARE, SENT_KEEP, Receipt, SpotCheck, _Sent
from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)


ANSWER_SHARE = 0.4  # of the time between the part deadline and the round's, a reducer's answer
                    # may take


class AllReduce(SpotCheck):
    ctx: ServiceContext
    upload: UploadRate
    _groups: dict[str, _Reduction]
    _offenders: dict[str, float]
    _ready: dict[str, trio.Event]
    _rounds: dict[str, _Round]

    def _is_shunned(self, peer: str) -> bool:
        raise NotImplementedError

    async def _reply(self, stream: Any, msg: wire.Control) -> None:
        await write_frame(stream, wire.encode(msg))

    async def _allreduce(self, msg: wire.Assembled, vec: np.ndarray, weight: float, *,
                         deadline: float, started: float, compression: str,
                         center: np.ndarray | None = None,
                         bounds: Bounds | None = None,
                         collect: bool = False) -> AveragingResult:
        ids = [m.peer for m in msg.members]
        notes: list[tuple[str, str]] = []
        receipts: dict[str, Receipt] = {}
        held: dict[str, tuple[np.ndarray, float]] = {}
        out, got, weights, failed = await self._butterfly(msg, vec, weight, deadline=deadline,
                                                          compression=compression,
                                                          center=center, notes=notes,
                                                          bounds=bounds, receipts=receipts,
                                                          held=held)
        now = trio.current_time()
        fetched: dict[tuple[str, int], tuple[wire.PartHeader, bytes]] = {}
        if receipts and now < deadline - 2 * RESULT_MARGIN:  # a reducer caught offends now
            await self._spot_check(msg, receipts, center, now + (
                deadline - 2 * RESULT_MARGIN - now) * CHECK_SHARE, bounded=bounds is not None,
                fetched=fetched)
        contributions = _whole_vectors(msg, self.me, held, fetched) if collect else {}
        offenders = [r for r in got if r != self.me
                     and self._offenders.get(r, -1e18) >= started]  # offended us this round
        for r in [*offenders, *lone_excluders(got, ids, failed, skip=offenders)]:
            got.pop(r)  # its result (and who it says is in it) is not believed: alone, it
            weights.pop(r, None)  # would shrink our member set, and members that did not see
            failed.append(r)  # it so would average the rest in another group
        members = set.intersection(*got.values()) if got else {self.me}
        members -= {p for p in offenders if self._is_shunned(p)}  # proven liars this round:
        # nothing of theirs is kept (their slices and ours are averaged again without them)
        # slices that did not average exactly `members` (a reducer that failed, or one that
        # took a part another reducer refused) are averaged again among `members`
        lost = sorted(set(failed) | {r for r, m in got.items() if m != members}, key=ids.index)
        recovered = not lost
        if lost and len(members) >= 2 and trio.current_time() < deadline - 2 * RESULT_MARGIN:
            recovered = await self._recover(msg, vec, out, weight, lost=lost, members=members,
                                            deadline=deadline, compression=compression,
                                            center=center, notes=notes, bounds=bounds)
            if recovered:
                for r in lost:
                    got[r] = set(members)
        complete = recovered and all(m == members for m in got.values())
        dropped = tuple(p for p in ids if p not in members)
        reason = ""
        if not recovered:
            reason = (f"{len(lost)} slice(s) could not be averaged among the same members; "
                      "they keep this village's own values")
        if dropped:
            log.info("averaging %s: %d of %d members averaged; dropped %s", msg.key,
                     len(members), len(ids), ", ".join(p[-6:] for p in dropped))
        total = min(weights.values()) if weights else weight
        used, note = notes[-1] if notes else (msg.rule, "")
        return AveragingResult(msg.key, out, tuple(p for p in ids if p in members), total,
                               complete, dropped, len(ids), trio.current_time() - started,
                               reason, used, note, contributions)

    async def _recover(self, msg: wire.Assembled, vec: np.ndarray, out: np.ndarray,
                       weight: float, *,
                       lost: list[str], members: set[str], deadline: float,
                       compression: str, center: np.ndarray | None,
                       notes: list[tuple[str, str]], bounds: Bounds | None = None) -> bool:
        """Average the lost slices again, among `members`, in one more butterfly. Members
        that saw the same round meet in the same recovery group (its id names what was lost
        and who is in it); one that saw it differently does not match and keeps its values."""
        ids = [m.peer for m in msg.members]
        slices = partition(msg.length, [m.share for m in msg.members])
        ranges = [slices[ids.index(r)] for r in lost]
        group = [m for m in msg.members if m.peer in members]
        if self.me not in members or sum(m.share for m in group) <= 0:
            return False
        key = msg.key + "/recover"
        sub = wire.Assembled(wire.VERSION, key, group_id_for(
            key + "|" + ",".join(lost), [m.peer for m in group]), group,
            sum(s.stop - s.start for s in ranges), msg.rule, msg.f)
        part = np.concatenate([vec[s.start:s.stop] for s in ranges])  # our own values
        sub_center = None if center is None else np.concatenate(
            [center[s.start:s.stop] for s in ranges])
        log.info("averaging %s: averaging %d slice(s) again among %d members", msg.key,
                 len(ranges), len(group))
        res, sub_got, _, sub_failed = await self._butterfly(
            sub, part, weight, deadline=deadline, compression=compression, center=sub_center,
            notes=notes, bounds=slice_bounds(bounds, ranges))
        if sub_failed or any(m != members for m in sub_got.values()):
            return False
        at = 0
        for s in ranges:
            out[s.start:s.stop] = res[at:at + s.stop - s.start]
            at += s.stop - s.start
        return True

    async def _butterfly(self, msg: wire.Assembled, vec: np.ndarray, weight: float, *,
                         deadline: float, compression: str, center: np.ndarray | None = None,
                         notes: list[tuple[str, str]] | None = None,
                         bounds: Bounds | None = None,
                         receipts: dict[str, Receipt] | None = None,
                         held: dict[str, tuple[np.ndarray, float]] | None = None,
                         ) -> tuple[np.ndarray, dict[str, set[str]], dict[str, float], list[str]]:
        """One butterfly all-reduce: (vector, member set and weight per reducer, the reducers
        that failed). `notes` gets the rule this village reduced its slice with, and why;
        `receipts` what each other reducer answered (for spot checks); `held` the parts of
        our own slice each member sent us."""
        ids = [m.peer for m in msg.members]
        slices = partition(msg.length, [m.share for m in msg.members])
        mine = ids.index(self.me)
        now = trio.current_time()
        red = _Reduction(msg.group_id, tuple(ids), mine, slices[mine].start, slices[mine].stop,
                         now + (deadline - now) * PART_SHARE_OF_TIME, rule=msg.rule, f=msg.f)
        if center is not None:
            red.center = center[red.start:red.stop]
        red.bounds = slice_bounds(bounds, [slice(red.start, red.stop)])
        self._groups[msg.group_id] = red
        self._ready.setdefault(msg.group_id, trio.Event()).set()
        sent = self._keep_sent(msg.group_id, ids, deadline + SENT_KEEP)
        dtype = wire.choose_dtype(msg.length, compression)
        out = vec.copy()
        got: dict[str, set[str]] = {}
        weights: dict[str, float] = {}
        failed: list[str] = []
        try:
            if red.stop > red.start:
                own, _, _ = wire.pack(vec[red.start:red.stop], "f32")  # exact
                sent.parts[mine] = (wire.PartHeader(wire.VERSION, msg.group_id, mine,
                                                    red.stop - red.start, "f32", weight), own)
                red.digests[self.me] = wire.part_digest("f32", 1.0, 0.0, weight, own)
                red.parts[self.me] = (vec[red.start:red.stop], weight)
                self._maybe_reduce(red)

            sending = trio.Semaphore(SEND_PARALLEL)
            # a reducer answers once its part deadline (about ours) has passed: one that has
            # not answered well after it is not waited for until the round's deadline (that
            # left no time to average its slice again among the others)
            answer_by = red.part_deadline + (deadline - red.part_deadline) * ANSWER_SHARE

            async def exchange(j: int) -> None:
                s = slices[j]
                res = await self._send_part(msg.group_id, ids[j], j, vec[s.start:s.stop],
                                            weight=weight, dtype=dtype, deadline=deadline,
                                            sending=sending,
                                            bounds=slice_bounds(bounds, [s]),
                                            answer_by=answer_by, sent=sent)
                if res is None:
                    failed.append(ids[j])
                else:
                    out[s.start:s.stop] = res.values
                    got[ids[j]] = set(res.result.members)
                    weights[ids[j]] = res.result.weight
                    if receipts is not None:
                        receipts[ids[j]] = res

            async with trio.open_nursery() as nursery:
                for j, s in enumerate(slices):
                    if j != mine and s.stop > s.start:
                        nursery.start_soon(exchange, j)
                if red.stop > red.start:
                    await self._await_parts(red, failed)
            if red.stop > red.start:
                out[red.start:red.stop] = red.result  # type: ignore[assignment]
                got[self.me] = set(red.result_members)
                if held is not None:
                    held.update(red.parts)
                weights[self.me] = red.result_weight
                if notes is not None:
                    notes.append((red.rule_used, red.rule_note))
        finally:
            self._groups.pop(msg.group_id, None)
            self._ready.pop(msg.group_id, None)
        return out, got, weights, failed

    async def _await_parts(self, red: _Reduction, failed: list[str]) -> None:
        """Wait for every member's part; stop early when the only ones missing are members we
        could not reach ourselves (gone: waiting longer would only hold the others up)."""
        with trio.move_on_at(red.part_deadline):
            while not red.done.is_set():
                missing = [p for p in red.members if p not in red.parts]
                if missing and all(p in failed or p in red.rejected for p in missing):
                    log.info("averaging: reducing without %d member(s) that are gone",
                             len(missing))
                    break
                with trio.move_on_after(0.2):
                    await red.done.wait()
        self._finish(red)

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
                        await close_stream(stream)
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

    def _part_wait_until(self, peer: str) -> float:
        """Until when a part for a group not (yet) running here waits for it: PART_WAIT, or,
        from a member of a round running here, until that round's deadline. A recovery group
        starts at each member when its own checks of the first butterfly end, and those take
        different times (a member with more to check, or a busier one, comes seconds later):
        parts refused after PART_WAIT failed the whole recovery."""
        until = trio.current_time() + PART_WAIT
        for rnd in self._rounds.values():
            if rnd.message is not None and any(m.peer == peer for m in rnd.message.members):
                until = max(until, rnd.deadline - RESULT_MARGIN)
        return until

    async def _serve_part(self, stream: Any, peer: str, head: wire.PartHeader) -> None:
        event = self._ready.setdefault(head.group_id, trio.Event())
        with trio.move_on_at(self._part_wait_until(peer)):
            await event.wait()
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


def _whole_vectors(msg: wire.Assembled, me: str, held: dict[str, tuple[np.ndarray, float]],
                   fetched: dict[tuple[str, int], tuple[wire.PartHeader, bytes]]
                   ) -> dict[str, tuple[np.ndarray, float]]:
    """Each other member's whole vector and weight, from the part of our slice it sent us
    (`held`) and its parts of the other slices the reducer checks fetched (exact float32
    only); a member with a slice missing, or with two weights, is left out."""
    ids = [m.peer for m in msg.members]
    slices = partition(msg.length, [m.share for m in msg.members])
    mine = ids.index(me)
    out: dict[str, tuple[np.ndarray, float]] = {}
    for m in ids:
        if m == me:
            continue
        vec = np.empty(msg.length, dtype=np.float32)
        weights: set[float] = set()
        for j, s in enumerate(slices):
            if s.stop <= s.start:
                continue
            if j == mine:
                if m not in held:
                    break
                part, w = held[m]
            else:
                if (m, j) not in fetched or fetched[(m, j)][0].dtype != "f32":
                    break
                head, payload = fetched[(m, j)]
                try:
                    part = wire.unpack(payload, "f32", s.stop - s.start, scale=head.scale,
                                       zero=head.zero, peer=m)
                except PeerMisbehaviour:
                    break
                w = head.weight
            vec[s.start:s.stop] = part
            weights.add(float(w))
        else:
            if len(weights) == 1:
                out[m] = (vec, weights.pop())
    return out

