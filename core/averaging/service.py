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

import hashlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.averaging import wire
from core.averaging.moshpit import partition, reduce_slice
from core.dht.service import DIR_REPLICAS
from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream

if TYPE_CHECKING:
    from core.node import Node

log = logging.getLogger(__name__)

DECIDE_MARGIN = 0.8     # s before close_at: read the directory and pick the leader
LATE_JOIN = 2.0         # s after close_at a leader waits for villages it saw listed (busy hosts)
ASSEMBLE_SLACK = 5.0    # s after assembly a follower waits for the leader's answer (busy hosts)
PART_WAIT = 3.0         # s a part may wait for its reducer to learn the group
DIRECTORY_POLL = 0.5    # s between reads of the round's directory key while gathering
POLL_REPLICAS = 3       # of the DIR_REPLICAS holders, how many one read asks (rotating)
SEND_PARALLEL = 4       # parts in flight at once per member (py-libp2p stalls with more)
PART_SHARE_OF_TIME = 0.5  # of the time left, what a reducer may wait for parts
RESULT_MARGIN = 0.5     # s before the deadline a reducer must have reduced


@dataclass(frozen=True)
class AveragingResult:
    key: str
    vector: np.ndarray
    members: tuple[str, ...]   # whose contributions are in every slice
    weight: float              # their total weight
    complete: bool             # every slice averaged exactly `members`
    dropped: tuple[str, ...]   # group members left out this round
    group_size: int            # members the leader assembled (1: alone)
    seconds: float
    reason: str = ""           # why it is alone or partial, in words
    rule: str = "mean"         # how this village reduced its slice (a fallback says why:)
    rule_note: str = ""


@dataclass
class _Round:
    key: str
    length: int
    close_at: float            # trio clock
    max_group: int
    rule: str = "mean"
    f: int = 0
    state: str = "gathering"   # gathering -> leading | following | closed
    leader: str = ""
    joiners: dict[str, wire.Join] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)  # others seen in the directory
    joined: trio.Event = field(default_factory=trio.Event)  # a Join came (set, then renewed)
    decided: trio.Event = field(default_factory=trio.Event)
    assembled: trio.Event = field(default_factory=trio.Event)
    message: wire.Assembled | None = None


@dataclass
class _Reduction:
    group_id: str
    members: tuple[str, ...]
    my_slice: int
    start: int
    stop: int
    part_deadline: float       # trio clock
    parts: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    receiving: set[str] = field(default_factory=set)  # members whose part header came
    rejected: set[str] = field(default_factory=set)   # members dropped for an offence
    done: trio.Event = field(default_factory=trio.Event)
    result: np.ndarray | None = None
    result_members: tuple[str, ...] = ()
    result_weight: float = 0.0
    rule: str = "mean"
    f: int = 0
    center: np.ndarray | None = None  # this slice of the previous aggregate (centered clipping)
    rule_used: str = "mean"
    rule_note: str = ""

    @property
    def expected(self) -> int:
        return len(self.members)


def _robust_reduce(parts: list[np.ndarray], rule: str, f: int, center: np.ndarray | None,
                   ) -> tuple[np.ndarray, str, str]:
    """One slice reduced with a robust rule (torch, imported only when a round asks for one):
    (result, the rule used, why it differs from the one asked for)."""
    import torch

    from core.robust import aggregate

    stack = torch.from_numpy(np.stack(parts).astype(np.float32))
    params: dict[str, object] = {}
    if rule == "centered_clip" and center is not None:
        params["center"] = torch.from_numpy(np.ascontiguousarray(center, dtype=np.float32))
    out, used, why = aggregate(rule, stack, f, **params)
    return out.numpy().astype(np.float32), used, why


def group_id_for(key: str, members: list[str]) -> str:
    return hashlib.sha256((key + "|" + ",".join(members)).encode()).hexdigest()[:32]


