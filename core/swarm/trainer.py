"""The SWARM project a gardener joins: with `swarm_train` on, this village drives micro-batches
through the swarm - it holds the model's embedding and head and its own data (generated
sequences: nothing is downloaded), the servers hold the blocks - and reports the loss, the
held-out loss and its throughput. Villages that serve blocks (`swarm_serve`) and villages that
drive data are the two halves of one SWARM training run.

Ports: the context, the DHT (the server directory), the admission (the governor: training
through the swarm pauses with every other compute) and the credits (the ledger is told what
each server did and what the sampled checks found).
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from core.compute_pack import ComputePackMissing, require_torch

if TYPE_CHECKING:
    from core.ports import AdmissionPort, ServiceContext

log = logging.getLogger(__name__)

BATCH = 8              # sequences per micro-batch
EVAL_EVERY = 20        # micro-batches between held-out evaluations
HELD_OUT = 64          # held-out sequences (the same for every village: one yardstick)
HELD_OUT_SEED = 99
LR = 3e-3              # the client's optimizer (embedding and head)
WAIT = 5.0             # s between directory reads while a block has no server
POLL = 2.0             # s between checks of whether to train, besides changes
RATE_WINDOW = 30.0     # s of micro-batches the throughput figure covers


class SwarmTrainer:
    def __init__(self, ctx: ServiceContext, dht: Any, admission: AdmissionPort,
                 credits: Any) -> None:
        self.ctx, self.directory, self.admission, self.credits = ctx, dht, admission, credits
        self.state = "off"
        self.status = "not training through the swarm (`grove swarm train` turns it on)"
        self.loss: float | None = None          # moving average of the training loss
        self.held_out: float | None = None      # loss on the held-out sequences
        self.chance: float | None = None        # where an untrained model starts
        self.micro_batches = 0
        self._done: deque[tuple[float, int]] = deque()  # (trio time, samples)
        self.client: Any = None

    @property
    def samples_per_second(self) -> float:
        now = trio.current_time()
        while self._done and self._done[0][0] < now - RATE_WINDOW:
            self._done.popleft()
        if len(self._done) < 2:
            return 0.0
        span = max(1e-3, now - self._done[0][0])
        return sum(n for _t, n in self._done) / span

    def _wanted(self) -> tuple[bool, str]:
        s, d = self.ctx.settings, self.admission.decision
        if not s.swarm_train:
            return False, "not training through the swarm (`grove swarm train` turns it on)"
        if not s.participate:
            return False, "paused: participation is off"
        if not d.may_compute:
            return False, f"paused by rule: {d.reason}" if d.reason else "paused"
        return True, ""

    async def run(self) -> None:
        while True:
            want, why = self._wanted()
            if not want:
                self.state, self.status = "off", why
                await self._wait_for_change()
                continue
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guarded)
                while self._wanted()[0]:
                    await self._wait_for_change()
                nursery.cancel_scope.cancel()

    async def _wait_for_change(self) -> None:
        await self.ctx.wait_for_change(POLL, self.admission.wait_decision_changed)

    async def _guarded(self) -> None:
        try:
            await self._train()
        except ComputePackMissing as e:
            self.state, self.status = "cannot-train", str(e)
        except Exception as e:  # a broken run stops itself and says why; the node goes on
            log.exception("swarm training failed")
            self.state, self.status = "stopped", f"stopped by an error: {type(e).__name__}: {e}"
        await trio.sleep_forever()  # until something changes

    async def _train(self) -> None:
        require_torch()
        import torch

        from core.swarm.client import PipelineFailed, SwarmClient
        from core.swarm.model import MODELS, build_ends, chance_loss, synthetic_batch

        spec = MODELS[self.ctx.settings.swarm_model]
        self.chance = chance_loss(spec)
        client = self.client = SwarmClient(self.ctx, self.directory, self.credits, spec)
        embed, head = build_ends(spec)
        opt = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=LR)
        seed = int(hashlib.sha256(self.ctx.peer_id.encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)  # this village's own data
        held = synthetic_batch(spec, HELD_OUT, torch.Generator().manual_seed(HELD_OUT_SEED))
        self.state, self.status = "starting", f"reading who serves {spec.name}"
        while True:
            await client.refresh()
            gaps = [b for b, n in enumerate(client.coverage()) if n == 0]
            if gaps:
                self.state = "waiting"
                self.status = (f"waiting for servers: no village serves block(s) "
                               f"{', '.join(map(str, gaps[:8]))} of {spec.name} yet")
                await trio.sleep(WAIT)
                continue
            self.state = "training"
            self.status = f"training {spec.name} through {len(client.servers)} server(s)"
            try:
                for _ in range(EVAL_EVERY):
                    loss = await client.train_step(*synthetic_batch(spec, BATCH, g), embed,
                                                   head, opt)
                    self.loss = loss if self.loss is None else 0.9 * self.loss + 0.1 * loss
                    self.micro_batches += 1
                    self._done.append((trio.current_time(), BATCH))
                self.held_out = await client.evaluate(*held, embed, head)
            except PipelineFailed as e:
                self.state, self.status = "waiting", f"a micro-batch could not go through: {e}"
                await trio.sleep(WAIT)
