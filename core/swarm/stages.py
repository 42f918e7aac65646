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
# update "global": every FULL_EVERY-th stage round (by its boundary index) also averages the
# parameters and optimizer state (4n + 2 values for n parameters); the others average the
# gradients alone (n + 1), which keeps servers that took every step identical
FULL_EVERY = 4


class StageAverages:
    """`held()` is the span the server holds now (None: none), `known()` the servers its
    directory read last."""

    def __init__(self, ctx: ServiceContext, averager: Any, *,
                 held: Callable[[], tuple[int, int] | None],
                 known: Callable[[], list[ServerInfo]]) -> None:
        self.ctx, self.averager, self.held, self.known = ctx, averager, held, known
        self.rounds: dict[int, tuple[int, int]] = {}  # block -> (index, members) last
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
        gradients summed since the last one (every FULL_EVERY-th round with the parameters
        and optimizer state), and every server of the stage then takes the same optimizer
        step (a server alone in its stage steps on its own gradients; one whose round found
        none of the others it knows keeps them for the next round); training requests for
        the block wait for that step rather than compute with the parameters it replaces."""
        glob = self.ctx.settings.swarm_update == "global"
        full = glob and when[0] % FULL_EVERY == 0
        worker.update = self.ctx.settings.swarm_update
        if glob:
            self._stepping[block] = stepped = trio.Event()
        try:
            try:
                flat = await worker.submit(
                    (lambda: worker.take_state(block, full)) if glob else
                    (lambda: worker.params(block)[0]))
            except Exception as e:  # moved away meanwhile
                log.debug("swarm: block %d not averaged: %s", block, e)
                return
            vector, members, rule = await self._round(
                spec, block, flat, when, ("/global/full" if full else "/global") if glob else "")
            if members < 2 and (not glob or self._others_hold(block)):
                # (global: a step alone would leave the stage's other copies behind; the
                # gradients wait for the next average instead)
                return
            try:
                await worker.submit(
                    (lambda: worker.apply_state(block, vector, full)) if glob else
                    (lambda: worker.set_params(block, vector)))
            except Exception as e:  # moved away meanwhile: nothing to set
                log.debug("swarm: block %d's average not applied: %s", block, e)
                return
            log.info("swarm: block %d averaged with %d server(s) of its stage (%s)", block,
                     members - 1, rule)
        finally:
            if glob:
                stepped.set()
                self._stepping.pop(block, None)

    async def _round(self, spec: ModelSpec, block: int, flat: np.ndarray,
                           when: tuple[int, float, float], kind: str
                           ) -> tuple[np.ndarray, int, str]:
        """The stage's average of `flat` (or `flat` itself, alone): (vector, members, rule)."""
        index, at, period = when
        gather = max(STAGE_MIN_GATHER, min(STAGE_GATHER, 0.3 * period))
        key = f"swarm/{spec.name}/b{block}/{STAGE_RULE}/f{STAGE_F}{kind}/s{index}"
        out: tuple[np.ndarray, int, str] = (flat, 1, "alone")
        try:
            res = await self.averager.average(key, flat, close_at=at + gather,
                                              deadline_at=at + 0.8 * period, rule=STAGE_RULE,
                                              f=STAGE_F)
            if np.isfinite(res.vector).all():
                out = (res.vector, len(res.members), res.rule)
        except Exception as e:  # no round this time: the block keeps its parameters
            log.info("swarm: block %d not averaged: %s", block, e)
        self.rounds[block] = (index, out[1])
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
