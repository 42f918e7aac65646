"""The butterfly all-reduce inside an assembled group: each member sends each reducer its
part and gets the reduced slice back; a reducer reduces with the round's rule when every part
arrived or its part deadline passed; slices that did not average exactly the surviving members
are averaged again among them. A mixin of `AveragingService`; one part's exchange, on either
side, is `core.averaging.parts`."""

from __future__ import annotations

import logging

import numpy as np
import trio

from core.averaging import wire
from core.averaging.moshpit import partition
from core.averaging.parts import PartExchange
from core.averaging.rounds import (
    PART_SHARE_OF_TIME,
    RESULT_MARGIN,
    SEND_PARALLEL,
    AveragingResult,
    Bounds,
    _Reduction,
    group_id_for,
    lone_excluders,
    slice_bounds,
)
from core.averaging.spotcheck import CHECK_SHARE, SENT_KEEP, Receipt
from core.errors import PeerMisbehaviour

log = logging.getLogger(__name__)


ANSWER_SHARE = 0.4  # of the time between the part deadline and the round's, a reducer's answer
                    # may take


class AllReduce(PartExchange):
    _offenders: dict[str, float]

    def _is_shunned(self, peer: str) -> bool:
        raise NotImplementedError

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
        rnd = self._rounds.get(msg.key)
        if rnd is not None:  # no group of the round starts here after the recovery's
            rnd.groups_started = True
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

            waiting: dict[str, trio.CancelScope] = {}  # reducers whose answer we await

            async def exchange(j: int) -> None:
                s = slices[j]
                res = None
                with trio.CancelScope() as waiting[ids[j]]:
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
                    # a reducer whose part our own reduction lacks is out of the round's
                    # member set (ours is in the intersection): its result, which lists
                    # itself, cannot count, so its answer is not awaited (a gone reducer's
                    # stream may stay open and silent until answer_by, and this member would
                    # start the recovery that long after the others)
                    for r, scope in waiting.items():
                        if r not in red.result_members:
                            scope.cancel()
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

