"""The training service: runs the projects this village opted in to, within the governor's
limits, and serves its state to villages that join (core.training.state).

Per project, one step at a time (see core.training.collab): local training in a worker thread
that passes the compute gate between batches (so pause, battery and schedule rules park it, and
a stop ends it within a batch); progress published as a signed DHT record every second and
peers' progress read (core.training.progress); at the step's boundary the update is averaged
with the project's rule (core.robust through the averaging service) and applied. torch is
imported only when needed.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.compute_pack import require_torch
from core.memory import MemoryRefused
from core.snapshot import TrainingView
from core.training import check
from core.training.collab import (
    PROJECTS,
    Progress,
    ProjectSpec,
    boundary_after,
    target_reached,
    wanted,
)
from core.training.progress import ProgressBoard
from core.training.state import PROTOCOL, StateTransfer, state_hash

if TYPE_CHECKING:
    from core.ports import AdmissionPort, ServiceContext
    from core.settings_schema import Settings

log = logging.getLogger(__name__)

MIN_GATHER, MAX_GATHER = 2.0, 2.5  # s after a boundary to form the averaging group
ROUND_SHARE = 0.9           # of the period, by which the step's averaging must be over
POLL = 2.0                  # s between checks of whether a project should run, besides a
                            # settings change or a governor decision (those wake it at once)
MAX_UPDATE_NORM = check.MAX_UPDATE_NORM  # larger is no honest step: not sent, not kept
CHECKS_PER_ROUND = 2        # members whose update each village trains again per round
CHECKS_KEPT = 100           # recent check outcomes kept for the view
TRAIN_NEED_BYTES = 64 * 2**20  # device memory a digits step needs, with room to spare
MODEL_COPIES = 6  # the parameters, gradients, optimizer state, the step's update and center
MEMORY_RETRY = 30.0  # s a project waits before asking the RAM cap again


@dataclass
class ProjectState:
    """One project in this village: what the tray and `grove train` show."""

    spec: ProjectSpec
    rule: str = ""
    status: str = "not opted in"
    epoch: int = 0
    params: np.ndarray | None = None   # the collaboration's parameters at `epoch`
    hash: str = ""
    samples_step: int = 0              # towards the next step
    samples_total: int = 0             # contributed since the node started
    samples_per_second: float = 0.0
    peers: dict[str, Progress] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)
    accuracy: float | None = None
    last_members: int = 0
    rule_used: str = ""
    rule_note: str = ""
    last_error: str = ""
    prev_aggregate: np.ndarray | None = None
    seq: int = 0
    device: str = ""                   # where the last step trained, and why

    def set_params(self, params: np.ndarray, epoch: int) -> None:
        """New parameters: samples now count towards the step after `epoch` (from zero, or
        a progress record would carry the last step's samples under the new hash)."""
        self.params = np.ascontiguousarray(params, dtype=np.float32)
        self.hash = state_hash(self.params)
        self.epoch = epoch
        self.samples_step = 0


class TrainingService(StateTransfer):
    """Trains the projects this village opted into: `dht` holds progress records and the
    participants directory, `averager` averages updates, `admission` (the governor) admits
    compute, `credits` (the ledger) is told of the work exchanged."""

    def __init__(self, ctx: ServiceContext, dht: Any, averager: Any, admission: AdmissionPort,
                 credits: Any) -> None:
        self.ctx, self.directory, self.averager = ctx, dht, averager
        self.progress = ProgressBoard(ctx, dht)  # ours published, the others' read
        self.admission, self.credits = admission, credits
        self.projects = {name: ProjectState(spec) for name, spec in PROJECTS.items()}
        self._running: dict[str, trio.CancelScope] = {}
        self._stops: dict[str, threading.Event] = {}
        self._models: dict[str, Any] = {}
        self.checks: list[tuple[str, bool]] = []  # (member, passed): our recent checks

    def views(self, settings: Settings) -> tuple[TrainingView, ...]:
        """Each project as the snapshot shows it."""
        return tuple(TrainingView(
            name, st.spec.title, name in settings.training_projects, name in self._running,
            st.status, settings.training_rule or st.spec.rule, st.rule_used, st.rule_note,
            st.epoch, st.samples_total, round(st.samples_per_second, 1), len(st.peers),
            st.last_members, st.accuracy, st.last_error, st.device,
            sum(1 for _p, ok in self.checks if ok), sum(1 for _p, ok in self.checks if not ok))
            for name, st in self.projects.items())

    # -- what the village wants -----------------------------------------------------------
    def _wanted(self, name: str) -> tuple[bool, str]:
        s = self.ctx.settings
        d = self.admission.decision
        return wanted(name, participate=s.participate, opted_in=s.training_projects,
                      may_compute=d.may_compute, why_not_compute=d.reason)

    async def run(self) -> None:
        host = self.ctx.transport
        host.set_handler(PROTOCOL, self._serve)
        async with trio.open_nursery() as nursery:
            while True:
                for name, st in self.projects.items():
                    want, why = self._wanted(name)
                    if want and name not in self._running:
                        scope = trio.CancelScope()
                        self._running[name] = scope
                        nursery.start_soon(self._run_project, st, scope)
                    elif not want:
                        st.status = why
                        if name in self._running:
                            self._stop(name)
                await self._wait_for_change()

    def _tally(self, members: tuple[str, ...], samples: int) -> None:
        """Work for the ledger: each other member took our samples into its average (we
        served it; what a member may pay us for, at most). What we took from others is
        counted by `_check_work`: only the work our checks reproduced is paid."""
        for m in members:
            if m != self.ctx.peer_id and samples > 0:
                self.credits.served_to(m, "training", samples)

    async def _wait_for_change(self) -> None:
        await self.ctx.wait_for_change(POLL, self.admission.wait_decision_changed)

    def _halt_worker(self, name: str) -> None:
        """The project's worker thread ends at its next checkpoint (within a batch)."""
        stop = self._stops.pop(name, None)
        if stop is not None:
            stop.set()

    def _stop(self, name: str) -> None:
        """Stop a project within a batch."""
        self._halt_worker(name)
        scope = self._running.pop(name, None)
        if scope is not None:
            scope.cancel()
        log.info("training %s stopped: %s", name, self.projects[name].status)

    # -- one project ------------------------------------------------------------------------
    async def _run_project(self, st: ProjectState, scope: trio.CancelScope) -> None:
        name = st.spec.name
        try:
            with scope:
                st.status = "starting"
                st.peers.clear()  # what they said before we stopped is stale
                await self._prepare(st)
                assert st.params is not None
                try:  # the model, its gradients and its step's copies, within the RAM cap
                    held = self.ctx.memory.reserve(st.params.nbytes * MODEL_COPIES,
                                                   f"training {name}")
                except MemoryRefused as e:
                    st.status = f"waiting for memory: {e.reason}"
                    await trio.sleep(MEMORY_RETRY)
                    return
                with held:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self.progress.progress_loop, st)
                        nursery.start_soon(self.progress.participants_loop, st)
                        await self._steps(st)
        except Exception as e:  # a broken project stops itself, the node goes on
            log.exception("training %s failed", name)
            st.last_error = f"{type(e).__name__}: {e}"
            st.status = "stopped by an error"
            self._halt_worker(name)
            await trio.sleep(5)  # not a hot restart loop
        finally:
            if self._running.get(name) is scope:
                del self._running[name]
            if scope.cancel_called:  # stopped: say why, whatever the steps last said (a
                want, why = self._wanted(name)  # step between two awaits may have written
                if not want:  # "training" after the stop's own status)
                    st.status = why

    def _rule(self, st: ProjectState) -> str:
        return self.ctx.settings.training_rule or st.spec.rule

    def _period(self, st: ProjectState) -> float:
        return self.ctx.settings.training_period_s or st.spec.period_s

    async def _prepare(self, st: ProjectState) -> None:
        """The model, the data shard, and the starting parameters (torch is imported here)."""
        if st.spec.name in self._models:
            return

        def build() -> dict[str, Any]:
            require_torch()
            import torch

            from core.training import demo

            data = demo.load_digits(st.spec.seed)
            model = demo.digits_model(st.spec.seed)
            # this village's own seeded share of the training data
            keep = check.shard(self.ctx.peer_id, len(data.y_train), st.spec.shard_share)
            flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
            return {"model": model, "eval_model": demo.digits_model(st.spec.seed),
                    "check_model": demo.digits_model(st.spec.seed),
                    "x": data.x_train[keep], "y": data.y_train[keep],
                    "x_all": data.x_train, "y_all": data.y_train,
                    "x_test": data.x_test, "y_test": data.y_test,
                    "start": flat.numpy().astype(np.float32)}

        built = await trio.to_thread.run_sync(build)
        self._models[st.spec.name] = built
        if st.params is None:
            st.set_params(built["start"], 0)
        st.accuracy = await trio.to_thread.run_sync(self._accuracy, st)

    async def _steps(self, st: ProjectState) -> None:
        """Steps on every village's common boundaries: one step's averaging ends within the
        period, and the next step is the next boundary (a village that fell behind skips to
        the next one still ahead, so it never waits for a round that is over)."""
        av = self.averager
        index = -1
        while True:
            await self._catch_up(st)
            period = self._period(st)
            if (index + 1) * period <= self.ctx.clock.wall():
                index, at = boundary_after(self.ctx.clock.wall(), period)
            else:
                index, at = index + 1, (index + 1) * period
            gather = max(MIN_GATHER, min(MAX_GATHER, 0.3 * period))
            deadline = at + max(gather + 1.0, ROUND_SHARE * period)
            st.status = "training"
            stop = threading.Event()
            self._stops[st.spec.name] = stop
            until = time.monotonic() + max(0.0, at - self.ctx.clock.wall())
            st.samples_step = 0
            assert st.params is not None
            start, start_epoch, start_hash = st.params, st.epoch, st.hash
            update, samples = await trio.to_thread.run_sync(
                functools.partial(self._train_locally, st, stop, until),
                abandon_on_cancel=True)  # type: ignore[call-arg]  # (trio 0.35's own stubs)
            await trio.sleep(max(0.0, at - self.ctx.clock.wall()))
            rule = self._rule(st)
            others = [p for p in st.participants if p != av.me]
            st.status = (f"averaging with up to {len(others)} other village(s)" if others
                         else "waiting for peers (stepping alone meanwhile)")
            sent = self._outgoing(update)
            norm = float(np.linalg.norm(update))
            if not np.isfinite(norm) or norm > MAX_UPDATE_NORM:
                st.last_error = f"local update of norm {norm:.3g} discarded"
                sent = np.zeros_like(update)
            # who trained from the same state as we did (checkable), as they said at the
            # boundary - before any of them takes this step
            same = {p for p, pr in st.peers.items() if pr.state_hash == start_hash}
            res = await av.average(
                f"train/{st.spec.name}/{rule}/f{st.spec.f}/s{index}", sent,
                close_at=at + gather, deadline_at=deadline,
                weight=float(max(samples, 1)), rule=rule, f=st.spec.f,
                center=st.prev_aggregate, collect=True)
            agg = res.vector
            if not np.isfinite(agg).all() or float(np.linalg.norm(agg)) > MAX_UPDATE_NORM:
                st.last_error = "the group's aggregate was not finite or too large: not applied"
                continue
            st.last_members = len(res.members)
            self._tally(res.members, samples)
            st.rule_used, st.rule_note = res.rule, res.rule_note or res.reason
            st.prev_aggregate = agg
            assert st.params is not None
            st.set_params(st.params + agg, st.epoch + 1)
            self.progress.publish(st)
            st.accuracy = await trio.to_thread.run_sync(self._accuracy, st)
            log.info("training %s: step %d with %d member(s) (%s), test accuracy %.3f",
                     st.spec.name, st.epoch, len(res.members), res.rule, st.accuracy or 0)
            await self._check_work(st, res.contributions, same, start, epoch=start_epoch,
                                   index=index)

    async def _check_work(self, st: ProjectState, contributions: dict[str, Any],
                          same: set[str], start: np.ndarray, *, epoch: int, index: int
                          ) -> None:
        """Sampled checks of the round's training work: up to CHECKS_PER_ROUND members whose
        whole update we hold and who trained from our state are trained again here (their
        data share, batches and step count are theirs to know and ours to derive) and
        compared. Training credit is verified work: only an update that passed is paid (its
        samples, as its averaging weight claimed and the check reproduced), and the pass
        counts towards trust; unchecked updates are not paid by us, and one that fails is
        rejected (a village claiming samples it did not compute is caught so) and is a
        misbehaviour."""
        context = f"train/{st.spec.name}/{index}".encode()
        eligible = sorted(p for p in contributions if p in same)
        for peer in self.ctx.rng.sample(eligible, min(CHECKS_PER_ROUND, len(eligible))):
            sent, weight = contributions[peer]
            steps, why = check.steps_claimed(weight, st.spec.batch, st.spec.target_batch)
            if steps is None:
                ok, reason = False, f"a sampled check failed: {why}"
            else:
                want = await trio.to_thread.run_sync(self._retrain, st, start, peer, epoch,
                                                     steps)
                ok, reason = check.verdict(sent, want)
            self.checks.append((peer, ok))
            del self.checks[:-CHECKS_KEPT]
            if ok:
                self.credits.consumed(peer, "training", max(1, int(weight)), context)
                self.credits.check_passed(peer, "training")
                log.debug("training %s: %s's update checked: as trained", st.spec.name,
                          peer[-6:])
            else:
                log.info("training %s: %s: %s", st.spec.name, peer[-6:], reason)
                self.credits.check_failed(peer, "training", int(weight), reason)
                self.ctx.penalise(peer, f"training: {reason}")

    def _retrain(self, st: ProjectState, start: np.ndarray, peer: str, epoch: int,
                 steps: int) -> np.ndarray:
        """Worker thread: `peer`'s local training from `start` for `steps` batches."""
        built = self._models[st.spec.name]
        keep = check.shard(peer, len(built["y_all"]), st.spec.shard_share)
        sgd = check.LocalSGD(built["check_model"], built["x_all"][keep], built["y_all"][keep],
                             start, lr=st.spec.local_lr, batch=st.spec.batch,
                             seed=check.batch_seed(peer, epoch))
        for _ in range(steps):
            sgd.step()
        return sgd.update()

    def _outgoing(self, update: np.ndarray) -> np.ndarray:
        """What this village sends for averaging: its update (a seam for the attack tests)."""
        return update

    def _train_locally(self, st: ProjectState, stop: threading.Event,
                       until: float) -> tuple[np.ndarray, int]:
        """Worker thread: local SGD from the step's parameters until `until` (monotonic), the
        collaboration's target batch, or `stop`; returns (update, samples)."""
        import torch

        from core.compute import apply_torch_limits

        gate = self.admission.gate
        choice = self.admission.device_for(TRAIN_NEED_BYTES)
        apply_torch_limits(gate.decision, torch, gate.ordinals)
        assert st.params is not None
        st.device = choice.reason
        counted = st.samples_total
        try:
            return self._sgd_loop(st, stop, until, choice.device)
        except Exception as e:  # a GPU that failed (out of memory, lost): the CPU, this step
            if choice.device == "cpu":
                raise
            log.warning("training %s: %s failed (%s); training on the CPU", st.spec.name,
                        choice.device, e)
            st.device = f"on the CPU: the GPU failed ({type(e).__name__}: {e})"[:200]
            st.samples_total = counted  # this step starts again from its parameters
            return self._sgd_loop(st, stop, until, "cpu")

    def _sgd_loop(self, st: ProjectState, stop: threading.Event, until: float,
                  device: str) -> tuple[np.ndarray, int]:
        from core.compute import GateClosed

        built = self._models[st.spec.name]
        gate = self.admission.gate
        assert st.params is not None
        # the same loop a checker runs again (core.training.check): batches seeded by our id
        # and the step, so our update can be reproduced from what we claim
        sgd = check.LocalSGD(built["model"], built["x"], built["y"], st.params,
                             lr=st.spec.local_lr, batch=st.spec.batch,
                             seed=check.batch_seed(self.ctx.peer_id, st.epoch), device=device)
        samples, t0 = 0, time.monotonic()
        try:
            with gate.slot(0, stop) as slot:
                slot.start()
                while time.monotonic() < until:
                    if target_reached(samples, list(st.peers.values()), st.hash,
                                      st.spec.target_batch):
                        break
                    sgd.step()
                    samples += st.spec.batch
                    st.samples_step = samples
                    st.samples_total += st.spec.batch
                    st.samples_per_second = samples / max(1e-3, time.monotonic() - t0)
                    slot.checkpoint()
        except GateClosed:
            pass
        return sgd.update(), samples

    def _accuracy(self, st: ProjectState) -> float:
        import torch

        built = self._models[st.spec.name]
        model = built["eval_model"]  # not the one a worker thread may still be training
        assert st.params is not None
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.from_numpy(st.params.copy()),
                                                model.parameters())
            out = model(built["x_test"]).argmax(1)
            return float((out == built["y_test"]).float().mean())
