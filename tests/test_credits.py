"""Credits between real villages: SWARM and training work for each other ends in the same
doubly-signed receipts in both ledgers; a server caught by a sampled check loses the credit
and the consumer's trust."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trio

from core.dht import records as rec
from core.ledger import policy
from core.swarm.client import PipelineFailed, SwarmClient
from core.swarm.model import MODELS, build_ends, synthetic_batch
from core.training.service import TrainingService
from tests.nodes import run_villages, trio_villages, trio_wait_for

SPEC = MODELS["tiny-lm"]


def _wires(node) -> dict[tuple[str, str, str, int], bytes]:
    import sqlite3

    with sqlite3.connect(node.ledger.ledger.path) as c:
        return {(w, cons, k, s): bytes(wire) for w, cons, k, s, wire in c.execute(
            "SELECT worker, consumer, kind, seq, wire FROM receipts")}


@pytest.mark.timeout(300)
def test_swarm_and_training_work_end_in_matching_verified_receipts(tmp_path: Path) -> None:
    async def main() -> None:
        async with trio_villages(tmp_path, 2, participate=True, training_period_s=4.0) as nodes:
            a, b = nodes
            await trio_wait_for(lambda: all(len(n.dht.table or ()) >= 1 for n in nodes), 60,
                                "routing tables")
            # a serves every block to b; both train digits (each takes the other's samples)
            await a.settings_service.change({"swarm_serve": True, "training_projects": ("digits",)})
            await b.settings_service.change({"training_projects": ("digits",)})
            await trio_wait_for(lambda: a.swarm.state == "online", 60, "a serving")
            client = SwarmClient(b.ctx, b.dht, b.ledger, SPEC, check_rate=0.5)
            with trio.fail_after(60):  # a is "online" before its record saying so is put
                while not client.servers:
                    await client.refresh()
                    if not client.servers:
                        await trio.sleep(1.0)
            embed, head = build_ends(SPEC)
            opt = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=3e-3)
            g = torch.Generator().manual_seed(0)
            for _ in range(10):
                await client.train_step(*synthetic_batch(SPEC, 8, g), embed, head, opt)
            assert client.stats.checks_passed > 0 and client.stats.checks_failed == 0
            digits = [n.training.projects["digits"] for n in nodes]
            await trio_wait_for(lambda: all(d.epoch >= 3 and d.last_members == 2
                                            for d in digits), 120, "two steps together")
            # settle now rather than at the next 30 s round (which may have settled some of
            # it already: what counts is the receipts both hold, checked below)
            await b.ledger.settle_all()   # b pays a for SWARM (and training)
            await a.ledger.settle_all()   # a pays b for training
            wa, wb = _wires(a), _wires(b)
            assert wa == wb and len(wa) >= 2          # the same receipts, byte for byte
            kinds = {(k[0], k[2]) for k in wa}
            assert (a.averaging.me, "swarm") in kinds and (b.averaging.me, "training") in kinds
            for n in nodes:
                assert n.ledger.ledger.verify().ok
            bal_a = a.ledger.ledger.balance()
            # a's SWARM work passed sampled checks: verified at once; 8 samples per hop
            assert bal_a.by_kind.get("swarm", 0) > 0
            served = sum(u for (p, k), u in a.ledger.served.items() if k == "swarm")
            assert bal_a.by_kind["swarm"] == pytest.approx(
                policy.credits("swarm", served), rel=0.5)
            # b's training work: a trained b's steps again from the same state and got b's
            # update (a sampled check of training work); no honest update failed one
            assert any(p == b.averaging.me and ok for p, ok in a.training.checks)
            assert all(ok for n in nodes for _p, ok in n.training.checks)
            # training credit is verified work: a pays only the updates its checks trained
            # again, so b's training credit is verified at once, none of it pending
            training = [e for e in b.ledger.ledger.events() if e["kind"] == "training"]
            assert training and all(e["status"] == "verified" for e in training)
            assert b.ledger.ledger.balance().by_kind.get("training", 0) > 0
            await trio_wait_for(lambda: a.snapshot().credits.balance > 0, 10, "the view")
            assert any(e.kind == "swarm" and e.status == "verified"
                       for e in a.snapshot().credits.events)
            # b's trust view, on the wire: it vouches for a, whose work passed b's checks
            await trio_wait_for(lambda: bool(b.ledger._scores), 10, "b's scores")
            assert a.averaging.me in await b.trust.refresh()
            a.dht.store.records.pop(rec.trust_key(b.averaging.me), None)
            view = await a.dht.get_record(rec.trust_key(b.averaging.me), 1,
                                          owner=b.averaging.me)
            assert view is not None and dict(view.record.vouches) == {a.averaging.me: 1.0}
            assert a.averaging.me in b.ledger.trusted

    run_villages(main, timeout=240)



@pytest.mark.timeout(200)
def test_a_server_caught_returning_wrong_results_loses_the_credit_and_trust(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with trio_villages(tmp_path, 2, participate=True) as nodes:
            cheat, b = nodes
            await trio_wait_for(lambda: all(len(n.dht.table or ()) >= 1 for n in nodes), 60,
                                "routing tables")
            await cheat.settings_service.change({"swarm_serve": True})
            await trio_wait_for(lambda: cheat.swarm.state == "online", 60, "serving")
            worker = cheat.swarm.worker
            honest_forward = worker.forward

            def lazy(x, start, end):  # right shape, finite, and wrong
                out, versions, digests = honest_forward(x, start, end)
                return out + np.float32(0.25), versions, digests

            worker.forward = lazy
            client = SwarmClient(b.ctx, b.dht, b.ledger, SPEC, check_rate=1.0)
            await client.refresh()
            embed, head = build_ends(SPEC)
            opt = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=1e-3)
            # banned by this client's balancer, or (once the ledger has scored the failed
            # check) distrusted by the node: either way the cheat is not asked again
            with pytest.raises(PipelineFailed, match="banned|distrusted"):
                await client.train_step(*synthetic_batch(SPEC, 8, torch.Generator()),
                                        embed, head, opt)
            assert client.stats.checks_failed >= 1
            assert any("check failed" in x for x in client.stats.bans)
            assert b.misbehaviour.get(cheat.averaging.me, 0) >= 1
            await b.ledger.settle_all()
            events = cheat.ledger.ledger.events()
            assert events and all(e["status"] == "rejected" for e in events)
            assert "check failed" in events[0]["reason"]
            assert cheat.ledger.ledger.balance().verified == 0
            await trio_wait_for(lambda: bool(b.ledger.ledger.scores()), 5, "the score")
            passed, failed, reason = b.ledger.ledger.scores()[cheat.averaging.me]
            assert failed >= 1 and passed == 0 and "differs" in reason
            # nothing of its work was accepted: no receipt, no trust from b
            trust = policy.global_trust(b.ledger.ledger.received(), [b.averaging.me])
            assert trust.get(cheat.averaging.me, 0.0) == 0.0

    run_villages(main, timeout=170)


@pytest.mark.timeout(120)
def test_a_damaged_ledger_pauses_crediting_visibly_and_the_node_runs_on(
        tmp_path: Path) -> None:
    from core.snapshot import status_line

    data = tmp_path / "v0" / "data"
    data.mkdir(parents=True)
    garbage = b"SQLite format 3\x00" + bytes(range(256)) * 64
    (data / "ledger.db").write_bytes(garbage)

    async def main() -> None:
        async with trio_villages(tmp_path, 2, participate=True) as nodes:
            a = nodes[0]
            await trio_wait_for(lambda: bool(a.snapshot().credits.paused), 20, "paused")
            snap = a.snapshot()
            assert "crediting paused" in snap.credits.paused
            assert str(data / "ledger.db") in snap.credits.paused
            assert "credits: crediting paused" in status_line(snap)
            assert (data / "ledger.db").read_bytes() == garbage  # kept as it was
            # the village still works: it talks to the other one
            await trio_wait_for(lambda: len(a.dht.table or ()) >= 1, 30, "a peer")

    run_villages(main, timeout=90)


def test_strangers_fill_at_most_half_a_servers_queue_once_it_trusts_someone() -> None:
    from core.ledger.policy import queue_room

    assert queue_room("x", frozenset(), 16) == 16            # trusting no one yet: all alike
    assert queue_room("x", frozenset({"t"}), 16) == 8        # a stranger: half
    assert queue_room("t", frozenset({"t"}), 16) == 16       # a trusted village: all of it
    assert queue_room("x", frozenset({"t"}), 1) == 1         # never shut out entirely


class _Inflator(TrainingService):
    """Trains honestly and claims three times the samples it trained on."""

    def _train_locally(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        update, samples = super()._train_locally(*args, **kwargs)
        return update, samples * 3


@pytest.mark.timeout(240)
def test_training_credit_is_paid_only_for_work_a_check_reproduced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two villages train digits together; one claims samples it did not compute. While no
    check runs, no one is paid for training at all (an unchecked claim is not credit). Then
    the honest village's checks train the inflator's steps again - as many as its claim - and
    never match: it is never paid, its claims are rejected with the reason, and it is counted
    as misbehaving. The honest village's work passes the inflator's checks and is paid,
    verified at once."""
    from core.training import service as training_service

    async def main() -> None:
        async with trio_villages(tmp_path, 2, participate=True, training_period_s=4.0,
                                 cpu_share=100) as nodes:
            honest, liar = nodes
            liar.training.__class__ = _Inflator
            await trio_wait_for(lambda: all(len(n.dht.table or ()) >= 1 for n in nodes), 60,
                                "routing tables")
            monkeypatch.setattr(training_service, "CHECKS_PER_ROUND", 0)
            for n in nodes:
                await n.settings_service.change({"training_projects": ("digits",)})
            digits = [n.training.projects["digits"] for n in nodes]
            await trio_wait_for(lambda: all(d.epoch >= 2 and d.last_members == 2
                                            for d in digits), 120, "two steps together")
            await honest.ledger.settle_all()
            await liar.ledger.settle_all()
            for n in nodes:  # both served training; neither was paid for unchecked work
                assert not [e for e in n.ledger.ledger.events() if e["kind"] == "training"]
            monkeypatch.setattr(training_service, "CHECKS_PER_ROUND", 2)
            lid, hid = liar.averaging.me, honest.averaging.me
            await trio_wait_for(lambda: sum(1 for p, _ok in honest.training.checks
                                            if p == lid) >= 2
                                and any(p == hid for p, _ok in liar.training.checks), 150,
                                "two checks of the inflator's work")
            assert all(not ok for p, ok in honest.training.checks if p == lid)
            assert all(ok for p, ok in liar.training.checks if p == hid)
            assert honest.misbehaviour.get(lid, 0) >= 1
            await honest.ledger.settle_all()
            await liar.ledger.settle_all()
            paid = [e for e in liar.ledger.ledger.events() if e["kind"] == "training"]
            assert paid and all(e["status"] == "rejected" for e in paid), paid
            assert "sampled check failed" in paid[0]["reason"]
            assert liar.ledger.ledger.balance().by_kind.get("training", 0) == 0
            earned = [e for e in honest.ledger.ledger.events() if e["kind"] == "training"]
            assert earned and all(e["status"] == "verified" for e in earned), earned

    run_villages(main, timeout=220)
