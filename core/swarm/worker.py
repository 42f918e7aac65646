"""The torch side of a block server: the blocks of its span, their optimizers, and the one
thread that computes on them.

Every job (a forward, a backward, loading or dropping blocks, reading parameters) runs on one
worker thread holding a place at the governor's compute gate, so serving obeys the same limits
as any other work: paused when the gardener pauses, throttled to the CPU share. The trio side
submits a job and awaits its result; the thread is the only one that touches the blocks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import trio

from core.compute import ComputeGate, GateClosed, apply_torch_limits
from core.swarm.commit import params_digest
from core.swarm.flat import (
    ComputeRefused,
    adam_moments,
    pieces,
    set_adam_moments,
    set_flat,
    to_flat,
)
from core.swarm.model import Block, ModelSpec, add_grads, build_block

log = logging.getLogger(__name__)

SLOT = 0  # the gate's first place (training shares it: both are throttled the same way)
MAX_SESSIONS = 32      # generation sessions a server holds at once (its attention caches)
SESSION_IDLE = 60.0    # s a session unused is dropped (a client that left)


@dataclass
class _Job:
    fn: Callable[[], Any]
    done: trio.Event
    token: trio.lowlevel.TrioToken
    result: Any = None
    error: BaseException | None = None
    cancelled: bool = field(default=False)


class SpanWorker:
    def __init__(self, spec: ModelSpec, gate: ComputeGate, lr: float, device: str = "cpu"
                 ) -> None:
        self.spec = spec
        self.gate = gate
        self.lr = lr
        self.device = device
        self.blocks: dict[int, Block] = {}
        self.opts: dict[int, torch.optim.Optimizer] = {}
        self.steps: dict[int, int] = {}  # optimizer steps per block: its parameters' version
        self._digests: dict[int, tuple[Block, int, bytes]] = {}  # block, version, digest
        # update "global": each block's summed gradients and micro-batches since its last step
        self.update = "local"
        self.grads: dict[int, list[torch.Tensor]] = {}
        self.grad_count: dict[int, int] = {}
        self._taken: dict[int, tuple[np.ndarray, int]] = {}  # what the stage average was sent
        self._stepped: dict[int, tuple[int, np.ndarray]] = {}  # block -> (boundary, mean grad)
        self._boundary: dict[int, int] = {}  # block -> the boundary of its last stage step
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._stop = threading.Event()
        self.pending = 0  # jobs submitted and not finished (the server's queue)
        # generation: (client, session) -> (last used, per block its (keys, values))
        self.sessions: dict[tuple[str, str], tuple[float, dict[int, Any]]] = {}

    # -- trio side -------------------------------------------------------------------------
    async def run(self) -> None:
        """The worker thread; returns when `close()` is called (within half a second) or the
        gate closes. Call `close()` before cancelling this."""
        await trio.to_thread.run_sync(self._loop)

    def close(self) -> None:
        self._stop.set()
        self._jobs.put(None)

    async def submit(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the worker thread; its result, or its exception re-raised. If the
        caller is cancelled the job is skipped when its turn comes."""
        job = _Job(fn, trio.Event(), trio.lowlevel.current_trio_token())
        self.pending += 1
        self._jobs.put(job)
        try:
            await job.done.wait()
        except BaseException:
            job.cancelled = True
            raise
        finally:
            self.pending -= 1
        if job.error is not None:
            raise job.error
        return job.result

    # -- worker thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        apply_torch_limits(self.gate.decision, torch, self.gate.ordinals)
        try:
            with self.gate.slot(SLOT, self._stop) as slot:
                slot.start()
                while not self._stop.is_set():
                    try:
                        job = self._jobs.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    if job is None:
                        break
                    if not job.cancelled:
                        try:
                            job.result = job.fn()
                        except Exception as e:  # reported to the requester, not fatal
                            job.error = e
                    try:
                        job.token.run_sync_soon(job.done.set)
                    except trio.RunFinishedError:
                        return
                    slot.checkpoint()  # counts the job, parks while paused, throttles
        except GateClosed:
            pass
        finally:  # nobody may wait forever on a job that will not run
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.error = ComputeRefused("the server stopped")
                    try:
                        job.token.run_sync_soon(job.done.set)
                    except trio.RunFinishedError:
                        pass

    # -- jobs (worker thread only) ---------------------------------------------------------
    def load(self, start: int, end: int, params: dict[int, np.ndarray] | None = None) -> None:
        """Hold blocks start..end-1 (new ones from `params` when given, else their initial
        parameters); blocks already held stay as they are."""
        for i in range(start, end):
            if i in self.blocks:
                continue
            block = build_block(self.spec, i).to(self.device)
            if params and i in params:
                set_flat(block, params[i])
            self.blocks[i] = block
            self.opts[i] = torch.optim.Adam(block.parameters(), lr=self.lr)
            self.steps[i] = 0

    def keep_only(self, start: int, end: int) -> None:
        for i in [i for i in self.blocks if not start <= i < end]:
            del self.blocks[i]
            del self.opts[i]
            del self.steps[i]
            self._digests.pop(i, None)
            self.grads.pop(i, None)
            self.grad_count.pop(i, None)
            self._stepped.pop(i, None)
            self._boundary.pop(i, None)

    def _span(self, start: int, end: int) -> list[Block]:
        missing = [i for i in range(start, end) if i not in self.blocks]
        if missing:
            raise ComputeRefused(f"blocks {missing} are not served here")
        return [self.blocks[i] for i in range(start, end)]

    def versions(self, start: int, end: int) -> list[int]:
        return [self.steps[i] for i in range(start, end)]

    def forward(self, x: np.ndarray, start: int, end: int
                ) -> tuple[np.ndarray, list[int], list[bytes]]:
        """The outputs, and the versions and digests of the parameters that made them (the
        answer's commitment; a checker recomputes with parameters of that digest)."""
        blocks = self._span(start, end)
        with torch.no_grad():
            h = torch.from_numpy(np.array(x, dtype=np.float32)).to(self.device)
            for b in blocks:
                h = b(h)
        out = h.cpu().numpy()
        if not np.isfinite(out).all():
            raise ComputeRefused("the blocks produced NaN or Inf")
        return out, self.versions(start, end), self.digests(start, end)

    def digests(self, start: int, end: int) -> list[bytes]:
        """sha256 of each block's parameters (commit.params_digest), worked out once per
        block object and version (every change of parameters makes a new version)."""
        out = []
        for i in range(start, end):
            block, version = self.blocks[i], self.steps[i]
            held = self._digests.get(i)
            if held is None or held[0] is not block or held[1] != version:
                held = (block, version, params_digest(to_flat(block)))
                self._digests[i] = held
            out.append(held[2])
        return out

    def backward(self, x: np.ndarray, grad: np.ndarray, start: int, end: int,
                 train: bool) -> np.ndarray:
        """d loss / d inputs, recomputing the forward (activations are not kept between
        requests); with `train`, each block's optimizer takes a step on its gradient."""
        blocks = self._span(start, end)
        h0 = torch.from_numpy(np.array(x, dtype=np.float32)).to(self.device).requires_grad_(True)
        h = h0
        for b in blocks:
            b.zero_grad(set_to_none=True)
            h = b(h)
        h.backward(torch.from_numpy(np.array(grad, dtype=np.float32)).to(self.device))
        assert h0.grad is not None
        out = h0.grad.cpu().numpy()
        if not np.isfinite(out).all():
            raise ComputeRefused("the gradient came out NaN or Inf")
        if train and self.update == "global":  # kept for the stage's step
            for i in range(start, end):
                self.grads[i] = add_grads(self.grads.get(i), self.blocks[i].parameters())
                self.grad_count[i] = self.grad_count.get(i, 0) + 1
        elif train:
            for i in range(start, end):
                torch.nn.utils.clip_grad_norm_(self.blocks[i].parameters(), 1.0)
                self.opts[i].step()
                self.steps[i] += 1
        return out

    def take_grads(self, index: int) -> np.ndarray:
        """Update "global": what block `index` sends to its stage's gradient average: the
        gradients it summed since its last step and how many micro-batches they hold,
        [grads, count] (the average of the sums over the average of the counts is the
        stage's mean gradient). The sums stay until `apply_grads` takes the step."""
        (block,) = self._span(index, index + 1)
        grads = self.grads.get(index)
        count = self.grad_count.get(index, 0)
        flat_g = (torch.cat([g.reshape(-1).cpu() for g in grads]).numpy() if grads else
                  np.zeros(sum(p.numel() for p in block.parameters()), dtype=np.float32))
        self._taken[index] = (flat_g.copy(), count)
        return np.concatenate([flat_g, np.array([count], dtype=np.float32)])

    def take_model(self, index: int) -> np.ndarray:
        """Update "global": what block `index` sends to its stage's model average (the
        repair of a server that joined late or missed a step): its parameters, its
        optimizer's moments and step count, [params, exp_avg, exp_avg_sq, step] (hivemind's
        optimizer averages its statistics the same way). Taken with `take_grads`, before
        the step of the same boundary."""
        (block,) = self._span(index, index + 1)
        m, v, step = adam_moments(self.opts[index], block)
        return np.concatenate([to_flat(block), m, v, np.array([step], dtype=np.float32)])

    def apply_grads(self, index: int, state: np.ndarray, tag: int = -1,
                    keep: bool = False) -> bool:
        """Update "global": the stage average of `take_grads`' vectors: one optimizer step
        on its mean gradient (none when no server of the stage computed a micro-batch). The
        sums taken leave the block's (what came since stays for the next step). With `keep`
        (a model round of the same boundary still running), the mean gradient is kept under
        `tag` (the boundary) for `apply_model` to take the step again. True when a step was
        taken."""
        (block,) = self._span(index, index + 1)
        n = sum(p.numel() for p in block.parameters())
        if state.shape != (n + 1,):
            raise ComputeRefused(f"a stage gradient of {state.shape[0]} values, not {n + 1}")
        taken, taken_count = self._taken.pop(index, (None, 0))
        if taken is not None and index in self.grads:
            for g, piece in zip(self.grads[index], pieces(taken, self.grads[index]),
                                strict=True):
                g.sub_(piece.to(g.device))
            self.grad_count[index] -= taken_count
            if self.grad_count[index] <= 0:
                del self.grads[index], self.grad_count[index]
        count = float(state[-1])
        self._stepped.pop(index, None)
        self._boundary[index] = max(tag, self._boundary.get(index, -1))
        if count <= 1e-6:
            return False
        mean = state[:n] / np.float32(count)
        self._step(index, block, mean)
        if keep:
            self._stepped[index] = (tag, mean)
        return True

    def apply_model(self, index: int, state: np.ndarray, tag: int = -1) -> bool:
        """Update "global": the stage average of `take_model`'s vectors: the block's
        parameters and optimizer state set to it; if this boundary's step (`tag`) was
        already taken, it is taken again from there with the same mean gradient, so every
        server of the stage ends where the stage's model does. True when a step was taken
        again. A model round that ends after a later boundary's step (a loaded machine) is
        refused: setting it would undo that step here and not on the stage's other servers."""
        (block,) = self._span(index, index + 1)
        n = sum(p.numel() for p in block.parameters())
        if state.shape != (3 * n + 1,):
            raise ComputeRefused(f"a stage model of {state.shape[0]} values, not {3 * n + 1}")
        later = self._boundary.get(index, -1)
        if tag >= 0 and later > tag:
            raise ComputeRefused(f"boundary {tag}'s model round came after boundary {later}'s "
                                 "step: not applied (the next model round repairs the block)")
        set_flat(block, state[:n])
        set_adam_moments(self.opts[index], block, state[n:2 * n], state[2 * n:3 * n],
                     float(state[3 * n]))
        self.steps[index] += 1  # new parameters: a new version
        stepped = self._stepped.pop(index, None)
        if stepped is None or stepped[0] != tag:
            return False
        self._step(index, block, stepped[1])
        return True

    def _step(self, index: int, block: Block, mean: np.ndarray) -> None:
        params = list(block.parameters())
        for p, piece in zip(params, pieces(mean, params), strict=True):
            p.grad = piece.to(p.device)
        torch.nn.utils.clip_grad_norm_(block.parameters(), 1.0)
        self.opts[index].step()
        block.zero_grad(set_to_none=True)
        self.steps[index] += 1

    def infer(self, session: tuple[str, str], x: np.ndarray, start: int, end: int,
              position: int) -> np.ndarray:
        """Generation: the outputs of blocks start..end-1 for the new positions `x`, which
        start at `position` of `session` ((client, its id)); each block keeps its keys and
        values, so a position is computed once. Position 0 starts the session afresh (a
        client replaying its prefix to this server after another left)."""
        blocks = self._span(start, end)
        now = time.monotonic()
        for key in [k for k, (used, _c) in self.sessions.items() if now - used > SESSION_IDLE]:
            del self.sessions[key]
        if session not in self.sessions and len(self.sessions) >= MAX_SESSIONS:
            raise ComputeRefused(f"busy: {MAX_SESSIONS} generation sessions open here")
        _used, caches = self.sessions.get(session, (now, {}))
        if position == 0:
            for i in range(start, end):
                caches.pop(i, None)
        have = {i: caches[i][0].shape[1] if i in caches else 0 for i in range(start, end)}
        if any(n != position for n in have.values()):
            raise ComputeRefused(f"session {session[1][:16]} is at position "
                                 f"{have[start]}, not {position} (replay the prefix from 0)")
        if position + x.shape[1] > self.spec.seq:
            raise ComputeRefused(f"a session holds at most {self.spec.seq} positions")
        with torch.no_grad():
            h = torch.from_numpy(np.array(x, dtype=np.float32)).to(self.device)
            for i, b in zip(range(start, end), blocks, strict=True):
                h, caches[i] = b.step(h, caches.get(i))
        out = h.cpu().numpy()
        if not np.isfinite(out).all():
            raise ComputeRefused("the blocks produced NaN or Inf")
        self.sessions[session] = (now, caches)
        return out

    def params(self, index: int) -> tuple[np.ndarray, list[int]]:
        (block,) = self._span(index, index + 1)
        return to_flat(block), self.versions(index, index + 1)

    def set_params(self, index: int, flat: np.ndarray) -> None:
        """New parameters for a block held (its stage's average): a new version."""
        (block,) = self._span(index, index + 1)
        set_flat(block, np.asarray(flat, dtype=np.float32))
        self.steps[index] += 1
