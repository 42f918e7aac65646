"""The demo projects' data and model, and the attack harness: deterministic, sharded exactly,
and attacks that do what they say."""

from __future__ import annotations

import pytest
import torch

from bench.attacks import ATTACKS, IPM_EPSILON, alie_z, attack, flip_labels
from core.training.demo import accuracy, digits_model, load_digits, synthetic


def test_digits_load_split_and_shard_deterministically() -> None:
    a, b = load_digits(3), load_digits(3)
    assert a.x_train.shape == (1437, 64) and a.x_test.shape == (360, 64)
    assert torch.equal(a.y_test, b.y_test) and not torch.equal(a.y_test, load_digits(4).y_test)
    assert float(a.x_train.max()) <= 1.0 and set(a.y_train.tolist()) == set(range(10))
    shards = [a.shard(i, 16) for i in range(16)]
    assert sum(len(y) for _, y in shards) == len(a.y_train)  # every sample in one shard
    with pytest.raises(ValueError):
        a.shard(16, 16)


def test_the_model_is_the_same_in_every_village_and_starts_at_chance() -> None:
    one, two = digits_model(7), digits_model(7)
    assert all(torch.equal(p, q) for p, q in zip(one.parameters(), two.parameters(),
                                                strict=True))
    data = load_digits(0)
    assert accuracy(one, data.x_test, data.y_test) < 0.3


def test_synthetic_project_has_the_size_asked_for() -> None:
    data, model = synthetic(1, 10_001, samples=100)
    assert sum(p.numel() for p in model.parameters()) == 10_001
    assert data.x_train.shape == (80, 10_000)


def test_attacks() -> None:
    gen = torch.Generator().manual_seed(0)
    honest = torch.randn(13, 50, generator=gen) + 1.0
    own = torch.randn(3, 50, generator=gen) + 1.0
    assert alie_z(16, 3) == pytest.approx(0.3186, abs=1e-3)  # Baruch et al.'s z for n=16, f=3
    alie = attack("alie", own, honest, gen)
    assert torch.allclose(alie[0], honest.mean(0) - alie_z(16, 3) * honest.std(0))
    ipm = attack("ipm", own, honest, gen)
    # enough IPM villages turn the mean against the honest direction
    mean = torch.cat([honest, ipm]).mean(0)
    assert IPM_EPSILON * 3 > 13 and float(mean @ honest.mean(0)) < 0
    assert torch.equal(attack("sign_flip", own, honest, gen).sign(), -own.sign())
    assert float(attack("gaussian", own, honest, gen).std()) > 5 * float(honest.pow(2)
                                                                         .mean().sqrt())
    assert torch.equal(flip_labels(torch.tensor([0, 9, 3]), 10), torch.tensor([9, 0, 6]))
    assert set(ATTACKS) == {"sign_flip", "scaled", "gaussian", "alie", "ipm", "label_flip"}
    with pytest.raises(ValueError, match="unknown attack"):
        attack("bitflip", own, honest, gen)


def test_one_identity_or_a_small_ring_cannot_make_a_project_adopt_its_state() -> None:
    """Signed is not true: a claim of step 10^9, or of a step just ahead with a state no one
    else holds, moves no one; the honest villages' state is still adopted by newcomers."""
    from core.training.collab import Progress, state_source

    honest = [Progress(f"h{i}", 10, 100, 50.0, "good") for i in range(3)]
    liar = Progress("z", 10**9, 10**12, 1e8, "evil")
    ring = [Progress(f"s{i}", 10**9, 0, 1.0, "evil") for i in range(3)]
    ahead = Progress("y", 11, 0, 1.0, "evil")
    for me_epoch, me_hash in ((10, "good"), (0, "start"), (9, "good")):
        for peers in ([*honest, liar], honest + ring[:2], [*honest, ahead],
                      [*honest[:1], liar, ahead]):
            got = state_source(me_epoch, me_hash, peers)
            assert got is None or got.state_hash == "good", (me_epoch, peers, got)
    assert state_source(0, "start", [*honest, liar]).state_hash == "good"  # newcomers join
    assert state_source(9, "good", honest + ring[:2]).epoch == 10  # laggards catch up
    # two villages that really stepped are followed at once; a ring larger than the honest
    # villages (and us) wins on numbers alone...
    stepped = [Progress("h0", 11, 0, 1.0, "next"), Progress("h1", 11, 0, 1.0, "next")]
    assert state_source(10, "good", stepped + honest[2:]).epoch == 11
    big_ring = [Progress(f"s{i}", 11, 0, 1.0, "evil") for i in range(6)]
    assert state_source(10, "good", honest + big_ring).state_hash == "evil"
    # ...but not once a village we trust is in the project: then only trusted words count
    trusted = frozenset({"h0", "h1"})
    for me_epoch, me_hash in ((10, "good"), (0, "start")):
        got = state_source(me_epoch, me_hash, honest + big_ring + [liar], trusted=trusted)
        assert got is None or got.state_hash == "good", got
    assert state_source(0, "start", honest + big_ring, trusted=trusted).state_hash == "good"
    assert state_source(10, "good", stepped + big_ring, trusted=trusted).state_hash == "next"
    # trust in villages that are not in the project changes nothing
    assert state_source(10, "good", honest + big_ring,
                        trusted=frozenset({"elsewhere"})).state_hash == "evil"


def test_a_members_training_can_be_reproduced_and_a_false_update_cannot_pass() -> None:
    """The sampled check of training work: another village trains a member's steps again
    from the same state (its data share and batches derive from its id and the step) and
    gets its update; noise, a scaled update, fewer steps than claimed, or a claim past the
    step's target do not pass."""
    import numpy as np

    from core.training import check
    from core.training.collab import PROJECTS

    spec = PROJECTS["digits"]
    data = load_digits(spec.seed)
    start = torch.cat([p.detach().reshape(-1) for p in digits_model(spec.seed).parameters()]
                      ).numpy()

    def train(peer: str, epoch: int, steps: int) -> np.ndarray:
        keep = check.shard(peer, len(data.y_train), spec.shard_share)
        sgd = check.LocalSGD(digits_model(spec.seed), data.x_train[keep], data.y_train[keep],
                             start, lr=spec.local_lr, batch=spec.batch,
                             seed=check.batch_seed(peer, epoch))
        for _ in range(steps):
            sgd.step()
        return sgd.update()

    honest = train("village-a", 5, 20)
    assert check.verdict(honest, train("village-a", 5, 20)) == (True, "")
    for false in (train("village-a", 5, 10), train("village-a", 6, 20),
                  train("village-b", 5, 20), honest * 1.1, -honest,
                  np.random.default_rng(0).normal(0, float(honest.std()), honest.size)):
        ok, why = check.verdict(false.astype(np.float32), honest)
        assert not ok and "differs from the training it claims" in why
    # no training: weight 1, a zero update; an update far too large is sent as zeros
    assert check.verdict(np.zeros_like(honest), np.zeros_like(honest))[0]
    assert not check.verdict(honest, np.zeros_like(honest))[0]
    assert check.verdict(np.zeros_like(honest), honest * 1e6)[0]
    assert check.steps_claimed(1.0, 32, 1024) == (0, "")
    assert check.steps_claimed(640.0, 32, 1024) == (20, "")
    assert "whole number" in check.steps_claimed(650.0, 32, 1024)[1]
    assert "target" in check.steps_claimed(32.0 * 40, 32, 1024)[1]
    assert check.shard("a", 100, 0.5).tolist() == check.shard("a", 100, 0.5).tolist()
    assert check.shard("a", 100, 0.5).tolist() != check.shard("b", 100, 0.5).tolist()
