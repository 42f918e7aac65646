"""The averaging service on real nodes (real hosts on loopback, real DHT matchmaking), many
nodes in one trio loop: exact averages, members killed mid-round, and hostile members."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from bench.hostile import lie_in_results
from core.averaging import wire
from core.averaging.moshpit import partition
from core.averaging.rounds import leader_rank
from core.averaging.service import AveragingResult, AveragingService, group_id_for
from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import write_frame
from core.net.host import close_stream
from core.node import Node
from tests.nodes import run_trio_test, run_villages, stop, trio_villages, trio_wait_for

TEN_MB = 10 * 2**20 // 4
T0 = time.monotonic()


def _phase(what: str) -> None:
    """Where a long test is (shown with its output when it fails or times out)."""
    print(f"[{time.monotonic() - T0:7.1f} s] {what}", file=sys.stderr, flush=True)


async def _settle(nodes: list[Node]) -> None:
    """Tables filled and the join storm over (lookups fast again)."""
    n = len(nodes)
    await trio_wait_for(lambda: all(len(x.dht.table or ()) >= min(n - 1, 8) for x in nodes),
                        60, "routing tables")
    host = nodes[1].host
    assert host is not None and nodes[0].host is not None
    deadline = trio.current_time() + 90
    while trio.current_time() < deadline:
        if await host.ping(nodes[0].host.peer_id) < 0.05:
            return
        await trio.sleep(1)


async def _round(nodes: list[Node], key: str, vecs: list[np.ndarray], *, gather: float,
                 timeout: float, kill: list[Node] = ()) -> dict[int, AveragingResult]:
    now = time.time()
    results: dict[int, AveragingResult] = {}
    scopes: dict[int, trio.CancelScope] = {}

    async def one(i: int) -> None:
        with trio.CancelScope() as scope:
            scopes[i] = scope
            results[i] = await nodes[i].averaging.average(
                key, vecs[i], close_at=now + gather, deadline_at=now + gather + timeout)

    async def killer() -> None:  # once they are in the group (matchmaking over), before
        # they send anything: they wait in _allreduce (patched below), then their hosts stop
        def assembled(node: Node) -> bool:
            rnd = node.averaging._rounds.get(key)
            return rnd is not None and rnd.message is not None
        await trio_wait_for(lambda: all(assembled(n) for n in kill), gather + 10,
                            "the doomed members to be assembled")
        for node in kill:
            scopes[nodes.index(node)].cancel()
            stop(node)

    async def vanish(*args: Any, **kw: Any) -> AveragingResult:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    for node in kill:
        node.averaging._allreduce = vanish  # type: ignore[method-assign]

    async with trio.open_nursery() as nursery:
        for i in range(len(nodes)):
            nursery.start_soon(one, i)
        if kill:
            nursery.start_soon(killer)
    return results


def _exact(nodes: list[Node], vecs: list[np.ndarray], members: tuple[str, ...]) -> np.ndarray:
    ids = [n.averaging.me if n.host else "" for n in nodes]
    return np.mean([vecs[ids.index(m)] for m in members], axis=0)


@pytest.mark.xdist_group("heavy-network")  # never beside each other: see Makefile
@pytest.mark.timeout(620)
def test_sixteen_villages_average_10_mb_exactly_and_finish_without_two_killed(
        tmp_path: Path) -> None:
    async def main(checks_done: Callable[[], None]) -> None:
        _phase("starting 16 villages")
        async with trio_villages(tmp_path, 16) as nodes:
            _phase("settling")
            await _settle(nodes)
            rng = np.random.default_rng(7)
            vecs = [rng.normal(size=TEN_MB).astype(np.float32) for _ in nodes]
            _phase("round 1: all 16")
            full = await _round(nodes, "test/exact", vecs, gather=8, timeout=200)
            for r in full.values():
                assert r.members and len(r.members) == 16 and r.complete, r
                assert np.abs(r.vector - _exact(nodes, vecs, r.members)).max() <= 1e-5
            # each village timed its own parts (~625 kB each): what it announces from now
            for n in nodes:
                assert n.averaging.upload.measured and n.averaging.upload.samples >= 1
                assert 0.1 <= n.averaging.upload.mbps <= 100_000

            # two members die after matchmaking (never the leader: the first in the round's
            # leader rank leads, so the last two in it die)
            ids = sorted((n.averaging.me for n in nodes),
                         key=lambda p: leader_rank("test/killed", p))
            doomed = [n for n in nodes if n.averaging.me in ids[-2:]]
            doomed_ids = set(ids[-2:])
            alive = [i for i, n in enumerate(nodes) if n not in doomed]
            vecs2 = [rng.normal(size=TEN_MB).astype(np.float32) for _ in nodes]
            timeout = 60
            started = time.time()
            _phase("round 2: two members vanish")
            part = await _round(nodes, "test/killed", vecs2, gather=8, timeout=timeout,
                                kill=doomed)
            _phase("round 2 over")
            assert time.time() - started < 8 + timeout  # before the deadline
            for i in alive:
                r = part[i]
                assert r.group_size == 16 and len(r.members) == 14, (r.members, r.reason)
                assert set(r.dropped) == doomed_ids
                assert r.complete, r.reason
                survivors = [n for n in nodes if n not in doomed]
                exact = np.mean([vecs2[nodes.index(n)] for n in survivors], axis=0)
                assert np.abs(r.vector - exact).max() <= 1e-5
            _phase("stopping the villages")
            checks_done()
        _phase("stopped")

    run_trio_test(main, timeout=520)


class _Hostile(AveragingService):
    """A member that breaks the protocol in one chosen way (the others are honest)."""

    mode = ""

    async def _send_part(self, group_id: str, reducer: str, index: int, part: np.ndarray,
                         **kw: Any) -> Any:
        try:
            return await self._misbehave(group_id, reducer, index, part, **kw)
        except Exception:  # a reducer that refused it resets its streams: as it should
            return None

    async def _misbehave(self, group_id: str, reducer: str, index: int, part: np.ndarray,
                         **kw: Any) -> Any:
        host = self.ctx.transport
        if self.mode == "nan":
            bad = part.copy()
            bad[0] = np.nan
            return await super()._send_part(group_id, reducer, index, bad, **kw)
        try:
            stream = await host.open_stream(reducer, wire.PROTOCOL)
        except NetworkError:  # this reducer refused us already (an earlier offence)
            return None
        try:
            n = part.size
            if self.mode == "wrong-length":
                head = wire.PartHeader(wire.VERSION, group_id, index, n + 1, "f32", 1.0)
                await write_frame(stream, wire.encode(head))
                await write_frame(stream, b"\0" * 4 * (n + 1))
            elif self.mode == "duplicate":  # the same part twice, on two streams at once
                head = wire.PartHeader(wire.VERSION, group_id, index, n, "f32", 1.0)
                again = await host.open_stream(reducer, wire.PROTOCOL)
                for s in (stream, again):
                    await write_frame(s, wire.encode(head))
                for s in (stream, again):
                    try:
                        await write_frame(s, part.astype("<f4").tobytes())
                    except Exception:  # the reducer already cut off one copy: as it should
                        pass
                await close_stream(again)
            elif self.mode == "silent":  # a header, then nothing
                head = wire.PartHeader(wire.VERSION, group_id, index, n, "f32", 1.0)
                await write_frame(stream, wire.encode(head))
                await trio.sleep(60)
            elif self.mode == "oversized":
                try:
                    await write_frame(stream, b"\x91" + b"\0" * (wire.MAX_CONTROL + 10))
                except Exception:  # the reducer refused us and reset the stream: as it should
                    pass
        finally:
            await close_stream(stream)
        return None


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["nan", "wrong-length", "duplicate", "silent", "oversized"])
def test_a_hostile_member_is_dropped_and_recorded_and_the_round_completes(
        tmp_path: Path, mode: str) -> None:
    async def main() -> None:
        async with trio_villages(tmp_path, 5) as nodes:
            hostile = nodes[-1]
            hostile.averaging.__class__ = _Hostile
            hostile.averaging.mode = mode  # type: ignore[attr-defined]
            await _settle(nodes)
            rng = np.random.default_rng(1)
            vecs = [rng.normal(size=50_000).astype(np.float32) for _ in nodes]
            res = await _round(nodes, f"test/hostile/{mode}", vecs, gather=4, timeout=20)
            bad = hostile.averaging.me
            honest = [i for i, n in enumerate(nodes) if n is not hostile]
            for i in honest:
                r = res[i]
                assert bad not in r.members and bad in r.dropped, (mode, r)
                assert len(r.members) == 4 and r.complete, (mode, r.reason)
                assert np.abs(r.vector - _exact(nodes, vecs, r.members)).max() <= 1e-5
            # the reducers that met the offence recorded it, naming the peer
            assert sum(n.misbehaviour.get(bad, 0) for n in nodes if n is not hostile) >= 1

    run_villages(main, timeout=340)


@pytest.mark.timeout(400)
def test_a_reducer_that_lies_inside_the_bounds_is_caught_by_the_members_checks(
        tmp_path: Path) -> None:
    """Over real hosts: one of five villages reduces its slice honestly and answers with it
    reversed and scaled 20 times (no bounds, no bytes or signature tell it from an honest
    result). Every other member reduces the listed parts itself, catches it, refuses it, and
    averages the vector again without it: the exact mean of the four honest villages."""
    async def main() -> None:
        async with trio_villages(tmp_path, 5) as nodes:
            liar = nodes[-1]
            lie_in_results(liar.averaging, lambda r: (-20.0 * r).astype(np.float32))
            await _settle(nodes)
            rng = np.random.default_rng(3)
            vecs = [rng.normal(size=20_000).astype(np.float32) for _ in nodes]
            res = await _round(nodes, "test/lying-reducer", vecs, gather=4, timeout=20)
            bad = liar.averaging.me
            for i in range(4):
                r = res[i]
                assert bad not in r.members and len(r.members) == 4 and r.complete, r
                assert np.abs(r.vector - _exact(nodes, vecs, r.members)).max() <= 1e-5
                assert nodes[i].averaging._is_shunned(bad)

    run_villages(main, timeout=340)


@pytest.mark.timeout(400)
def test_a_robust_rule_keeps_a_byzantine_member_out_and_a_small_group_falls_back(
        tmp_path: Path) -> None:
    """One of five villages sends a vector a million times too large, pointing the wrong way
    (well-formed, so no protocol offence: a Byzantine member). With the coordinate-wise median
    every slice is the median of the five parts; Bulyan (needs 7 for f=1) falls back to
    Multi-Krum and every result says so."""
    async def main() -> None:
        async with trio_villages(tmp_path, 5) as nodes:
            await _settle(nodes)
            rng = np.random.default_rng(5)
            honest = [rng.normal(size=30_000).astype(np.float32) for _ in nodes[:4]]
            vecs = [*honest, (-1e6 * honest[0]).astype(np.float32)]
            for rule, used in (("median", "median"), ("bulyan", "multi_krum")):
                now = time.time()
                results: dict[int, AveragingResult] = {}

                async def one(i: int, rule: str = rule, now: float = now) -> None:
                    results[i] = await nodes[i].averaging.average(
                        f"test/robust/{rule}", vecs[i], close_at=now + 4,
                        deadline_at=now + 24, rule=rule, f=1)

                async with trio.open_nursery() as nursery:
                    for i in range(5):
                        nursery.start_soon(one, i)
                lo, hi = np.min(honest, axis=0), np.max(honest, axis=0)
                for i in range(4):
                    r = results[i]
                    assert len(r.members) == 5 and r.complete, (rule, r.reason)
                    assert r.rule == used, (rule, r.rule, r.rule_note)
                    if rule == "median":
                        assert np.abs(r.vector - np.median(vecs, axis=0)).max() <= 1e-6
                        assert not r.rule_note
                    else:
                        assert "bulyan needs n >= 7 to tolerate f=1" in r.rule_note
                    assert (r.vector >= lo - 1e-6).all() and (r.vector <= hi + 1e-6).all() \
                        if rule == "median" else np.abs(r.vector).max() < 10

    run_villages(main, timeout=340)


def test_a_stranger_is_refused_and_recorded(tmp_path: Path) -> None:
    async def main() -> None:
        async with trio_villages(tmp_path, 4) as nodes:
            stranger = nodes[-1]
            members = nodes[:3]
            await _settle(nodes)
            rng = np.random.default_rng(2)
            vecs = [rng.normal(size=20_000).astype(np.float32) for _ in members]
            now = time.time()
            results: list[AveragingResult] = []
            refusals: list[str] = []

            async def one(i: int) -> None:
                results.append(await members[i].averaging.average(
                    "test/stranger", vecs[i], close_at=now + 4, deadline_at=now + 24))

            async def intrude() -> None:
                # the stranger knows who averages (ids are public) and so the group id; it
                # pushes a part into that group at the moment it forms, without a match
                target = members[0]
                ids = sorted(m.averaging.me for m in members)
                gid = group_id_for("test/stranger", ids)
                mine = ids.index(target.averaging.me)
                part = partition(20_000, [1.0] * 3)[mine]
                await trio.sleep(max(0.0, now + 4 - time.time()))
                assert stranger.host is not None
                stream = await stranger.host.open_stream(target.averaging.me, wire.PROTOCOL)
                head = wire.PartHeader(wire.VERSION, gid, mine, part.stop - part.start,
                                       "f32", 1.0)
                await write_frame(stream, wire.encode(head))
                from core.net.framing import read_frame

                try:
                    answer = wire.decode(await read_frame(stream, max_size=wire.MAX_CONTROL,
                                                          timeout=10), "t")
                    assert isinstance(answer, wire.SliceResult) and not answer.ok
                    refusals.append(answer.reason)
                except Exception as e:  # reset after the refusal: fine too
                    refusals.append(repr(e))
                await close_stream(stream)

            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(one, i)
                nursery.start_soon(intrude)
            assert refusals and members[0].misbehaviour.get(stranger.averaging.me, 0) >= 1
            for r in results:
                assert len(r.members) == 3 and r.complete
                assert stranger.averaging.me not in r.members

    run_villages(main, timeout=90)


def test_the_wire_knows_every_robust_rule() -> None:
    from core.robust import RULES

    assert set(wire.RULE_NAMES) == set(RULES)


def test_wire_rejects_bad_messages_and_payloads() -> None:
    ok = wire.PartHeader(wire.VERSION, "g", 0, 4, "f32", 1.0)
    assert wire.decode(wire.encode(ok), "p") == ok
    bad_cases = [
        b"\xc1garbage",
        wire.encode(wire.PartHeader(2, "g", 0, 4, "f32", 1.0)),            # version
        wire.encode(wire.PartHeader(wire.VERSION, "g", 0, 4, "f64", 1.0)),  # dtype
        wire.encode(wire.PartHeader(wire.VERSION, "g", 0, -1, "f32", 1.0)),  # length
        wire.encode(wire.PartHeader(wire.VERSION, "g", 0, 4, "f32", float("nan"))),
        wire.encode(wire.Join(wire.VERSION, "k", 0.0, 1.0, False, 4)),       # weight 0
        wire.encode(wire.Join(wire.VERSION, "k", 1e30, 1.0, False, 4)),      # weight huge
        wire.encode(wire.PartHeader(wire.VERSION, "g", 0, 4, "f32", 1e30)),  # weight huge
        wire.encode(wire.Join(wire.VERSION, "k", 1.0, 1.0, False, 4, "avg")),  # rule
        wire.encode(wire.Assembled(wire.VERSION, "k", "g", [wire.Member("a", 1.0)], 4,
                                   "krum", -1)),                            # f
        b"\0" * (wire.MAX_CONTROL + 1),
    ]
    for data in bad_cases:
        with pytest.raises(PeerMisbehaviour):
            wire.decode(data, "p")
    for dtype in ("f32", "f16", "u8"):
        values = np.linspace(-3, 5, 1000, dtype=np.float32)
        data, scale, zero = wire.pack(values, dtype)
        back = wire.unpack(data, dtype, 1000, scale=scale, zero=zero, peer="p")
        tol = {"f32": 0, "f16": 5e-3, "u8": 8 / 255}[dtype]
        assert np.abs(back - values).max() <= tol + 1e-6
        with pytest.raises(PeerMisbehaviour):
            wire.unpack(data[:-1], dtype, 1000, scale=scale, zero=zero, peer="p")
    nan = np.array([1.0, np.nan], dtype=np.float32).tobytes()
    with pytest.raises(PeerMisbehaviour):
        wire.unpack(nan, "f32", 2, scale=1.0, zero=0.0, peer="p")


def test_a_full_group_averages_at_once_instead_of_waiting_for_the_deadline(
        tmp_path: Path) -> None:
    """Four villages, groups of at most four, a matchmaking deadline 40 s away: once all four
    are listed the round is decided and closed, so the averages come long before it."""
    async def main() -> None:
        async with trio_villages(tmp_path, 4) as nodes:
            await _settle(nodes)
            rng = np.random.default_rng(3)
            vecs = [rng.normal(size=10_000).astype(np.float32) for _ in nodes]
            close_at = time.time() + 40
            finished: list[float] = []

            async def one(i: int) -> None:
                res = await nodes[i].averaging.average(
                    "test/full", vecs[i], max_group=4, close_at=close_at,
                    deadline_at=close_at + 20)
                finished.append(time.time())
                assert len(res.members) == 4 and res.complete, res
                assert np.allclose(res.vector, np.mean(vecs, axis=0), atol=1e-6)

            async with trio.open_nursery() as nursery:
                for i in range(4):
                    nursery.start_soon(one, i)
            assert len(finished) == 4 and max(finished) < close_at - 20, \
                (close_at - max(finished))
            exact = np.mean(vecs, axis=0)
            for dtype in ("f16", "u8"):  # compressed: off the exact mean, within the bound
                now = time.time()
                results = await _gather(nodes, f"test/{dtype}", vecs, close_at=now + 30,
                                        deadline_at=now + 50, compression=dtype)
                bound = wire.error_bound(dtype, vecs)
                for res in results:
                    assert len(res.members) == 4 and res.complete, res
                    err = float(np.abs(res.vector - exact).max())
                    assert 0 < err <= bound, (dtype, err, bound)

    run_villages(main, timeout=120)


async def _gather(nodes: list[Node], key: str, vecs: list[np.ndarray],
                  **kw: Any) -> list[AveragingResult]:
    """Every village averages its vector under `key` in a group of all of them."""
    out: list[AveragingResult] = []

    async def one(i: int) -> None:
        out.append(await nodes[i].averaging.average(key, vecs[i], max_group=len(nodes), **kw))

    async with trio.open_nursery() as nursery:
        for i in range(len(nodes)):
            nursery.start_soon(one, i)
    return out


@pytest.mark.timeout(180)
def test_parts_queued_behind_a_slow_upload_are_not_dropped_as_silent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """A member uploads a few parts at a time (SEND_PARALLEL); a reducer drops a stream whose
    first message is late (HEADER_WAIT, 10 s). A part queued behind the member's other
    uploads must not look silent: here one part at a time, 8 MB each, and the wait cut to
    0.3 s (a slow uplink in miniature: the 16-village test's 625 kB parts waited past 10 s on
    a loaded machine). Every part arrives, the round is complete, nobody is called silent."""
    from core.averaging import allreduce, parts, rounds

    monkeypatch.setattr(allreduce, "SEND_PARALLEL", 1)  # the upload's slots
    monkeypatch.setattr(parts, "SEND_PARALLEL", 1)  # what the upload rate counts
    monkeypatch.setattr(rounds, "HEADER_WAIT", 0.3)

    async def main() -> None:
        async with trio_villages(tmp_path, 3, mdns=False) as nodes:
            await _settle(nodes)
            rng = np.random.default_rng(3)
            vecs = [rng.normal(size=3 * 2**21).astype(np.float32) for _ in nodes]
            out = await _round(nodes, "test/queued-parts", vecs, gather=3, timeout=60)
            for r in out.values():
                assert len(r.members) == 3 and r.complete, (r.members, r.reason)
                assert np.abs(r.vector - _exact(nodes, vecs, r.members)).max() <= 1e-5

    run_villages(main, timeout=150)
    silent = [r.getMessage() for r in caplog.records if "silent for" in r.getMessage()]
    assert not silent, silent


@pytest.mark.timeout(180)
def test_a_member_whose_checks_take_longer_is_waited_for_in_the_recovery(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One of five members dies after matchmaking, so its slice is averaged again among the
    other four (the recovery butterfly), which each member starts when its checks of the first
    butterfly end. One member's checks take 6 s longer (more to download, a busier machine):
    the others' recovery parts wait for it (not PART_WAIT, 3 s, and refused as "no such group"
    - that failed the whole recovery), and every survivor ends complete with the exact mean."""
    caplog.set_level(logging.INFO, logger="core.averaging")  # what each member did, on failure

    async def main() -> None:
        async with trio_villages(tmp_path, 5) as nodes:
            await _settle(nodes)
            dead, slow = _last_and_second(nodes, "test/slow-check")
            checks = slow.averaging._spot_check

            async def slow_check(*args: Any, **kw: Any) -> None:
                await trio.sleep(6)
                await checks(*args, **kw)

            slow.averaging._spot_check = slow_check  # type: ignore[method-assign]
            await _one_dies(nodes, "test/slow-check", dead, seed=9, size=40_000, timeout=60)

    run_villages(main, timeout=150)


