"""A block server's stage averages: every `swarm_average_period_s`, on wall-clock boundaries
every server computes alike, each block it holds is averaged with the other servers of its
stage through the averaging service and a robust rule (docs/protocols.md has the keys and the
vectors of update "local" and "global"). The SWARM service runs `run` while it serves and
asks `step_done` before a training request computes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.swarm.directory import ServerInfo

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.swarm.model import ModelSpec
    from core.swarm.worker import SpanWorker

log = logging.getLogger(__name__)

STAGE_RULE = "centered_clip"  # how a stage's servers average a block's parameters
STAGE_F = 1                # Byzantine servers of a stage the rule tolerates
STAGE_GATHER = 5.0         # s, at most: how long a stage's averaging round gathers
STAGE_MIN_GATHER = 2.0     # s, at least
STEP_WAIT = 15.0           # s, at most, a training request waits for a block's step
# update "global": every round averages the gradients (n + 1 values for n parameters), which
# keeps servers that took every step identical; every FULL_EVERY-th round of a block a second
# round beside it averages the parameters and optimizer state (3n + 1), the repair of a server
# that joined late or missed a step. Blocks take those at staggered boundaries (`is_full`),
# so a server's rounds at one boundary carry about the same volume each time.
FULL_EVERY = 4
MODEL_GATHER_SHARE = 0.4   # of the period: how long a model round gathers, at least


def is_full(index: int, block: int) -> bool:
    """Whether block `block`'s stage average at boundary `index` includes the model round
    (every server of the stage computes the same)."""
    return (index + block) % FULL_EVERY == 0


class StageAverages:
    """`held()` is the span the server holds now (None: none), `known()` the servers its
    directory read last."""

    def __init__(self, ctx: ServiceContext, averager: Any, *,
                 held: Callable[[], tuple[int, int] | None],
                 known: Callable[[], list[ServerInfo]]) -> None:
        self.ctx, self.averager, self.held, self.known = ctx, averager, held, known
        self.rounds: dict[int, tuple[int, int]] = {}  # block -> (index, members) last
        self.repairs: dict[int, tuple[int, int]] = {}  # the same for update "global"'s model
        self._stepping: dict[int, trio.Event] = {}  # update "global": blocks mid-step

    async def run(self, spec: ModelSpec, worker: SpanWorker) -> None:
        """Every `swarm_average_period_s`, on boundaries every server computes alike, each
        block held is averaged with the other servers holding it (the averaging service,
        with a robust rule: one Byzantine server cannot set a stage's parameters), so the
        servers of a stage train one model rather than drifting apart (the SWARM paper's
        periodic averaging)."""
        from core.training.collab import boundary_after

        while True:
            period = self.ctx.settings.swarm_average_period_s
            index, at = boundary_after(self.ctx.clock.wall(), period)
            while (left := at - self.ctx.clock.wall()) > 0 \
                    and self.ctx.settings.swarm_average_period_s == period:
                await self.ctx.wait_for_change(left)
            held = self.held()
            if held is None or self.ctx.settings.swarm_average_period_s != period:
                continue  # (a new period: its own boundaries)
            start, end = held
            async with trio.open_nursery() as nursery:
                for b in range(start, end):
                    nursery.start_soon(self._average_block, spec, worker, b,
                                       (index, at, period))

    async def _average_block(self, spec: ModelSpec, worker: SpanWorker, block: int,
                             when: tuple[int, float, float]) -> None:
        """One block's stage average. Update "local": its parameters. Update "global": the
        gradients summed since the last one, and every server of the stage then takes the
        same optimizer step (a server alone in its stage steps on its own gradients; one
        whose round found none of the others it knows keeps them for the next round);
        training requests for the block wait for that step rather than compute with the
        parameters it replaces. Every FULL_EVERY-th round of a block (`is_full`) also
        averages its parameters and optimizer state beside the gradients (`_repair`): the
        step does not wait for that heavier round."""
        worker.update = self.ctx.settings.swarm_update
        if worker.update != "global":
            await self._average_params(spec, worker, block, when)
            return
        full = is_full(when[0], block)
        self._stepping[block] = stepped = trio.Event()
        async with trio.open_nursery() as nursery:
            try:
                try:
                    grads, model = await worker.submit(lambda: (
                        worker.take_grads(block), worker.take_model(block) if full else None))
                except Exception as e:  # moved away meanwhile
                    log.debug("swarm: block %d not averaged: %s", block, e)
                    return
                if model is not None:
                    nursery.start_soon(self._repair, spec, worker, block, model, when)
                await self._step(spec, worker, block, grads, when, keep=full)
            finally:  # training requests go on; the repair may still be running
                stepped.set()
                if self._stepping.get(block) is stepped:
                    del self._stepping[block]

    async def _step(self, spec: ModelSpec, worker: SpanWorker, block: int, grads: np.ndarray,
                    when: tuple[int, float, float], *, keep: bool) -> None:
        """The stage's gradient round and the step on its mean (`keep`: a model round of
        the same boundary runs beside it, and may take the step again)."""
        vector, members, rule = await self._round(spec, block, grads, when, kind="/global",
                                                  record=self.rounds)
        if members < 2 and self._others_hold(block):
            return  # a step alone would leave the stage's other copies behind: the
            # gradients wait for the next average instead
        try:
            await worker.submit(lambda: worker.apply_grads(block, vector, when[0], keep=keep))
        except Exception as e:  # moved away meanwhile: nothing to step
            log.debug("swarm: block %d's average not applied: %s", block, e)
            return
        log.info("swarm: block %d stepped with %d server(s) of its stage (%s)", block,
                 members - 1, rule)

    async def _repair(self, spec: ModelSpec, worker: SpanWorker, block: int, model: np.ndarray,
                      when: tuple[int, float, float]) -> None:
        """The stage's average of the block's parameters and optimizer state as they were at
        the boundary; set, and the boundary's step taken again from it when it was already
        taken. Servers that were alike stay alike; one that joined late or missed a step
        holds the stage's model again."""
        vector, members, rule = await self._round(  # (gathering longer: the step's round
            spec, block, model, when, kind="/global/model",  # moves its data first)
            record=self.repairs, gather_share=MODEL_GATHER_SHARE)
        if members < 2:
            return
        try:
            again = await worker.submit(lambda: worker.apply_model(block, vector, when[0]))
        except Exception as e:  # moved away meanwhile, or it came after the next step
            log.info("swarm: block %d's model average not applied: %s", block, e)
            self.repairs[block] = (when[0], 1)  # the block holds its own model, as if alone
            return
        log.info("swarm: block %d's model averaged with %d server(s) of its stage (%s%s)",
                 block, members - 1, rule, "; its step taken again" if again else "")

    async def _average_params(self, spec: ModelSpec, worker: SpanWorker, block: int,
                              when: tuple[int, float, float]) -> None:
        """Update "local": the stage's average of the block's parameters, set."""
        try:
            flat = await worker.submit(lambda: worker.params(block)[0])
        except Exception as e:  # moved away meanwhile
            log.debug("swarm: block %d not averaged: %s", block, e)
            return
        vector, members, rule = await self._round(spec, block, flat, when, kind="",
                                                  record=self.rounds)
        if members < 2:
            return
        try:
            await worker.submit(lambda: worker.set_params(block, vector))
        except Exception as e:  # moved away meanwhile: nothing to set
            log.debug("swarm: block %d's average not applied: %s", block, e)
            return
        log.info("swarm: block %d averaged with %d server(s) of its stage (%s)", block,
                 members - 1, rule)

    async def _round(self, spec: ModelSpec, block: int, flat: np.ndarray,
                     when: tuple[int, float, float], *, kind: str,
                     record: dict[int, tuple[int, int]], gather_share: float = 0.0
                     ) -> tuple[np.ndarray, int, str]:
        """The stage's average of `flat` (or `flat` itself, alone): (vector, members, rule),
        gathering for at least `gather_share` of the period."""
        index, at, period = when
        gather = max(STAGE_MIN_GATHER, min(STAGE_GATHER, 0.3 * period))
        gather = max(gather, gather_share * period)
        key = f"swarm/{spec.name}/b{block}/{STAGE_RULE}/f{STAGE_F}{kind}/s{index}"
        out: tuple[np.ndarray, int, str] = (flat, 1, "alone")
        try:
            res = await self.averager.average(key, flat, close_at=at + gather,
                                              deadline_at=at + 0.8 * period, rule=STAGE_RULE,
                                              f=STAGE_F)
            if not res.complete:  # some slices kept this village's own values: a mix that
                # no other server of the stage holds; nothing of it is applied
                log.info("swarm: block %d not averaged (%s): %s", block, key, res.reason)
            elif np.isfinite(res.vector).all():
                out = (res.vector, len(res.members), res.rule)
        except Exception as e:  # no round this time: the block keeps its parameters
            log.info("swarm: block %d not averaged: %s", block, e)
        record[block] = (index, out[1])
        return out

    def _others_hold(self, block: int) -> bool:
        now = self.ctx.clock.wall()
        return any(v.peer_id != self.ctx.peer_id and v.expires_at > now
                   and v.record.start <= block < v.record.end for v in self.known())

    async def step_done(self, start: int, end: int) -> None:
        """Update "global": wait (bounded) while a block of start..end-1 takes its step."""
        for b in range(start, end):
            ev = self._stepping.get(b)
            if ev is not None:
                with trio.move_on_after(STEP_WAIT):
                    await ev.wait()
