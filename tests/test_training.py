"""Collaborative training: the pure decisions, and real villages on loopback training the digits
project together - with a Byzantine village among them, a late joiner that downloads the state,
a state server that lies, and opting out that stops training within a second."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import trio

from core.commands import Pause, Resume
from core.training.collab import Progress, boundary_after, state_source, target_reached, wanted
from core.training.service import PROTOCOL, TrainingService, state_hash
from tests.nodes import run_villages, trio_villages, trio_wait_for


def test_a_project_runs_only_when_opted_in_participating_and_allowed() -> None:
    kw = dict(participate=True, opted_in=("digits",), may_compute=True, why_not_compute="")
    assert wanted("digits", **kw) == (True, "")  # type: ignore[arg-type]
    assert wanted("other", **kw) == (False, "not opted in")  # type: ignore[arg-type]
    assert wanted("digits", **{**kw, "participate": False})[1] == \
        "paused: participation is off"  # type: ignore[arg-type]
    assert wanted("digits", **{**kw, "may_compute": False,  # type: ignore[arg-type]
                               "why_not_compute": "on battery (38%)"}) == (
        False, "paused by rule: on battery (38%)")


def test_boundaries_target_and_whose_state_to_take() -> None:
    assert boundary_after(100.0, 8.0) == (13, 104.0)
    assert boundary_after(104.0, 8.0) == (14, 112.0)  # never the boundary we are at
    peers = [Progress("a", 3, 1000, 50.0, "h"), Progress("b", 3, 1500, 50.0, "h"),
             Progress("c", 3, 9000, 50.0, "other")]
    assert target_reached(1600, peers, "h", 4096) and not target_reached(1500, peers, "h", 4096)
    assert state_source(0, "start", peers).peer_id == "a"  # behind: take the majority's
    assert state_source(3, "h", peers) is None             # at it already
    assert state_source(4, "x", peers) is None             # ahead of everyone
    assert state_source(3, "mine", [Progress("c", 3, 0, 0.0, "other")]) is None  # one voice
    assert state_source(3, "mine", peers[:2]).state_hash == "h"  # two agree: we differ


class _SignFlipper(TrainingService):
    """A Byzantine village: sends its update flipped and five times as long."""

    def _outgoing(self, update: np.ndarray) -> np.ndarray:
        return -5.0 * update


class _LyingServer(TrainingService):
    """Announces its true state's hash but serves other bytes."""

    async def _serve(self, stream, peer):  # type: ignore[no-untyped-def]
        st = self.projects["digits"]
        real = st.params
        assert real is not None
        st.params = real + 1.0
        try:
            await super()._serve(stream, peer)
        finally:
            st.params = real


TRAIN = {"participate": True, "training_period_s": 5.0, "cpu_share": 100}


