"""Service levels on real villages (libp2p hosts on loopback, real torch, real ledgers): three
servers each hold all of tiny-lm's blocks, three client villages use them. While everyone is
honest, a forward gives the same answer at basic, checked and assured, the servers' work is
checked with parameters fetched from the other servers, and the gateway gives an outside
client the same completion at every level. Their verified credit backs the stake each then
offers; one server starts returning wrong outputs. At `assured` every answer a client used is
still right (the cheat's half disagreed, was recomputed, and the cheat was banned and
slashed); at `basic` and `checked` the cheat is caught by a sampled check, slashed and routed
around; each failed check goes to a referee, whose signed ruling slashes the cheat's stake in
its own ledger and pays the challenger; a false challenge costs the challenger a fee."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import trio

from app import gateway
from core.ledger import levels
from core.swarm import commit, throughput, wire
from core.swarm.challenge import Evidence
from core.swarm.client import SwarmClient
from core.swarm.model import MODELS, build_ends, synthetic_batch
from tests.nodes import run_villages, trio_villages, trio_wait_for

SPEC = MODELS["tiny-lm"]


def _post(url: str, body: dict, key: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
STAKE = 0.5  # credits; a few forwards of 32 samples earn it (0.01 a sample)


@pytest.mark.timeout(400)
def test_a_cheat_is_caught_slashed_and_routed_around_at_each_level(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throughput, "measure_compute",
                        lambda spec, device="cpu", **_: throughput.ComputeSpeed(400.0, 100.0))
    # the levels' minimum stake, scaled to what a test's few forwards earn
    monkeypatch.setattr(levels, "MIN_STAKE", {"basic": 0.0, "checked": STAKE,
                                              "assured": STAKE})

    async def main() -> None:
        async with trio_villages(tmp_path, 6, participate=True) as nodes:
            c1, c2, c3, *servers = nodes
            cheat = servers[2]
            await trio_wait_for(lambda: all(len(n.dht.table or ()) >= 5 for n in nodes), 60,
                                "routing tables")
            for s in servers:  # no training: every server holds the same parameters
                await s.settings_service.change({"swarm_serve": True, "swarm_max_blocks": 8,
                                                 "swarm_lr": 0.0})
            ids = {s.averaging.me for s in servers}
            embed, _head = build_ends(SPEC)
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                x = embed(synthetic_batch(SPEC, 32, g)[0]).numpy()

            def client(node, level: str) -> SwarmClient:
                # on loopback every village shares one network: assured tells servers
                # apart by village here (by network in the product)
                return SwarmClient(node.ctx, node.dht, node.ledger, SPEC, level=level,
                                   distinct="village")

            basic = [client(c1, "basic"), client(c2, "basic"), client(c3, "basic")]

            async def all_serve() -> bool:
                for b in basic:
                    await b.refresh()
                return all(b.coverage() == [3] * SPEC.blocks for b in basic)

            with trio.fail_after(150):
                while not await all_serve():
                    await trio.sleep(1.0)
            # -- honest: checks pass, with other servers' parameters; credit is earned
            outs = []
            for b in basic:
                for _ in range(9):
                    outs.append((await b.forward(x))[0])
                assert b.stats.checks_failed == 0 and b.stats.checks_passed >= 3
                assert b.stats.independent_checks == b.stats.checks_passed
                assert set(b.stats.per_server) == ids
            want = outs[0]
            assert all(np.abs(o - want).max() < 1e-4 for o in outs)
            for c in (c1, c2, c3):
                await c.ledger.settle_all()
            for s in servers:
                await trio_wait_for(lambda s=s: bool(s.ledger.ledger.backing(s.averaging.me)),
                                    20, "verified credit")
                await s.settings_service.change({"swarm_stake": STAKE})
            # -- the same answer at every level from an honest swarm (one forward)
            for level in ("checked", "assured"):
                cl = client(c1, level)
                await cl.refresh()
                for sid in ids:
                    assert c1.ledger.stakes.stake(sid) == pytest.approx(STAKE), sid
                got, hops = await cl.forward(x)
                assert np.abs(got - want).max() < 1e-4, level
                assert cl.stats.checks_failed == 0 and hops and hops[0].commit
            # -- the gateway: an outside client gets the same completion at every level
            token = trio.lowlevel.current_trio_token()

            def complete(prompt: str, tokens: int, level: str) -> dict:
                return trio.from_thread.run(c1.swarm_trainer.complete, prompt, tokens, level,
                                            "village", trio_token=token)

            key = gateway.new_key(c1.ctx.data_dir)
            gw = gateway.Gateway(complete, lambda: gateway.load_keys(c1.ctx.data_dir),
                                 SPEC.name, "127.0.0.1", 0).start()
            try:
                texts = {}
                for level in levels.LEVELS:
                    status, got = await trio.to_thread.run_sync(
                        _post, gw.url + "/completions",
                        {"prompt": "the ", "max_tokens": 3, "level": level}, key)
                    assert status == 200, got
                    texts[level] = got["choices"][0]["text"]
                    receipt = got["grove"]["receipt"]
                    assert got["grove"]["level"] == level and got["usage"]["completion_tokens"] == 3
                    assert {v["village"] for v in receipt["served"]} <= ids
                    hops = sum(v["hops"] for v in receipt["served"])
                    assert hops == 3 and receipt["checks_failed"] == 0
                    assert receipt["commitments_verified"] == hops * (2 if level == "assured"
                                                                      else 1)
                assert len(set(texts.values())) == 1 and len(texts["basic"]) == 3, texts
                refused = [({"prompt": "the "}, "not-a-key", 401),
                           ({"prompt": "the ", "level": "gold"}, key, 400),
                           ({"prompt": "the ", "model": "other"}, key, 404),
                           ({"prompt": "\u20ac"}, key, 400),
                           ({"prompt": "the ", "temperature": 0.7}, key, 400)]
                for body, k, code in refused:
                    status, got = await trio.to_thread.run_sync(
                        _post, gw.url + "/completions", body, k)
                    assert status == code and got["error"]["message"], (body, got)
            finally:
                gw.stop()
            # -- one server starts lying about its outputs (its commitments stay signed)
            honest_forward = cheat.swarm.worker.forward

            def lying(x_, start, end):  # right shape, finite, and wrong
                out, versions, digests = honest_forward(x_, start, end)
                return out + np.float32(0.25), versions, digests

            cheat.swarm.worker.forward = lying
            cid = cheat.averaging.me
            # assured (on c1): no wrong answer is used; the cheat's disagreement is settled
            # by recomputation, and it is banned and slashed
            assured = client(c1, "assured")
            await assured.refresh()
            for _ in range(6):
                got, _hops = await assured.forward(x)
                assert np.abs(got - want).max() < 1e-4
            assert assured.stats.disagreements >= 1 and assured.stats.checks_failed >= 1
            assert assured.reputation(cid).failed >= 1
            assert c1.ledger.stakes.stake(cid) < STAKE
            assert not levels.may_serve(assured.reputation(cid), "assured")
            peer, evidence, why = assured.stats.evidence[0]
            work = commit.open_signed(evidence, c1.ctx.clock.wall())
            assert peer == work.server == cid and "differs" in why
            used = assured.stats.per_server.get(cid, 0)
            for _ in range(3):
                got, _hops = await assured.forward(x)
                assert np.abs(got - want).max() < 1e-4
            assert assured.stats.per_server.get(cid, 0) == used  # routed around
            # basic (on c3, which has not seen it caught): any server may take the work; the
            # cheat, still new to c3, is checked often: caught, slashed in c3's view, and
            # not asked again
            late = client(c3, "basic")
            late.assurance.reps = dict(basic[2].assurance.reps)  # what c3 saw so far
            await late.refresh()
            for _ in range(20):
                await late.forward(x)
                if late.stats.checks_failed:
                    break
            assert late.stats.checks_failed >= 1 and late.reputation(cid).failed >= 1
            assert c3.ledger.stakes.stake(cid) < STAKE
            used = late.stats.per_server.get(cid, 0)
            for _ in range(4):
                got, _hops = await late.forward(x)
                assert np.abs(got - want).max() < 1e-4
            assert late.stats.per_server.get(cid, 0) == used
            # checked (on c2, which has not seen the cheat caught): a sampled check catches
            # it before long; it is slashed in c2's view and not asked again
            checked = client(c2, "checked")
            await checked.refresh()
            assert c2.ledger.stakes.stake(cid) == pytest.approx(STAKE)
            for _ in range(20):
                await checked.forward(x)
                if checked.stats.checks_failed:
                    break
            assert checked.stats.checks_failed >= 1
            assert any(cid[-8:] in b and "check failed" in b for b in checked.stats.bans)
            assert c2.ledger.stakes.stake(cid) < STAKE
            used = checked.stats.per_server.get(cid, 0)
            for _ in range(4):
                got, _hops = await checked.forward(x)
                assert np.abs(got - want).max() < 1e-4
            assert checked.stats.per_server.get(cid, 0) == used
            # the honest servers were never failed
            for b in (*basic, late, assured, checked):
                assert all(b.reputation(sid).failed == 0 for sid in ids - {cid})
            # each failed check was taken to a referee - a third village closest to the
            # work's key - which recomputed it and upheld it: the cheat's stake is slashed in
            # its own ledger, the challenger is paid a share, both recorded once
            await trio_wait_for(lambda: len(c2.challenges.rulings) >= 1, 90,
                                "c2's challenge ruled")
            ruling = c2.challenges.rulings[0]
            assert ruling.upheld and ruling.server == cid and ruling.challenger == c2.ctx.peer_id
            assert ruling.referee not in (cid, c2.ctx.peer_id)
            assert ruling.stake == pytest.approx(STAKE)
            await trio_wait_for(lambda: any(
                r.work_key == ruling.work_key for r in cheat.challenges.rulings), 30,
                "the cheat told of the ruling")
            slash = levels.SLASH_SHARE * STAKE
            mine = {e["kind"]: e for e in c2.ledger.ledger.events() if e["kind"] == "challenge"}
            assert mine["challenge"]["credits"] == pytest.approx(slash * levels.CHALLENGER_SHARE)
            assert mine["challenge"]["status"] == "verified"
            taken = [e for e in cheat.ledger.ledger.events() if e["kind"] == "stake"]
            assert taken and all(e["credits"] == pytest.approx(-slash) for e in taken)
            assert len(taken) == len(cheat.challenges.rulings)  # once per piece of work
            assert c2.ledger.ledger.verify().ok and cheat.ledger.ledger.verify().ok
            # a false challenge - an honest server's right answer called wrong - is rejected
            # by the referee, and costs the challenger the fee, paid to the server
            honest = next(iter(ids - {cid}))
            fresh = client(c2, "basic")
            fresh.check_rate = 0.0
            await fresh.refresh()
            hops = []
            while not hops:
                _out, taken_hops = await fresh.forward(x)
                hops = [h for h in taken_hops if h.server.peer_id == honest]
            hop = hops[0]
            right = await fresh._hop("forward", hop.server, hop.start, hop.end, hop.inputs,
                                     check=False, hops=(again := []))
            false = Evidence(honest, again[0].commit, wire.encode_tensor(hop.inputs),
                             wire.encode_tensor(right))
            before = c2.ledger.ledger.balance().verified
            rejected = await c2.challenges.challenge(false)
            assert rejected is not None and not rejected.upheld, c2.challenges.last_error
            after = c2.ledger.ledger.balance().verified
            assert after == pytest.approx(before - levels.FALSE_CHALLENGE_FEE)
            server = next(n for n in servers if n.averaging.me == honest)
            await trio_wait_for(lambda: any(
                e["kind"] == "challenge" and e["credits"] > 0
                for e in server.ledger.ledger.events()), 30, "the fee paid to the server")
            # evidence that is not what the commitment names is refused, and counted against
            # whoever sent it; nothing is ruled
            swapped = Evidence(honest, again[0].commit, wire.encode_tensor(hop.inputs),
                               wire.encode_tensor(right + np.float32(1.0)))
            assert await c2.challenges.challenge(swapped) is None
            assert "not what the commitment names" in c2.challenges.last_error

    run_villages(main, timeout=380)