@pytest.mark.timeout(180)
def test_a_gone_reducer_whose_stream_stays_silent_is_not_awaited(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A member dies after matchmaking; for one survivor its stream stays open and silent (a
    laptop that went to sleep sends no reset). That survivor's own reduction already left the
    dead member out, so the dead member's result could not count: the survivor stops waiting
    for its answer and averages the lost slice again with the others. (It waited for the
    answer until the round's deadline here, until 40 % past the part deadline in the product,
    and started the recovery that much after the others.)"""
    caplog.set_level(logging.INFO, logger="core.averaging")

    async def main() -> None:
        async with trio_villages(tmp_path, 4) as nodes:
            await _settle(nodes)
            dead, stuck = _last_and_second(nodes, "test/silent-gone")
            send = stuck.averaging._send_part

            async def silent_to_the_dead(group_id: str, reducer: str, *args: Any,
                                         **kw: Any) -> Any:
                if reducer == dead.averaging.me:
                    await trio.sleep_forever()  # no answer, no reset
                return await send(group_id, reducer, *args, **kw)

            stuck.averaging._send_part = silent_to_the_dead  # type: ignore[method-assign]
            await _one_dies(nodes, "test/silent-gone", dead, seed=11, size=20_000, timeout=40)

    run_villages(main, timeout=150)


def _last_and_second(nodes: list[Node], key: str) -> tuple[Node, Node]:
    """For a round under `key`: the village that ranks last as its leader (killed: never the
    leader) and the one that ranks second (a plain member)."""
    ids = sorted((n.averaging.me for n in nodes), key=lambda p: leader_rank(key, p))
    by_id = {n.averaging.me: n for n in nodes}
    return by_id[ids[-1]], by_id[ids[1]]


async def _one_dies(nodes: list[Node], key: str, dead: Node, *, seed: int, size: int,
                    timeout: float) -> None:
    """A round of random vectors under `key` in which `dead` dies after matchmaking: every
    other village ends complete, without it, with the exact mean of the rest."""
    rng = np.random.default_rng(seed)
    vecs = [rng.normal(size=size).astype(np.float32) for _ in nodes]
    res = await _round(nodes, key, vecs, gather=4, timeout=timeout, kill=[dead])
    survivors = [n for n in nodes if n is not dead]
    exact = np.mean([vecs[nodes.index(n)] for n in survivors], axis=0)
    for n in survivors:
        r = res[nodes.index(n)]
        assert len(r.members) == len(survivors) and r.dropped == (dead.averaging.me,), r
        assert r.complete, r.reason
        assert np.abs(r.vector - exact).max() <= 1e-5
