"""The SWARM server's side of `/grove/swarm/1.0.0`: requests read from a stream and answered,
one after another. A request is refused, with the reason on the stream, when the village serves
no blocks or not these, is paused or over its limits, when the queue is full (for a village it
does not trust, half full), when the batch's activations do not fit the RAM cap, or when its
tensors are malformed; the server keeps serving. A forward's answer carries the server's
signed commitment to the work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from core.errors import PeerMisbehaviour
from core.ledger.policy import queue_room
from core.memory import MemoryRefused
from core.net.framing import StreamClosed, read_frame, write_frame
from core.swarm import commit, wire

if TYPE_CHECKING:
    from core.ports import AdmissionPort, ServiceContext
    from core.swarm.model import ModelSpec
    from core.swarm.stages import StageAverages
    from core.swarm.worker import SpanWorker

QUEUE_MAX = 16             # requests waiting or computing; more are refused ("busy")
REQUEST_TIMEOUT = 30.0     # s a request may wait and compute before it is given up
READ_TIMEOUT = 10.0        # s a client may take to send its request
STREAM_IDLE = 60.0         # s a generation session's stream may wait for its next position
# a batch's memory, in copies of its input per block: what a forward keeps, and what a
# backward's autograd holds (the block's inputs, attention and feed-forward activations)
FORWARD_COPIES, BACKWARD_COPIES = 2, 8

# what the server serves now: (worker, model, the span fully loaded, its status sentence)
Serving = tuple["SpanWorker | None", "ModelSpec | None", "tuple[int, int] | None", str]


class SwarmAnswers:
    """Ports: admission, credits (the ledger: trust, and what was served to whom), stages
    (a block's step is waited for before training requests compute); `serving()` says
    what the server serves now. `served` (wall times), `refused` and `measured_bps` (the
    upload rate its answers measured) feed the server's view and throughput."""

    def __init__(self, ctx: ServiceContext, admission: AdmissionPort, credits: Any,
                 stages: StageAverages, serving: Callable[[], Serving]) -> None:
        self.ctx, self.admission, self.credits = ctx, admission, credits
        self.stages, self.serving = stages, serving
        self.served: deque[float] = deque()
        self.refused = 0
        self.measured_bps: float | None = None

    def served_last_hour(self, now: float) -> int:
        """Requests answered in the hour before `now` (older times are let go)."""
        while self.served and self.served[0] < now - 3600.0:
            self.served.popleft()
        return len(self.served)

    async def serve(self, stream: Any, peer: str) -> None:
        """Requests on one stream, each answered before the next is read: one for training
        (the client closes the stream), a generation session's positions one after another
        (the stream kept open while the session runs; idle for STREAM_IDLE, it is closed)."""
        first = True
        while True:
            try:
                data = await read_frame(stream, max_size=wire.MAX_FRAME,
                                        timeout=READ_TIMEOUT if first else STREAM_IDLE,
                                        peer=peer)
            except StreamClosed:
                return
            except PeerMisbehaviour as e:  # oversized or silent: say so, then drop the stream
                if not first and e.reason.startswith("silent for"):
                    return  # a session that ended without closing: not an offence
                self.refused += 1
                with trio.move_on_after(2):
                    await write_frame(stream, wire.encode(wire.SwarmAnswer(
                        wire.VERSION, False, e.reason)))
                raise
            first = False
            await self._serve_one(stream, peer, data)

    async def _serve_one(self, stream: Any, peer: str, data: bytes) -> None:
        answer = await self.answer(data, peer)
        if not answer.ok:
            self.refused += 1
        t0 = trio.current_time()
        payload = wire.encode(answer)
        await write_frame(stream, payload)
        from core.swarm import throughput as tp

        self.measured_bps = tp.update_measured(self.measured_bps, len(payload),
                                               trio.current_time() - t0)

    async def answer(self, data: bytes, peer: str) -> wire.SwarmAnswer:
        def refuse(why: str) -> wire.SwarmAnswer:
            worker = self.serving()[0]
            return wire.SwarmAnswer(wire.VERSION, False, why,
                                    queue=worker.pending if worker else 0)

        try:
            req = wire.decode_request(data)
        except wire.BadMessage as e:
            self.ctx.penalise(peer, f"swarm: {e}")
            return refuse(str(e))
        worker, spec, span, status = self.serving()
        if worker is None or spec is None or span is None:
            return refuse(f"this village serves no blocks now ({status})")
        if req.model != spec.name:
            return refuse(f"model {req.model!r} is not served here (this village serves "
                          f"{spec.name})")
        if not (span[0] <= req.start and req.end <= span[1]):
            return refuse(f"blocks {req.start}..{req.end - 1} are not served here (this "
                          f"village serves {span[0]}..{span[1] - 1})")
        d = self.admission.decision
        if not d.may_compute:
            return refuse(f"paused: {d.reason}")
        if worker.pending >= (room := queue_room(peer, self.credits.trusted, QUEUE_MAX)):
            return refuse(f"busy: {worker.pending} requests queued (at most {room})")
        try:
            if req.op == "params":
                flat, versions = await self._run(worker, lambda: worker.params(req.start))
                return wire.SwarmAnswer(wire.VERSION, True, output=wire.encode_flat(flat),
                                        queue=worker.pending, versions=versions)
            assert req.inputs is not None
            x = wire.decode_tensor(req.inputs, spec.hidden)
            try:  # the batch's activations, within the RAM cap: refused as busy past it
                held = self.ctx.memory.reserve(
                    x.nbytes * (req.end - req.start) * (
                        BACKWARD_COPIES if req.op == "backward" else FORWARD_COPIES),
                    f"a SWARM {req.op} batch")
            except MemoryRefused as e:
                return refuse(f"busy: {e.reason}")
            with held:
                out, versions, digests = await self._compute(worker, spec, req, x, peer)
        except wire.BadTensor as e:
            self.ctx.penalise(peer, f"swarm: {e}")
            return refuse(f"bad tensor: {e}")
        except trio.TooSlowError:
            return refuse(f"timed out after {REQUEST_TIMEOUT:g} s at the server")
        except Exception as e:  # ComputeRefused and the like: the reason goes back
            return refuse(str(e) or type(e).__name__)
        self.served.append(self.ctx.clock.wall())
        self.credits.served_to(peer, "swarm", int(x.shape[0]))
        output = wire.encode_tensor(out)
        signed = b""
        if req.op == "forward":  # the work, signed: anyone may check it later
            signed = commit.make(commit.Work(
                commit.VERSION, self.ctx.peer_id, spec.name, "forward", req.start, req.end,
                versions, digests, wire.digest(req.inputs),
                wire.digest(output), self.ctx.clock.wall()),
                self.ctx.sign)
        return wire.SwarmAnswer(wire.VERSION, True, output=output, queue=worker.pending,
                                versions=versions, commit=signed)

    async def _compute(self, worker: SpanWorker, spec: ModelSpec, req: wire.SwarmRequest,
                       x: Any, peer: str) -> tuple[Any, list[int], list[bytes]]:
        versions: list[int] = []
        digests: list[bytes] = []
        if req.op != "infer":  # (generation does not train: no step to wait for)
            await self.stages.step_done(req.start, req.end)
        if req.op == "forward":
            out, versions, digests = await self._run(worker, lambda: worker.forward(
                x, req.start, req.end))
        elif req.op == "infer":
            out = await self._run(worker, lambda: worker.infer(
                (peer, req.session), x, req.start, req.end, req.position))
        else:
            assert req.grad is not None
            g = wire.decode_tensor(req.grad, spec.hidden, batch_seq=x.shape[:2])
            train = req.train and self.ctx.settings.swarm_lr > 0
            out = await self._run(worker, lambda: worker.backward(
                x, g, req.start, req.end, train))
        return out, versions, digests

    @staticmethod
    async def _run(worker: SpanWorker, fn: Any) -> Any:
        with trio.fail_after(REQUEST_TIMEOUT):
            return await worker.submit(fn)