class AveragingService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._rounds: dict[str, _Round] = {}
        self._groups: dict[str, _Reduction] = {}
        self._ready: dict[str, trio.Event] = {}
        self.bandwidth_mbps = 100.0  # what we announce; refined from measured transfers

    async def run(self) -> None:
        host = self.node.host
        assert host is not None
        host.set_handler(wire.PROTOCOL, self._serve)
        await trio.sleep_forever()

    # -- helpers ------------------------------------------------------------------------------
    @property
    def me(self) -> str:
        assert self.node.host is not None
        return self.node.host.peer_id

    def _is_client(self) -> bool:
        return self.node.reachability.current.state in ("relay-only", "unreachable")

    @staticmethod
    def _trio_at(wall: float) -> float:
        return trio.current_time() + (wall - time.time())

    def _offence(self, peer: str, reason: str) -> None:
        self.node.record_misbehaviour(peer, f"averaging: {reason}")

    # -- the public call ----------------------------------------------------------------------
    async def average(self, key: str, vector: np.ndarray, *, close_at: float,
                      deadline_at: float, weight: float = 1.0, max_group: int = 16,
                      compression: str = "none", rule: str = "mean", f: int = 0,
                      center: np.ndarray | None = None) -> AveragingResult:
        """Average `vector` (float32) with the villages matched under `key`. `rule` (see
        core.robust) is how each reducer reduces its slice, tolerating `f` Byzantine members;
        a group too small for it falls back to a rule it allows, and the result says so.
        Members must agree on both: put them in the key. `center`: the previous aggregate,
        for centered clipping."""
        started = trio.current_time()
        vec = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        if not 0 < vec.size <= wire.MAX_ELEMENTS:
            raise ValueError(f"cannot average {vec.size} values (1..{wire.MAX_ELEMENTS})")
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
        close = self._trio_at(close_at)
        deadline = self._trio_at(deadline_at)
        rnd = _Round(key, int(vec.size), close, min(max_group, wire.MAX_GROUP), rule, f)
        self._rounds[key] = rnd
        try:
            with trio.move_on_after(max(0.0, deadline - trio.current_time())):
                msg, reason = await self._matchmake(rnd, weight)
                if msg is None:
                    return self._alone(key, vec, weight, started, reason)
                return await self._allreduce(msg, vec, weight, deadline=deadline,
                                             started=started, compression=compression,
                                             center=center)
            return self._alone(key, vec, weight, started, "the round's deadline passed")
        finally:
            rnd.state = "closed"
            rnd.decided.set()
            rnd.assembled.set()
            del self._rounds[key]

    def _alone(self, key: str, vec: np.ndarray, weight: float, started: float,
               reason: str) -> AveragingResult:
        return AveragingResult(key, vec, (self.me,), weight, True, (), 1,
                               trio.current_time() - started, reason)

    # -- matchmaking --------------------------------------------------------------------------
    async def _matchmake(self, rnd: _Round, weight: float) -> tuple[wire.Assembled | None, str]:
        dht = self.node.dht
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
                await trio.sleep(DIRECTORY_POLL)
        seen = {self.me, *listed}
        log.debug("averaging %s: directory lists %d", rnd.key, len(seen))
        seen |= set(rnd.joiners)  # whoever already asked us is out there too
        leader = min(seen)
        if leader == self.me:
            rnd.state = "leading"
            rnd.listed = seen - {self.me}
            rnd.decided.set()
            await trio.sleep_until(rnd.close_at)
            await self._await_late_joins(rnd)
            return self._assemble(rnd, weight)
        rnd.state, rnd.leader = "following", leader
        rnd.decided.set()
        tried = set()
        reason = "the leader did not answer"
        while leader and leader not in tried and leader != self.me:
            tried.add(leader)
            got = await self._join(rnd, leader, weight)
            if isinstance(got, wire.Assembled):
                rnd.message = got
                return got, ""
            if got is None:
                break
            leader, reason = got.leader, f"the leader declined: {got.reason}"
        return None, f"no group formed this round ({reason})"

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
        entries = [(self.me, self.bandwidth_mbps, self._is_client())]
        entries += [(p, j.bandwidth, j.client) for p, j in joiners]
        entries.sort()
        shares = [0.0 if client else max(bw, 1e-3) for _, bw, client in entries]
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
        host = self.node.host
        assert host is not None
        join = wire.Join(wire.VERSION, rnd.key, weight, self.bandwidth_mbps, self._is_client(),
                         rnd.length, rnd.rule, rnd.f)
        answer_by = rnd.close_at + LATE_JOIN + ASSEMBLE_SLACK
        try:
            with trio.fail_at(answer_by):
                stream = await host.open_stream(leader, wire.PROTOCOL, timeout=5)
                try:
                    await write_frame(stream, wire.encode(join))
                    data = await read_frame(stream, max_size=wire.MAX_CONTROL,
                                            timeout=answer_by - trio.current_time() + 0.1,
                                            peer=leader)
                finally:
                    await close_stream(stream)
        except (trio.TooSlowError, NetworkError, StreamClosed) as e:
            log.info("averaging %s: leader %s did not answer (%s)", rnd.key, leader,
                     type(e).__name__)
            return None
        except PeerMisbehaviour as e:
            self._offence(leader, e.reason)
            return None
        msg = wire.decode(data, leader) if data else None
        if isinstance(msg, wire.Reject):
            log.debug("averaging %s: %s declined: %s", rnd.key, leader, msg.reason)
            return msg
        if isinstance(msg, wire.Assembled):
            ids = [m.peer for m in msg.members]
            if (msg.key != rnd.key or msg.length != rnd.length or self.me not in ids
                    or msg.group_id != group_id_for(rnd.key, ids)
                    or (msg.rule, msg.f) != (rnd.rule, rnd.f)):
                self._offence(leader, "an Assembled message that does not match the Join")
                return None
            return msg
        self._offence(leader, f"answered a Join with {type(msg).__name__}")
        return None

    # -- all-reduce ---------------------------------------------------------------------------
    async def _allreduce(self, msg: wire.Assembled, vec: np.ndarray, weight: float, *,
                         deadline: float, started: float, compression: str,
                         center: np.ndarray | None = None) -> AveragingResult:
        ids = [m.peer for m in msg.members]
        notes: list[tuple[str, str]] = []
        out, got, weights, failed = await self._butterfly(msg, vec, weight, deadline=deadline,
                                                          compression=compression,
                                                          center=center, notes=notes)
        members = set.intersection(*got.values()) if got else {self.me}
        # slices that did not average exactly `members` (a reducer that failed, or one that
        # took a part another reducer refused) are averaged again among `members`
        lost = sorted(set(failed) | {r for r, m in got.items() if m != members}, key=ids.index)
        recovered = not lost
        if lost and len(members) >= 2 and trio.current_time() < deadline - 2 * RESULT_MARGIN:
            recovered = await self._recover(msg, vec, out, weight, lost=lost, members=members,
                                            deadline=deadline, compression=compression,
                                            center=center, notes=notes)
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
                               reason, used, note)

    async def _recover(self, msg: wire.Assembled, vec: np.ndarray, out: np.ndarray,
                       weight: float, *,
                       lost: list[str], members: set[str], deadline: float,
                       compression: str, center: np.ndarray | None,
                       notes: list[tuple[str, str]]) -> bool:
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
            notes=notes)
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
                         ) -> tuple[np.ndarray, dict[str, set[str]], dict[str, float], list[str]]:
        """One butterfly all-reduce: (vector, member set and weight per reducer, the reducers
        that failed). `notes` gets the rule this village reduced its slice with, and why."""
        ids = [m.peer for m in msg.members]
        slices = partition(msg.length, [m.share for m in msg.members])
        mine = ids.index(self.me)
        now = trio.current_time()
        red = _Reduction(msg.group_id, tuple(ids), mine, slices[mine].start, slices[mine].stop,
                         now + (deadline - now) * PART_SHARE_OF_TIME, rule=msg.rule, f=msg.f)
        if center is not None:
            red.center = center[red.start:red.stop]
        self._groups[msg.group_id] = red
        self._ready.setdefault(msg.group_id, trio.Event()).set()
        dtype = wire.choose_dtype(msg.length, compression)
        out = vec.copy()
        got: dict[str, set[str]] = {}
        weights: dict[str, float] = {}
        failed: list[str] = []
        try:
            if red.stop > red.start:
                red.parts[self.me] = (vec[red.start:red.stop], weight)
                self._maybe_reduce(red)

            sending = trio.Semaphore(SEND_PARALLEL)

            async def exchange(j: int) -> None:
                s = slices[j]
                res = await self._send_part(msg.group_id, ids[j], j, vec[s.start:s.stop],
                                            weight=weight, dtype=dtype, deadline=deadline,
                                            sending=sending)
                if res is None:
                    failed.append(ids[j])
                else:
                    out[s.start:s.stop] = res[0]
                    got[ids[j]] = res[1]
                    weights[ids[j]] = res[2]

            async with trio.open_nursery() as nursery:
                for j, s in enumerate(slices):
                    if j != mine and s.stop > s.start:
                        nursery.start_soon(exchange, j)
                if red.stop > red.start:
                    await self._await_parts(red, failed)
            if red.stop > red.start:
                out[red.start:red.stop] = red.result  # type: ignore[assignment]
                got[self.me] = set(red.result_members)
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
            red.result, red.rule_used, red.rule_note = _robust_reduce(
                [red.parts[p][0] for p in who], red.rule, red.f, red.center)
            if red.rule_note:
                log.info("averaging: slice %d: %s", red.my_slice, red.rule_note)
        elif who:
            red.result = reduce_slice([red.parts[p][0] for p in who],
                                      [red.parts[p][1] for p in who]).astype(np.float32)
        if who:
            red.result_members = tuple(who)
            red.result_weight = float(sum(red.parts[p][1] for p in who))
        red.done.set()

    async def _send_part(self, group_id: str, reducer: str, index: int, part: np.ndarray, *,
                         weight: float, dtype: str, deadline: float, sending: trio.Semaphore,
                         ) -> tuple[np.ndarray, set[str], float] | None:
        host = self.node.host
        assert host is not None
        payload, scale, zero = wire.pack(part, dtype)
        header = wire.PartHeader(wire.VERSION, group_id, index, int(part.size), dtype, weight,
                                 scale, zero)
        try:
            with trio.fail_at(deadline):
                stream = await host.open_stream(reducer, wire.PROTOCOL, timeout=10)
                log.debug("averaging: %s opened a stream to %s", self.me[-6:], reducer[-6:])
                try:
                    async with sending:  # the upload is shared: a few parts at a time
                        await write_frame(stream, wire.encode(header))
                        await write_frame(stream, payload, self.node.bandwidth)
                    log.debug("averaging: part %d (%d B) sent to %s", index, len(payload),
                              reducer[-6:])
                    left = deadline - trio.current_time()
                    data = await read_frame(stream, max_size=wire.MAX_CONTROL, timeout=left,
                                            peer=reducer)
                    res = wire.decode(data, reducer)
                    if not isinstance(res, wire.SliceResult):
                        raise PeerMisbehaviour(reducer, f"answered a part with "
                                               f"{type(res).__name__}")
                    if not res.ok:
                        log.info("averaging: reducer %s refused our part: %s", reducer,
                                 res.reason)
                        return None
                    if res.length != part.size or self.me not in res.members:
                        raise PeerMisbehaviour(reducer, "a slice result that does not match")
                    body = await read_frame(stream, max_size=res.length * wire.BYTES_PER[
                        res.dtype], timeout=deadline - trio.current_time(), peer=reducer,
                        bandwidth=self.node.bandwidth)
                    log.debug("averaging: %s got slice %d from %s", self.me[-6:], index,
                              reducer[-6:])
                finally:
                    await close_stream(stream)
        except PeerMisbehaviour as e:
            self._offence(reducer, e.reason)
            return None
        except (trio.TooSlowError, NetworkError, StreamClosed, trio.BrokenResourceError) as e:
            log.info("averaging: reducer %s failed (%s: %s)", reducer, type(e).__name__, e)
            return None
        except Exception as e:  # a reset stream from a host that went away
            log.info("averaging: reducer %s failed (%s: %s)", reducer, type(e).__name__, e)
            return None
        values = wire.unpack(body, res.dtype, res.length, scale=res.scale, zero=res.zero,
                             peer=reducer)
        return values, set(res.members), res.weight

    # -- serving ------------------------------------------------------------------------------
    async def _serve(self, stream: Any, peer: str) -> None:
        try:
            data = await read_frame(stream, max_size=wire.MAX_CONTROL, timeout=10, peer=peer)
            msg = wire.decode(data, peer)
            if isinstance(msg, wire.Join):
                await self._serve_join(stream, peer, msg)
            elif isinstance(msg, wire.PartHeader):
                await self._serve_part(stream, peer, msg)
            else:
                self._unexpected(peer, msg)
        except PeerMisbehaviour as e:
            self._offence(peer, e.reason)  # recorded for the reputation layer
            raise

    @staticmethod
    def _unexpected(peer: str, msg: wire.Control) -> None:
        raise PeerMisbehaviour(peer, f"opened an averaging stream with {type(msg).__name__}")

    async def _reply(self, stream: Any, msg: wire.Control) -> None:
        await write_frame(stream, wire.encode(msg))

    async def _serve_join(self, stream: Any, peer: str, join: wire.Join) -> None:
        rnd = self._rounds.get(join.key)
        if rnd is None or rnd.state == "closed":
            await self._reply(stream, wire.Reject(wire.VERSION, "not averaging this round"))
            return
        if join.length != rnd.length:
            await self._reply(stream, wire.Reject(wire.VERSION, f"length {join.length} is "
                                                  f"not this round's {rnd.length}"))
            return
        if (join.rule, join.f) != (rnd.rule, rnd.f):
            await self._reply(stream, wire.Reject(wire.VERSION, f"this round reduces with "
                                                  f"{rnd.rule} (f={rnd.f})"))
            return
        with trio.move_on_at(rnd.close_at):
            await rnd.decided.wait()
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

    async def _serve_part(self, stream: Any, peer: str, head: wire.PartHeader) -> None:
        event = self._ready.setdefault(head.group_id, trio.Event())
        with trio.move_on_after(PART_WAIT):
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
            raise PeerMisbehaviour(peer, "joined an averaging group it was not matched into")
        if head.slice != red.my_slice or head.length != red.stop - red.start:
            red.rejected.add(peer)
            await self._reply(stream, refuse("wrong slice"))
            raise PeerMisbehaviour(peer, f"sent slice {head.slice} of {head.length} values to "
                                   f"the reducer of slice {red.my_slice} "
                                   f"({red.stop - red.start} values)")
        if peer in red.receiving:
            if not red.done.is_set():  # neither copy counts: the member is dropped
                red.parts.pop(peer, None)
            red.rejected.add(peer)
            await self._reply(stream, refuse("duplicate part"))
            raise PeerMisbehaviour(peer, "sent its part twice")
        red.receiving.add(peer)
        if red.done.is_set():
            await self._reply(stream, refuse("too late: the slice is reduced"))
            log.info("averaging: %s's part came after the reduction", peer)
            return
        timeout = max(0.1, red.part_deadline - trio.current_time())
        log.debug("averaging: %s reads %s's part", self.me[-6:], peer[-6:])
        try:
            body = await read_frame(stream, max_size=head.length * wire.BYTES_PER[head.dtype],
                                    timeout=timeout, peer=peer, bandwidth=self.node.bandwidth)
            values = wire.unpack(body, head.dtype, head.length, scale=head.scale,
                                 zero=head.zero, peer=peer)
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
        await self._reply(stream, wire.SliceResult(
            wire.VERSION, True, list(red.result_members), red.result_weight,
            int(red.result.size), head.dtype, scale, zero))
        await write_frame(stream, payload, self.node.bandwidth)
        log.debug("averaging: %s answered %s", self.me[-6:], peer[-6:])