@pytest.mark.timeout(400)
def test_four_villages_reach_90_percent_with_a_sign_flipper_then_opt_out_within_a_second(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with trio_villages(tmp_path, 4, **TRAIN) as nodes:
            byzantine = nodes[3]
            byzantine.training.__class__ = _SignFlipper
            honest = nodes[:3]
            await trio_wait_for(lambda: all(len(n.dht.table or ()) >= 3 for n in nodes), 60,
                                "routing tables")
            for n in nodes:
                await n.settings_service.change({"training_projects": ("digits",)})
            digits = [n.training.projects["digits"] for n in nodes]

            def good() -> bool:  # several steps in: a flipped update had time to bite
                return all((d.accuracy or 0) >= 0.90 and d.last_members >= 3 and d.epoch >= 4
                           for d in digits[:3])

            await trio_wait_for(good, 240, "honest villages at 90% test accuracy")
            for d in digits[:3]:
                assert d.rule_used == "centered_clip"
            # the sampled checks of training work: the flipper's update is not what its
            # training gives, every honest one is (trained again from the same state)
            flipper = byzantine.averaging.me
            checks = [c for n in honest for c in n.training.checks]
            assert any(p == flipper and not ok for p, ok in checks), checks
            assert all(ok for p, ok in checks if p != flipper), checks
            assert any(ok for p, ok in checks if p != flipper), checks
            for n in honest:
                if any(p == flipper for p, _ok in n.training.checks):
                    assert n.misbehaviour.get(flipper, 0) >= 1
            # the honest villages hold the same parameters
            assert len({d.hash for d in digits[:3] if d.epoch == digits[0].epoch}) == 1

            # opting out stops training within a second, and no sample is counted after
            villager = honest[0]
            t0 = time.monotonic()
            await villager.settings_service.change({"training_projects": ()})
            await trio_wait_for(lambda: "digits" not in villager.training._running, 1.0,
                                "training stopped")
            assert time.monotonic() - t0 < 1.0
            await trio.sleep(0.3)
            counted = digits[0].samples_total
            await trio.sleep(1.5)
            assert digits[0].samples_total == counted
            assert digits[0].status == "not opted in"
            view = next(v for v in villager.snapshot().training if v.project == "digits")
            assert not view.opted_in and not view.running and view.accuracy >= 0.90

            # opting in again starts the project within a second (catching up with the
            # steps it missed first), and it trains again
            t0 = time.monotonic()
            await villager.settings_service.change({"training_projects": ("digits",)})
            await trio_wait_for(lambda: "digits" in villager.training._running
                                and digits[0].status != "not opted in", 1.0, "started")
            assert time.monotonic() - t0 < 1.0
            await trio_wait_for(lambda: digits[0].samples_total > counted, 10.0,
                                "training again")
            # a pause (the governor's limits) stops it within a second, resuming restarts it
            t0 = time.monotonic()
            await villager.execute(Pause(time.time() + 3600))
            await trio_wait_for(lambda: "digits" not in villager.training._running, 1.0,
                                "paused")
            assert time.monotonic() - t0 < 1.0
            assert digits[0].status.startswith("paused"), digits[0].status
            await trio.sleep(0.3)
            counted = digits[0].samples_total
            await trio.sleep(1.5)
            assert digits[0].samples_total == counted
            await villager.execute(Resume())
            await trio_wait_for(lambda: "digits" in villager.training._running, 1.5,
                                "running after the pause")
            # (a village that rejoins mid-step adds nothing once the collaboration has the
            # step's target batch: it trains from the next step on)
            await trio_wait_for(lambda: digits[0].samples_total > counted, 15.0,
                                "training after the pause")

    run_villages(main, timeout=340)


@pytest.mark.timeout(300)
def test_a_late_village_downloads_the_state_and_a_lying_server_is_refused(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with trio_villages(tmp_path, 4, **TRAIN) as nodes:
            liar, a, b, late = nodes
            liar.training.__class__ = _LyingServer
            assert liar.host is not None  # the handler was bound when the node started
            liar.host.set_handler(PROTOCOL, liar.training._serve)
            await trio_wait_for(lambda: all(len(n.dht.table or ()) >= 3 for n in nodes), 60,
                                "routing tables")
            for n in (liar, a, b):
                await n.settings_service.change({"training_projects": ("digits",)})
            ours = [n.training.projects["digits"] for n in (liar, a, b)]
            await trio_wait_for(lambda: all(d.epoch >= 2 for d in ours), 120, "two steps")
            await late.settings_service.change({"training_projects": ("digits",)})
            joined = late.training.projects["digits"]
            # it catches up: the same step and the same parameters as the collaboration
            await trio_wait_for(lambda: joined.epoch >= 2 and joined.epoch == ours[1].epoch
                                and joined.hash == ours[1].hash, 60, "the late village caught up")
            assert joined.hash == state_hash(joined.params)  # type: ignore[arg-type]

            # the liar announces its true hash and serves other bytes: refused, recorded
            lies = ours[0]
            for _ in range(3):
                before = late.misbehaviour.get(liar.averaging.me, 0)
                got = await late.training._download(joined, Progress(
                    liar.averaging.me, lies.epoch, 0, 0.0, lies.hash))
                assert got is None
                if late.misbehaviour.get(liar.averaging.me, 0) > before:
                    break
            assert late.misbehaviour.get(liar.averaging.me, 0) >= 1
            assert joined.hash == ours[1].hash or joined.epoch != ours[1].epoch  # untouched

    run_villages(main, timeout=240)
