"""The SWARM project a gardener joins: with `swarm_train` on, this village drives micro-batches
through the swarm - it holds the model's embedding and head and its own data (generated
sequences: nothing is downloaded), the servers hold the blocks - and reports the loss, the
held-out loss and its throughput. Villages that serve blocks (`swarm_serve`) and villages that
drive data are the two halves of one SWARM training run.

Ports: the context, the DHT (the server directory), the admission (the governor: training
through the swarm pauses with every other compute) and the credits (the ledger is told what
each server did and what the sampled checks found).

The embedding and head this village trained are kept in its data folder
(`swarm-<model>-ends.npz`, written whole after every held-out evaluation) so a restart goes on
from them and `generate` (the handle's call, `grove generate`) continues text with them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from core.compute_pack import ComputePackMissing, require_torch
from core.config import atomic_write
from core.errors import GardenerError

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


class GlobalSteps:
    """The client's half of update "global": the embedding's and head's gradients summed
    over the micro-batches between two stage averages (wall-clock boundaries every
    `period` s, as the servers compute them), and one optimizer step on their mean when a
    boundary has passed - the step every server of each stage takes at that boundary."""

    def __init__(self, params: list[Any], opt: Any, period: float, now: float) -> None:
        self.params, self.opt, self.period = params, opt, period
        self.sums: list[Any] | None = None
        self.count = 0
        self.group = int(now // period)
        self.steps = 0

    def add(self, now: float) -> int:
        """Take the gradients a micro-batch finished at `now` left in `.grad` (stepping first
        when a boundary passed since the group began); returns the group it joined."""
        from core.swarm.model import add_grads

        group = int(now // self.period)
        got = add_grads(None, self.params)  # before a step clears `.grad`
        if group != self.group:
            self.flush()
            self.group = group
        self.sums = got if self.sums is None else [
            a.add_(b) for a, b in zip(self.sums, got, strict=True)]
        self.count += 1
        return group

    def flush(self) -> None:
        """One step on the mean gradient of the group so far (nothing when it is empty)."""
        if self.sums is not None and self.count:
            for p, g in zip(self.params, self.sums, strict=True):
                p.grad = g / self.count
            self.opt.step()
            self.steps += 1
        self.opt.zero_grad()
        self.sums, self.count = None, 0


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
        self.ends: tuple[Any, Any] | None = None  # (embedding, head) once built or loaded
        self.ends_origin = ""                      # where they came from, in words
        self.generating: Any = None                # the client of the last generation

    @property
    def last_route(self) -> list[Any]:
        """The servers of the last (or current) generation session, hop by hop."""
        return self.generating.route if self.generating is not None else []

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
        from core.swarm.model import MODELS, chance_loss, synthetic_batch

        spec = MODELS[self.ctx.settings.swarm_model]
        self.chance = chance_loss(spec)
        client = self.client = SwarmClient(self.ctx, self.directory, self.credits, spec)
        embed, head = self.load_ends(spec)
        opt = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=LR)
        seed = int(hashlib.sha256(self.ctx.peer_id.encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)  # this village's own data
        held = synthetic_batch(spec, HELD_OUT, torch.Generator().manual_seed(HELD_OUT_SEED))
        self.state, self.status = "starting", f"reading who serves {spec.name}"
        steps: GlobalSteps | None = None  # update "global": the ends step with the stages
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
            glob = self.ctx.settings.swarm_update == "global"
            period = self.ctx.settings.swarm_average_period_s
            if glob and (steps is None or steps.period != period):
                steps = GlobalSteps([*embed.parameters(), *head.parameters()], opt, period,
                                    self.ctx.clock.wall())
            try:
                for _ in range(EVAL_EVERY):
                    loss = await client.train_step(*synthetic_batch(spec, BATCH, g), embed,
                                                   head, opt, step=not glob)
                    if glob and steps is not None:
                        steps.add(self.ctx.clock.wall())
                    self.loss = loss if self.loss is None else 0.9 * self.loss + 0.1 * loss
                    self.micro_batches += 1
                    self._done.append((trio.current_time(), BATCH))
                self.held_out = await client.evaluate(*held, embed, head)
                self.save_ends(spec)
            except PipelineFailed as e:
                self.state, self.status = "waiting", f"a micro-batch could not go through: {e}"
                await trio.sleep(WAIT)

    # -- the ends: kept, and used for generation ------------------------------------------
    def ends_file(self, spec: Any) -> Any:
        return self.ctx.data_dir / f"swarm-{spec.name}-ends.npz"

    def load_ends(self, spec: Any) -> tuple[Any, Any]:
        """This village's embedding and head: as last saved, or freshly built (every village
        builds the same)."""
        if self.ends is not None and self.ends[0].tokens.num_embeddings == spec.vocab \
                and self.ends_origin.startswith(spec.name):
            return self.ends
        from core.swarm.model import build_ends

        embed, head = build_ends(spec)
        self.ends_origin = f"{spec.name}: untrained (this village has not trained it)"
        path = self.ends_file(spec)
        if path.exists():
            try:
                _read_ends(path, embed, head)
                self.ends_origin = f"{spec.name}: trained by this village (kept in {path.name})"
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
                log.warning("the saved embedding and head in %s cannot be used (%s); "
                            "starting from untrained ones", path, e)
                embed, head = build_ends(spec)
        self.ends = (embed, head)
        return self.ends

    def save_ends(self, spec: Any) -> None:
        import numpy as np

        assert self.ends is not None
        arrays = {f"{prefix}{k}": v.detach().cpu().numpy()
                  for prefix, part in (("embed.", self.ends[0]), ("head.", self.ends[1]))
                  for k, v in part.state_dict().items()}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(self.ends_file(spec), buf.getvalue())
        self.ends_origin = f"{spec.name}: trained by this village (kept in " \
                           f"{self.ends_file(spec).name})"

    async def generate(self, text: str, new_tokens: int, on_text: Any = None
                       ) -> dict[str, Any]:
        """Continue `text` by `new_tokens` characters, greedily, through the villages serving
        the model's blocks (this village's embedding and head at each end); `on_text(chars)`
        is called as each character comes. A server that leaves mid-way is replaced and the
        replacement is sent the text so far."""
        require_torch()
        import copy

        from core.swarm import text as codec
        from core.swarm.client import PipelineFailed, SwarmClient
        from core.swarm.model import MODELS

        spec = MODELS[self.ctx.settings.swarm_model]
        prompt = codec.encode(text, spec.vocab)
        room = spec.seq - len(prompt)
        if room < 1:
            raise codec.TextNotReadable(
                f"{spec.name} reads at most {spec.seq - 1} characters before the ones it adds "
                f"({len(prompt)} given).", "Give a shorter text.")
        new_tokens = max(1, min(new_tokens, room))
        embed, head = (copy.deepcopy(p) for p in self.load_ends(spec))  # fixed for the session
        client = self.client or SwarmClient(self.ctx, self.directory, self.credits, spec)
        if client.spec.name != spec.name:
            client = SwarmClient(self.ctx, self.directory, self.credits, spec)
        self.generating = client
        t0 = trio.current_time()
        try:
            tokens = await client.generate(
                prompt, new_tokens, embed, head,
                on_token=None if on_text is None else
                (lambda t: on_text(codec.decode([t], spec.vocab))))
        except PipelineFailed as e:
            raise GenerationFailed(f"Generation through the swarm failed: {e}.",
                                   "Check that villages serve every block "
                                   "(`grove swarm status`) and try again.") from None
        seconds = trio.current_time() - t0
        return {"model": spec.name, "prompt": text, "text": codec.decode(tokens, spec.vocab),
                "tokens": tokens, "ends": self.ends_origin, "seconds": round(seconds, 3),
                "tokens_per_s": round(len(tokens) / max(seconds, 1e-6), 2),
                "route": [{"start": h.start, "end": h.end, "village": h.server.peer_id}
                          for h in client.route],
                "servers_replaced": client.replaced}


    async def complete(self, prompt: str, max_tokens: int, level: str = "basic",
                       distinct: str = "network") -> dict[str, Any]:
        """`core.swarm.completion.complete` with this village's embedding and head (the
        gateway's requests); GenerationFailed when the swarm cannot serve it."""
        require_torch()
        from core.swarm.client import SwarmClient
        from core.swarm.completion import CompletionFailed, complete
        from core.swarm.model import MODELS

        spec = MODELS[self.ctx.settings.swarm_model]
        client = SwarmClient(self.ctx, self.directory, self.credits, spec, level=level,
                             distinct=distinct)
        try:
            got = await complete(client, self.load_ends(spec), prompt, max_tokens)
        except CompletionFailed as e:
            raise GenerationFailed(f"Completion through the swarm failed: {e}.",
                                   "Check that villages serve every block (`grove swarm "
                                   "status`), staked ones for checked and assured.") from None
        got["ends"] = self.ends_origin
        return got


class GenerationFailed(GardenerError):
    pass


def _read_ends(path: Any, embed: Any, head: Any) -> None:
    """Load what `save_ends` wrote (plain arrays, never pickles) into `embed` and `head`."""
    import numpy as np
    import torch

    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as saved:
        for prefix, part in (("embed.", embed), ("head.", head)):
            state = part.state_dict()
            for k, v in state.items():
                a = saved[prefix + k]
                if a.shape != tuple(v.shape) or not np.isfinite(a).all():
                    raise ValueError(f"{prefix + k}: shape {a.shape} or values not finite")
                state[k] = torch.from_numpy(a.astype(np.float32))
            part.load_state_dict(state)
