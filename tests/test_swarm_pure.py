"""SWARM's pure logic: span selection, rebalancing, the balancer, the wire checks, the records."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.dht import records as rec
from core.swarm import spans, wire
from core.swarm.balancer import Balancer, NoServer
from core.swarm.spans import ServerSpan
from tests.dhtkit import new_village

# -- span selection -----------------------------------------------------------------------


def test_span_length_fits_the_memory_budget():
    assert spans.span_length(10 * 100, 100, 8) == 8       # 90% of 1000 fits 9, capped at 8
    assert spans.span_length(350, 100, 8) == 3
    assert spans.span_length(100, 100, 8) == 0            # 90 bytes do not hold one block
    with pytest.raises(ValueError):
        spans.span_length(100, 0, 8)


def test_a_joining_server_takes_the_weakest_window():
    t = [10.0, 10.0, 2.0, 2.0, 10.0, 10.0]
    assert spans.choose_span(t, 2) == 2
    assert spans.choose_span(t, 1) == 2                   # the first of equal minima
    assert spans.choose_span([0.0] * 4, 2) == 0           # an empty swarm: from the start
    assert spans.choose_span([5.0, 0.0, 0.0, 5.0], 3) in (0, 1)
    with pytest.raises(ValueError):
        spans.choose_span(t, 7)


def test_stage_throughput_sums_the_servers_of_each_block():
    s = [ServerSpan("a", 0, 2, 3.0), ServerSpan("b", 1, 4, 5.0)]
    assert spans.stage_throughputs(s, 4) == [3.0, 8.0, 5.0, 5.0]
    assert spans.stage_throughputs(s, 4, exclude="b") == [3.0, 3.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        ServerSpan("c", 2, 2, 1.0)
    with pytest.raises(ValueError):
        ServerSpan("c", 0, 1, float("nan"))


def test_rebalancing_moves_only_when_the_weakest_stage_gains_enough():
    # Two stages; three servers on stage 0, none on stage 1: the third should move.
    servers = [ServerSpan("a", 0, 2, 10.0), ServerSpan("b", 0, 2, 10.0),
               ServerSpan("c", 0, 2, 10.0), ServerSpan("d", 2, 4, 1.0)]
    d = spans.should_move(servers, "c", 4)
    assert d.move and d.start == 2 and d.old_min == 1.0 and d.new_min == 11.0
    # Balanced already: nobody moves.
    balanced = [ServerSpan("a", 0, 2, 10.0), ServerSpan("b", 2, 4, 10.0)]
    assert not spans.should_move(balanced, "a", 4).move
    # A small gain (old/new >= 0.75) is not worth moving for.
    near = [ServerSpan("a", 0, 2, 10.0), ServerSpan("b", 0, 2, 1.0), ServerSpan("c", 2, 4, 8.5)]
    d = spans.should_move(near, "b", 4)
    assert not d.move and "only from" in d.why
    with pytest.raises(ValueError):
        spans.should_move(balanced, "zz", 4)
    # Several blocks unserved: no one move lifts the minimum from zero, yet filling a gap
    # is progress (without this, seven servers stayed piled on the first stage).
    piled = [ServerSpan(p, 0, 2, 10.0) for p in "abcdef"] + [ServerSpan("g", 2, 4, 10.0)]
    d = spans.should_move(piled, "a", 8)
    assert d.move and d.start == 4 and "nobody serves" in d.why
    assert not spans.should_move(piled, "g", 8).move  # it would open a gap


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(1, 4), st.floats(0.1, 100)),
                min_size=2, max_size=12))
def test_a_move_never_lowers_the_swarm_minimum(raw):
    servers = [ServerSpan(f"p{i}", s, min(8, s + n), t) for i, (s, n, t) in enumerate(raw)]
    for me in servers:
        d = spans.should_move(servers, me.peer_id, 8)
        if d.move:
            moved = [s for s in servers if s.peer_id != me.peer_id] + [
                ServerSpan(me.peer_id, d.start, d.start + me.end - me.start, me.throughput)]
            gaps = [sum(1 for t in spans.stage_throughputs(x, 8) if t <= 0)
                    for x in (servers, moved)]
            assert gaps[1] < gaps[0] or (
                gaps == [0, 0] and d.old_min / d.new_min < spans.MOVE_RATIO)
            assert spans.swarm_min(moved, 8) >= spans.swarm_min(servers, 8)


def test_rebalance_waits_are_randomised():
    rng = random.Random(3)
    waits = [spans.next_rebalance(rng, 60.0) for _ in range(200)]
    assert min(waits) >= 30.0 and max(waits) <= 90.0 and len(set(waits)) == 200


# -- the balancer -------------------------------------------------------------------------


def test_work_is_shared_in_proportion_to_throughput_and_interleaved():
    b = Balancer()
    servers = {"fast": 30.0, "mid": 20.0, "slow": 10.0}
    picks = [b.choose(servers, now=0.0) for _ in range(600)]
    c = Counter(picks)
    assert abs(c["fast"] - 300) <= 2 and abs(c["mid"] - 200) <= 2 and abs(c["slow"] - 100) <= 2
    # interleaved: the fast server never takes more than 3 in a row
    longest = run = 1
    for a, bb in itertools.pairwise(picks):
        run = run + 1 if a == bb else 1
        longest = max(longest, run)
    assert longest <= 3


def test_a_new_server_is_tried_first_and_banned_ones_never():
    b = Balancer()
    servers = {"a": 10.0, "b": 10.0}
    for _ in range(10):
        b.choose(servers, now=0.0)
    assert b.choose({**servers, "new": 1.0}, now=0.0) == "new"
    b.ban("a", until=100.0)
    assert all(b.choose(servers, now=50.0) == "b" for _ in range(5))
    assert "a" in {b.choose(servers, now=100.0) for _ in range(4)}  # the ban ended
    b.ban("a", until=200.0)
    b.ban("b", until=200.0)
    with pytest.raises(NoServer, match="banned"):
        b.choose(servers, now=150.0)
    with pytest.raises(NoServer, match="none announced"):
        b.choose({}, now=0.0)
    assert b.choose({"a": 10.0, "zero": 0.0}, now=250.0, exclude={"b"}) == "a"


class _Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def wall(self) -> float:
        return self.t

    def mono(self) -> float:
        return self.t


def test_a_client_says_why_no_announced_server_may_take_work():
    from types import SimpleNamespace

    from core.swarm.client import SwarmClient
    from core.swarm.directory import ServerInfo
    from core.swarm.model import MODELS

    def server(name: str, expires_at: float) -> ServerInfo:
        record = rec.SwarmServerRecord(1, name, "tiny-lm", 0, 4, 10.0, "online", "direct", 0,
                                       1, 0.0, expires_at)
        return ServerInfo(name, (), record)

    ledger = SimpleNamespace(distrusted=frozenset({"cheat"}))
    client = SwarmClient(SimpleNamespace(clock=_Wall(100.0)), None, ledger,  # type: ignore[arg-type]
                         MODELS["tiny-lm"])
    client.servers = [server("cheat", 500.0), server("stale", 50.0)]
    with pytest.raises(NoServer, match=r"2 announced: 1 distrusted after failed checks, "
                                       r"1 expired"):
        client.choose(0, set())
    with pytest.raises(NoServer, match="none announced"):
        client.choose(4, set())  # nobody serves block 4
    client.servers.append(server("honest", 500.0))
    assert client.choose(0, set()).peer_id == "honest"
    with pytest.raises(NoServer, match="banned or excluded"):
        client.choose(0, {"honest"})


# -- the wire -----------------------------------------------------------------------------


def _t(shape, dtype="float32", data=None, fill=0.5):
    a = np.full(shape, fill, dtype=np.float32)
    return wire.WireTensor(dtype, list(shape), a.tobytes() if data is None else data)


def test_tensors_are_checked_before_any_compute():
    ok = wire.decode_tensor(_t((2, 3, 8)), hidden=8)
    assert ok.shape == (2, 3, 8) and float(ok[0, 0, 0]) == 0.5
    bad = {
        "dtype": _t((2, 3, 8), dtype="float64"),
        "rank": _t((2, 8)),
        "hidden size": _t((2, 3, 4)),
        "bytes for a shape": _t((2, 3, 8), data=b"\0" * 10),
        "NaN": _t((2, 3, 8), fill=float("nan")),
        "outside the caps": wire.WireTensor("float32", [wire.MAX_BATCH + 1, 1, 8], b""),
    }
    for why, t in bad.items():
        with pytest.raises(wire.BadTensor, match=why):
            wire.decode_tensor(t, hidden=8)
    with pytest.raises(wire.BadTensor, match="do not match"):
        wire.decode_tensor(_t((2, 3, 8)), hidden=8, batch_seq=(2, 4))
    assert wire.decode_flat(wire.encode_flat(np.arange(5.0)), 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(wire.BadTensor):
        wire.decode_flat(wire.encode_flat(np.arange(5.0)), 6)


def test_requests_are_validated():
    x = _t((1, 2, 8))
    good = wire.SwarmRequest(wire.VERSION, "forward", "tiny-lm", 0, 2, x)
    assert wire.decode_request(wire.encode(good)) == good
    cases = {
        "malformed": b"\x93garbage",
        "version": wire.encode(wire.SwarmRequest(99, "forward", "tiny-lm", 0, 2, x)),
        "unknown operation": wire.encode(wire.SwarmRequest(1, "erase", "tiny-lm", 0, 2, x)),
        "carries its inputs": wire.encode(wire.SwarmRequest(1, "forward", "tiny-lm", 0, 2)),
        "gradient": wire.encode(wire.SwarmRequest(1, "backward", "tiny-lm", 0, 2, x)),
        "one block at a time": wire.encode(wire.SwarmRequest(1, "params", "tiny-lm", 0, 2)),
        "no such span": wire.encode(wire.SwarmRequest(1, "forward", "tiny-lm", 3, 2, x)),
    }
    for why, data in cases.items():
        with pytest.raises(wire.BadMessage, match=why):
            wire.decode_request(data)


# -- signed server records ----------------------------------------------------------------


def _server_record(ident, **over):
    now = time.time()
    fields = dict(v=1, peer_id=ident[1], model="tiny-lm", start=0, end=4, throughput=50.0,
                  state="online", reachability="direct", queue=0, seq=1, issued_at=now,
                  expires_at=now + 60)
    fields.update(over)
    return rec.SwarmServerRecord(**fields)


def test_swarm_records_are_signed_and_checked():
    ident = new_village()
    other = new_village()
    now = time.time()
    r = _server_record(ident)
    key = rec.swarm_key("tiny-lm", ident[1])
    assert rec.validate(key, rec.sign_swarm(r, ident[0].sign), now).record == r
    refusals = {
        "bad signature": (key, rec.sign_swarm(r, other[0].sign)),
        "another peer": (rec.swarm_key("tiny-lm", other[1]), rec.sign_swarm(r, ident[0].sign)),
        "bad signature|does not match": (rec.swarm_key("other-lm", ident[1]),
                                         rec.sign_swarm(r, ident[0].sign)),
        "out of range": (key, rec.sign_swarm(_server_record(ident, start=3, end=2), ident[0].sign)),
        "unknown swarm server state": (key, rec.sign_swarm(
            _server_record(ident, state="evil"), ident[0].sign)),
        "too far": (key, rec.sign_swarm(_server_record(ident, expires_at=now + 3600),
                                        ident[0].sign)),
        "expired": (key, rec.sign_swarm(_server_record(ident, issued_at=now - 100,
                                                       expires_at=now - 1), ident[0].sign)),
    }
    for why, (k, v) in refusals.items():
        with pytest.raises(rec.RecordRejected, match=why):
            rec.validate(k, v, now)
    # a village record's signature does not make a swarm record (domains differ)
    with pytest.raises(rec.RecordRejected, match="bad signature"):
        signed = msgspec.msgpack.decode(rec.sign_swarm(r, ident[0].sign), type=rec.SignedRecord)
        forged = rec.SignedRecord(signed.body, ident[0].sign(rec.DOMAIN + key + signed.body))
        rec.validate(key, msgspec.msgpack.encode(forged), now)


def test_blocks_start_alike_in_every_thread_and_cached_steps_equal_the_whole_sequence():
    """Two villages serving a block start from the same parameters even when other threads
    draw from torch's global generator meanwhile; a block run position by position with its
    attention cache gives what it gives on the whole sequence, and so does generation."""
    import threading

    import torch

    from core.swarm.flat import to_flat
    from core.swarm.model import MODELS, build_block, build_ends, embed_at, generate_single
    from core.swarm.worker import ComputeRefused, SpanWorker

    spec = MODELS["tiny-lm"]
    built: list[np.ndarray] = []

    def build() -> None:
        for _ in range(20):
            built.append(to_flat(build_block(spec, 3)))
            torch.rand(1000)  # another user of the global generator

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(built[0], b) for b in built)
    assert not np.array_equal(built[0], to_flat(build_block(spec, 4)))
    block = build_block(spec, 3)
    x = torch.randn(2, 10, spec.hidden)
    with torch.no_grad():
        whole = block(x)
        out, cache = block.step(x[:, :4], None)
        parts = [out]
        for i in range(4, 10):
            out, cache = block.step(x[:, i:i + 1], cache)
            parts.append(out)
    assert torch.allclose(whole, torch.cat(parts, 1), atol=1e-5)
    # a server's sessions: per client and session, each position once, in order
    worker = SpanWorker(spec, None, 0.0)  # type: ignore[arg-type]
    worker.load(0, 8)
    embed, head = build_ends(spec)
    blocks = [build_block(spec, i) for i in range(8)]
    prompt = [5, 6, 7]
    want = generate_single(blocks, prompt, 8, embed=embed, head=head)
    position, new, got = 0, prompt, []
    with torch.no_grad():
        while len(got) < 8:
            h = embed_at(embed, torch.tensor([new]), position).numpy()
            for s in (0, 4):  # two spans of one worker, as two hops
                h = worker.infer(("client", "s1"), h, s, s + 4, position)
            got.append(int(head(torch.from_numpy(h[:, -1:]))[0, -1].argmax()))
            position, new = position + len(new), [got[-1]]
    assert got == want
    with pytest.raises(ComputeRefused, match="at position 10, not 3"):
        worker.infer(("client", "s1"), h, 0, 4, 3)
    with pytest.raises(ComputeRefused, match="at most 16 positions"):
        worker.infer(("client", "s2"), np.zeros((1, 17, spec.hidden), np.float32), 0, 4, 0)
    with pytest.raises(ComputeRefused, match="at position 0, not 2"):  # another client's
        worker.infer(("other", "s1"), h[:, :1], 0, 4, 2)


# -- text in and out of a model, and the ends a village keeps ------------------------------


@given(st.text(alphabet=" abcdefghijklmnopqrstuvwxyz.,?!'", min_size=1, max_size=40))
def test_text_round_trips_through_the_tiny_alphabet(text: str) -> None:
    from core.swarm import text as codec

    ids = codec.encode(text, 32)
    assert all(0 <= i < 32 for i in ids) and codec.decode(ids, 32) == text


def test_text_a_model_cannot_read_is_refused_with_the_characters_named() -> None:
    from core.swarm import text as codec

    assert codec.decode(codec.encode("Hello", 32), 32) == "hello"   # no capitals: lower case
    assert codec.decode(codec.encode("Hello 42.", 64), 64) == "Hello 42."
    with pytest.raises(codec.TextNotReadable, match="cannot read 'ß', 'ü'"):
        codec.encode("grüß", 32)
    with pytest.raises(codec.TextNotReadable, match="Nothing"):
        codec.encode("", 64)


def test_the_trained_ends_are_kept_whole_and_a_damaged_file_starts_untrained(tmp_path) -> None:
    import types

    import torch

    from core.swarm.model import MODELS, build_ends
    from core.swarm.trainer import SwarmTrainer

    spec = MODELS["tiny-lm"]
    trainer = SwarmTrainer(types.SimpleNamespace(data_dir=tmp_path), None, None, None)
    embed, head = trainer.load_ends(spec)
    assert "untrained" in trainer.ends_origin
    with torch.no_grad():
        head.out.weight.add_(1.0)  # "trained"
    trainer.save_ends(spec)
    again = SwarmTrainer(types.SimpleNamespace(data_dir=tmp_path), None, None, None)
    e2, h2 = again.load_ends(spec)
    assert "trained by this village" in again.ends_origin
    assert torch.equal(h2.out.weight, head.out.weight) and torch.equal(
        e2.positions, embed.positions)
    for damage in (b"not a zip", trainer.ends_file(spec).read_bytes()[:200]):
        trainer.ends_file(spec).write_bytes(damage)
        third = SwarmTrainer(types.SimpleNamespace(data_dir=tmp_path), None, None, None)
        _e3, h3 = third.load_ends(spec)
        assert "untrained" in third.ends_origin
        assert torch.equal(h3.out.weight, build_ends(spec)[1].out.weight)


def test_a_global_step_from_two_servers_equals_one_process_on_all_their_micro_batches() -> None:
    """Update "global" without the network: two servers of a stage each keep the gradients
    of their own micro-batches; the mean of the vectors they send (what a stage average of
    two gives) applied by each is the step one process takes on the mean gradient of all
    the micro-batches - and both hold the same parameters after it, with or without a model
    round (parameters and optimizer state) beside it, whichever ends first. Gradients that
    come in while the round runs stay for the next; a server that joins late with a fresh
    optimizer holds the stage's model after the next model round and steps like the
    others."""
    import torch

    from core.swarm.flat import to_flat
    from core.swarm.model import MODELS, build_block
    from core.swarm.worker import SpanWorker

    spec = MODELS["tiny-lm"]
    a, b = (SpanWorker(spec, None, 1e-2) for _ in range(2))  # type: ignore[arg-type]
    for w in (a, b):
        w.update = "global"
        w.load(0, 2)
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(4, spec.seq, spec.hidden, generator=g).numpy(),
                torch.randn(4, spec.seq, spec.hidden, generator=g).numpy()) for _ in range(5)]
    ref = [build_block(spec, i) for i in range(2)]
    opts = [torch.optim.Adam(r.parameters(), lr=1e-2) for r in ref]
    for full in (False, True):
        for i, (x, grad) in enumerate(batches):  # three micro-batches to a, two to b
            (a if i % 2 == 0 else b).backward(x, grad, 0, 2, train=True)
        if not full:
            assert a.grad_count == {0: 3, 1: 3} and b.grad_count == {0: 2, 1: 2}
            assert a.steps == {0: 0, 1: 0}  # nothing stepped yet
        # one process: the same blocks, the mean gradient of all five, clipped, one step
        # (summed in the servers' order: where micro-batches' gradients cancel, another
        # order of float additions moves Adam's normalised step by up to its size)
        sums: list[list[list[torch.Tensor] | None]] = [[None, None], [None, None]]
        for i, (x, grad) in enumerate(batches):
            for r in ref:
                r.zero_grad()
            h = torch.from_numpy(x)
            for r in ref:
                h = r(h)
            h.backward(torch.from_numpy(grad))
            for k, r in enumerate(ref):
                got = [p.grad.clone() for p in r.parameters()]
                have = sums[k][i % 2]
                sums[k][i % 2] = got if have is None else [
                    u.add_(v) for u, v in zip(have, got, strict=True)]
        for k, (r, o) in enumerate(zip(ref, opts, strict=True)):
            ga, gb = sums[k]
            assert ga is not None and gb is not None
            for p, u, v in zip(r.parameters(), ga, gb, strict=True):
                p.grad = (u + v) / 2 / np.float32(2.5)  # the mean of two servers' sums
            torch.nn.utils.clip_grad_norm_(r.parameters(), 1.0)
            o.step()
        tag = 1 + full  # the boundary
        for block in range(2):
            ga, gb = a.take_grads(block), b.take_grads(block)
            ma, mb = (a.take_model(block), b.take_model(block)) if full else (None, None)
            if full and block == 1:  # comes in while the round runs: kept for the next
                a.backward(*batches[0], 0, 2, train=True)
            mean = (ga + gb) / 2
            if full and block == 0:  # the model round ends first: the step follows it
                assert not a.apply_model(block, (ma + mb) / 2, tag=tag)
                assert not b.apply_model(block, (ma + mb) / 2, tag=tag)
            assert a.apply_grads(block, mean, tag=tag, keep=full)
            assert b.apply_grads(block, mean, tag=tag, keep=full)
            if full and block == 1:  # the model round ends after the step: taken again
                assert a.apply_model(block, (ma + mb) / 2, tag=tag)
                assert b.apply_model(block, (ma + mb) / 2, tag=tag)
            assert np.array_equal(to_flat(a.blocks[block]), to_flat(b.blocks[block]))
            np.testing.assert_allclose(to_flat(a.blocks[block]), to_flat(ref[block]), atol=1e-6)
    assert a.grad_count == {0: 1, 1: 1} and b.grad_count == {}  # the late one, for the next
    assert a.steps == b.steps == {0: 3, 1: 4}  # a step each, and the model rounds' versions
    # a server that joins late (its own parameters, a fresh optimizer): the model round
    # hands it the stage's model and optimizer state, its step is taken again from there,
    # and then it steps as the others do
    c = SpanWorker(spec, None, 1e-2)  # type: ignore[arg-type]
    c.update = "global"
    c.load(0, 2)
    for tag, full in ((3, True), (4, False)):
        a.backward(*batches[2], 0, 2, train=True)
        c.backward(*batches[3], 0, 2, train=True)
        ga, gc = a.take_grads(0), c.take_grads(0)
        ma, mc = a.take_model(0), c.take_model(0)
        assert a.apply_grads(0, (ga + gc) / 2, tag, keep=full)
        assert c.apply_grads(0, (ga + gc) / 2, tag, keep=full)
        if full:
            assert not np.array_equal(to_flat(a.blocks[0]), to_flat(c.blocks[0]))
            assert a.apply_model(0, (ma + mc) / 2, tag) and c.apply_model(0, (ma + mc) / 2, tag)
        assert np.array_equal(to_flat(a.blocks[0]), to_flat(c.blocks[0]))
    # a model round that ends only after the next boundary's step (a loaded machine) is
    # not applied there: setting it would undo that step on one server and not the other
    a.backward(*batches[2], 0, 2, train=True)
    c.backward(*batches[3], 0, 2, train=True)
    ga, gc = a.take_grads(0), c.take_grads(0)
    ma, mc = a.take_model(0), c.take_model(0)
    assert a.apply_grads(0, (ga + gc) / 2, 5, keep=True)
    assert c.apply_grads(0, (ga + gc) / 2, 5, keep=True)
    assert c.apply_model(0, (ma + mc) / 2, 5)  # in time on c
    a.backward(*batches[4], 0, 2, train=True)
    c.backward(*batches[4], 0, 2, train=True)
    ga, gc = a.take_grads(0), c.take_grads(0)
    assert a.apply_grads(0, (ga + gc) / 2, 6) and c.apply_grads(0, (ga + gc) / 2, 6)
    before = to_flat(a.blocks[0])
    with pytest.raises(ValueError, match="came after boundary 6's step"):
        a.apply_model(0, (ma + mc) / 2, 5)  # late on a
    assert np.array_equal(to_flat(a.blocks[0]), before)
    assert np.array_equal(to_flat(a.blocks[0]), to_flat(c.blocks[0]))
    with pytest.raises(ValueError, match="stage gradient"):
        a.apply_grads(0, np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="stage model"):
        a.apply_model(0, np.zeros(3, dtype=np.float32))
