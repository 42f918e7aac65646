"""The SWARM block server: a village serving a span of a model's blocks to other villages.

Life of a server (`grove swarm serve` turns it on; participation and the governor still rule):
measure what one block computes per second on this machine (cached), size the span to the
memory budget (and the gardener's block limit), read who serves what, take the span where the
swarm is weakest, load it - from a peer already serving those blocks when there is one, so
training carries over - and announce it. Then serve `/grove/swarm/1.0.0` requests through a
bounded queue, and every REBALANCE_PERIOD (randomised) simulate moving: move only when that
raises the swarm's weakest stage enough, loading the new blocks before dropping the old.

Admission: a request is refused, with the reason on the stream, when the village is paused or
over its limits, when the queue is full (for a village it does not trust, half full), for blocks
it does not serve, or when its tensors are malformed; the server keeps serving
(`core.swarm.answers`). torch: imported once serving starts."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import trio

from core.compute_pack import ComputePackMissing, require_torch
from core.dht import records as rec
from core.dht.store import PROVIDER_TTL
from core.memory import ROUND_BUFFERS, MemoryRefused
from core.snapshot import SwarmView
from core.swarm import directory, spans, wire
from core.swarm.answers import SwarmAnswers
from core.swarm.directory import ServerInfo
from core.swarm.stages import StageAverages

if TYPE_CHECKING:
    from core.ports import AdmissionPort, ReachabilityPort, ServiceContext
    from core.swarm.model import ModelSpec
    from core.swarm.worker import SpanWorker

log = logging.getLogger(__name__)

REBALANCE_PERIOD = spans.REBALANCE_PERIOD
JOIN_JITTER = 3.0          # s, at most: a random wait before choosing a span
POLL = 2.0                 # s between checks of whether to serve, besides changes


class SwarmService:
    """Ports: dht (directory, our record), admission, reachability, credits (the ledger),
    averager (the averaging service: a stage's servers average their blocks)."""

    def __init__(self, ctx: ServiceContext, dht: Any, admission: AdmissionPort,
                 reachability: ReachabilityPort, credits: Any, *,
                 averager: Any = None, trainer: Any = None) -> None:
        self.ctx, self.directory, self.admission = ctx, dht, admission
        self.reachability, self.credits, self.averager = reachability, credits, averager
        self.trainer = trainer  # core.swarm.trainer.SwarmTrainer: its figures join the view
        self.stages = StageAverages(ctx, averager, held=lambda: self.held,
                                    known=lambda: self.known)
        self.state = "off"
        self.status = "not serving (`grove swarm serve` turns it on)"
        self.span: tuple[int, int] | None = None  # announced (during a move: the new one)
        self.held: tuple[int, int] | None = None  # fully loaded: what requests may ask for
        self.spec: ModelSpec | None = None
        self.worker: SpanWorker | None = None
        self.device: Any = None  # core.device.DeviceChoice of the running worker
        self.speed: Any = None
        self.throughput = 0.0
        self.answers = SwarmAnswers(ctx, admission, credits, self.stages,
                                    lambda: (self.worker, self.spec, self.held, self.status))
        self.known: list[ServerInfo] = []
        self._changed = trio.Event()
        self._record_seq = 0

    # -- the gardener's view -----------------------------------------------------------------
    def view(self) -> SwarmView:
        now = self.ctx.clock.wall()
        start, end = self.span or (0, 0)
        live = [s for s in self.known if s.expires_at > now]
        swarm_min = 0.0
        if self.spec is not None and live:
            swarm_min = spans.swarm_min(_spans(live), self.spec.blocks)
        status = self.status
        d = self.admission.decision
        if self.state in ("online", "joining") and not d.may_compute:
            status = (f"paused: {d.reason}; blocks {start}..{end - 1} are kept, requests "
                      "are refused until it resumes")
        return SwarmView(
            serving=self.state == "online", state=self.state, status=status,
            model=self.spec.name if self.spec else "", start=start, end=end,
            throughput=round(self.throughput, 1),
            compute_forward=round(self.speed.forward, 1) if self.speed else 0.0,
            compute_train=round(self.speed.train, 1) if self.speed else 0.0,
            requests_last_hour=self.answers.served_last_hour(now),
            refused=self.answers.refused,
            queue=self.worker.pending if self.worker else 0, swarm_servers=len(live),
            swarm_min_throughput=round(swarm_min, 1),
            device=self.device.reason if self.device is not None else "",
            **self._trainer_view())

    def _trainer_view(self) -> dict[str, Any]:
        t = self.trainer
        if t is None:
            return {}
        return {"train_state": t.state, "train_status": t.status,
                "train_loss": None if t.loss is None else round(t.loss, 4),
                "held_out_loss": None if t.held_out is None else round(t.held_out, 4),
                "chance_loss": None if t.chance is None else round(t.chance, 4),
                "train_samples_per_s": round(t.samples_per_second, 1),
                "train_micro_batches": t.micro_batches}

    def _wanted(self) -> tuple[bool, str]:
        s = self.ctx.settings
        if not s.swarm_serve:
            return False, "not serving (`grove swarm serve` turns it on)"
        if not s.participate:
            return False, "not serving: participation is off"
        return True, ""

    # -- running -----------------------------------------------------------------------------
    async def run(self) -> None:
        host = self.ctx.transport
        assert host is not None
        host.set_handler(wire.PROTOCOL, self.answers.serve)
        while True:
            want, why = self._wanted()
            if not want:
                self.state, self.status = "off", why
                await self._wait_for_change()
                continue
            ended = False  # _serving returned by itself: this village cannot serve
            async with trio.open_nursery() as nursery:
                async def serve() -> None:
                    nonlocal ended
                    await self._serving()
                    ended = True

                nursery.start_soon(serve)
                while self._wanted()[0] and not ended:
                    await self._wait_for_change()
                nursery.cancel_scope.cancel()
            if ended:  # keep saying why until something changes, then try again
                await self._wait_for_change()
            else:
                await self._stop_serving()

    async def _wait_for_change(self) -> None:
        await self.ctx.wait_for_change(POLL, self.admission.wait_decision_changed)

    async def _stop_serving(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.state, self.status = "off", self._wanted()[1] or "not serving"  # together
        withdraw = self._own_record(ttl=rec.WITHDRAW_TTL)  # a short-lived record: we left
        if withdraw is not None:
            with trio.move_on_after(2.0):
                try:
                    await self.directory.put_record(withdraw)
                except Exception as e:
                    log.debug("swarm: withdrawal not published: %s", e)
        self.worker, self.span, self.held = None, None, None
        self.throughput = 0.0

    async def _serving(self) -> None:
        try:
            require_torch()
        except ComputePackMissing as e:
            self.state, self.status = "cannot-serve", str(e)
            return
        from core.swarm.model import MODELS
        from core.swarm.worker import SpanWorker

        s = self.ctx.settings
        spec = self.spec = MODELS[s.swarm_model]
        with trio.move_on_after(30):  # the device follows the probed hardware
            await self.admission.probed.wait()
        self.device = self.admission.device_for(spec.block_bytes())
        worker = SpanWorker(spec, self.admission.gate, s.swarm_lr, device=self.device.device)
        worker.update = s.swarm_update
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.run)
            self.worker = worker
            held = None
            try:
                length = self._span_length(spec)
                if length == 0:
                    return
                if self.device.gpu is None:  # blocks in RAM: held within the RAM cap
                    try:
                        held = self.ctx.memory.reserve(length * spec.block_bytes(),
                                                       f"{length} SWARM block"
                                                       + ("s" if length > 1 else ""))
                    except MemoryRefused as e:
                        self.state, self.status = "cannot-serve", f"cannot serve: {e.reason}"
                        return
                await self._measure(spec, worker)
                # villages started together would all read an empty directory and pile on
                # the same blocks: a moment's random wait spreads them
                await trio.sleep(JOIN_JITTER * self.ctx.rng.random())
                self.known = await directory.read_servers(self.ctx, self.directory, spec.name,
                                                         spec.blocks)
                others = [v for v in self.known if v.peer_id != self.ctx.peer_id]
                start = spans.choose_span(spans.stage_throughputs(_spans(others),
                                                                  spec.blocks), length)
                nursery.start_soon(self._announce_loop, spec)
                await self._take(spec, worker, start, length, others)
                if self.averager is not None:
                    nursery.start_soon(self.stages.run, spec, worker)
                await self._rebalance_loop(spec, worker, length)
            finally:
                worker.close()
                nursery.cancel_scope.cancel()
                if held is not None:
                    held.release()

    async def _measure(self, spec: ModelSpec, worker: SpanWorker) -> None:
        from core.swarm import throughput as tp

        key = tp.cache_key(spec, worker.device, "float32", self.admission.decision.threads)
        self.speed = tp.load_cached(self.ctx.data_dir, key)
        if self.speed is None:
            self.state, self.status = "measuring", "measuring what one block computes here"
            self.speed = await worker.submit(lambda: tp.measure_compute(spec, worker.device))
            await trio.to_thread.run_sync(tp.save_cached, self.ctx.data_dir, key,
                                          self.speed)
        self._update_throughput()

    def _update_throughput(self) -> None:
        """What we offer through our whole span: a micro-batch costs each block a forward,
        and when training a backward too (which recomputes the forward)."""
        from core.swarm import throughput as tp

        if self.speed is None or self.spec is None:
            return
        d = self.admission.decision
        relay_only = self.reachability.current.state == "relay-only"
        network = tp.network_speed(self.spec, d.upload_bps, d.download_bps,
                                   self.answers.measured_bps)
        per_block = self.speed.forward
        if self.ctx.settings.swarm_lr > 0:
            per_block = 1.0 / (1.0 / self.speed.forward + 1.0 / self.speed.train)
        length = (self.span[1] - self.span[0]) if self.span else 1
        self.throughput = tp.advertised(per_block / length, d.duty_cycle, network,
                                        relay_only) if d.may_compute else 0.0

    def _span_length(self, spec: ModelSpec) -> int:
        s, d = self.ctx.settings, self.admission.decision
        room = self.ctx.memory.room()  # the RAM cap less what the node's other work holds
        budget = d.ram_cap_bytes if room is None else min(d.ram_cap_bytes, room)
        per_block = spec.block_bytes()
        if self.device is not None and self.device.gpu is not None:  # blocks live in VRAM
            budget = min(budget, self.admission.tier.usable_vram.get(self.device.gpu, 0))
        elif self.averager is not None:  # every block's stage round runs at once, in RAM:
            per_block *= 2 + ROUND_BUFFERS  # the block, its flat copy, the round's buffers
        length = spans.span_length(budget, per_block, spec.blocks)
        if s.swarm_max_blocks:
            length = min(length, s.swarm_max_blocks)
        if length == 0:
            self.state = "cannot-serve"
            self.status = (f"cannot serve: one block of {spec.name} needs "
                           f"{spec.block_bytes() / 2**20:.1f} MiB and the memory budget is "
                           f"{budget / 2**20:.1f} MiB (memory cap "
                           f"{d.ram_cap_bytes / 2**20:.0f} MiB)")
        return length

    async def _take(self, spec: ModelSpec, worker: SpanWorker, start: int, length: int,
                    others: list[ServerInfo]) -> None:
        """Load blocks start..start+length-1 (parameters from peers already serving them,
        when any answers), then serve them. During a move the record announces the new span
        as joining while requests for the old one are still served; the old blocks are
        dropped only after the new ones are in."""
        end = start + length
        self.state = "joining"
        self.status = f"loading blocks {start}..{end - 1} of {spec.name}"
        self.span = (start, end)
        self._changed.set()  # announce that we are joining there
        params = await self._fetch_params(spec, start, end, others, worker)
        await worker.submit(lambda: worker.load(start, end, params))
        self.held = (start, end)
        await worker.submit(lambda: worker.keep_only(start, end))
        self.state = "online"
        self.status = f"serving blocks {start}..{end - 1} of {spec.name}"
        self._update_throughput()
        self._changed.set()
        log.info("swarm: %s", self.status)

    async def _fetch_params(self, spec: ModelSpec, start: int, end: int,
                            others: list[ServerInfo], worker: SpanWorker) -> dict[int, Any]:
        from core.swarm.calls import fetch_params
        from core.swarm.flat import block_size

        size = await trio.to_thread.run_sync(block_size, spec)
        got: dict[int, Any] = {}
        for b in range(start, end):
            if self.held is not None and self.held[0] <= b < self.held[1]:
                continue  # held already
            for s in others:
                r = s.record
                if r.state == "online" and r.start <= b < r.end:
                    values = await fetch_params(self.ctx, s, b, size)
                    if values is not None:
                        got[b] = values
                        break
        return got

    async def _rebalance_loop(self, spec: ModelSpec, worker: SpanWorker, length: int) -> None:
        me = self.ctx.peer_id
        while True:
            await trio.sleep(spans.next_rebalance(self.ctx.rng, REBALANCE_PERIOD))
            self._update_throughput()
            self.known = await directory.read_servers(self.ctx, self.directory, spec.name,
                                                     spec.blocks)
            assert self.span is not None
            mine = spans.ServerSpan(me, self.span[0], self.span[1], max(self.throughput, 0.0))
            servers = [s for s in _spans(self.known) if s.peer_id != me] + [mine]
            decision = spans.should_move(servers, me, spec.blocks)
            log.info("swarm: rebalance check: %s", decision.why)
            if decision.move:
                others = [s for s in self.known if s.peer_id != me]
                await self._take(spec, worker, decision.start, length, others)

    # -- one model per stage -----------------------------------------------------------------
    @property
    def stage_rounds(self) -> dict[int, tuple[int, int]]:
        """Block -> (boundary index, members) of its last stage round."""
        return self.stages.rounds

    # -- announcing ------------------------------------------------------------------------
    def _own_record(self, ttl: float = directory.RECORD_TTL) -> rec.ValidRecord | None:
        """Sign our record now and hold it ourselves (a reader asks us first)."""
        if self.spec is None or self.span is None:
            return None
        me = self.ctx.peer_id
        now = self.ctx.clock.wall()
        relay = self.reachability.current.state == "relay-only"
        record = rec.SwarmServerRecord(
            v=rec.VERSION, peer_id=me, model=self.spec.name, start=self.span[0],
            end=self.span[1], throughput=round(max(self.throughput, 0.0), 3),
            state="online" if self.state == "online" else "joining",
            reachability="relay" if relay else "direct",
            queue=self.worker.pending if self.worker else 0,
            seq=int(self.ctx.clock.wall() * 1_000_000), issued_at=now, expires_at=now + ttl)
        value = rec.sign_swarm(record, self.ctx.sign)
        valid = rec.validate(rec.swarm_key(self.spec.name, me), value, now)
        self.directory.hold(valid)
        return valid

    async def _announce_loop(self, spec: ModelSpec) -> None:
        dht = self.directory
        provided: tuple[tuple[int, int] | None, float] = (None, -math.inf)  # span, when
        while True:
            self._update_throughput()
            valid = self._own_record()
            if valid is not None and self.span is not None:
                try:
                    await dht.put_record(valid)
                    # The record (state, throughput) is re-signed every round; the blocks'
                    # provider entries live PROVIDER_TTL, so they are renewed at a quarter of
                    # that, or at once for a new span (joining -> online changes no span).
                    span, at = provided
                    if span != self.span or trio.current_time() - at > PROVIDER_TTL / 4:
                        span, heard = self.span, True
                        for b in range(*span):
                            heard &= await dht.announce(directory.block_key(spec.name, b)) > 0
                        # a block no peer took yet (none known): tried again next round
                        provided = (span, trio.current_time()) if heard else (None, -math.inf)
                except Exception as e:  # no peers yet: the next round tries again
                    log.debug("swarm: announcement failed: %s", e)
            with trio.move_on_after(directory.ANNOUNCE_EVERY):
                await self._changed.wait()
            self._changed = trio.Event()

def _spans(servers: list[ServerInfo]) -> list[spans.ServerSpan]:
    return [spans.ServerSpan(s.peer_id, s.record.start, s.record.end, s.record.throughput)
            for s in servers]
