"""`/grove/train/1.0.0`: a village that joins or fell behind downloads a training project's
state (its parameters at a step) from a peer.

One stream: joiner -> server `StateRequest`; server -> joiner `StateHeader` and one frame of
`length` float32 values, or `StateRefused`. The joiner checks the length against its own model
(the shape), the header's hash against what the server announced in its signed progress record
(re-read when the server has stepped since), and the bytes against the hash; any mismatch is
recorded against the server and the caller tries another peer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import trio

from core.dht.records import MAX_EPOCH
from core.errors import NetworkError, PeerMisbehaviour
from core.memory import MemoryRefused
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream
from core.training.collab import Progress, state_source

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.training.progress import ProgressBoard

log = logging.getLogger(__name__)

PROTOCOL = "/grove/train/1.0.0"
VERSION = 1
MAX_CONTROL = 4096


class StateRequest(msgspec.Struct, frozen=True, tag="state-request"):
    v: int
    project: str


class StateHeader(msgspec.Struct, frozen=True, tag="state"):
    v: int
    project: str
    epoch: int
    length: int
    state_hash: str


class StateRefused(msgspec.Struct, frozen=True, tag="state-refused"):
    v: int
    reason: str


_decoder = msgspec.msgpack.Decoder(StateRequest | StateHeader | StateRefused)


def _decode(data: bytes, peer: str) -> StateRequest | StateHeader | StateRefused:
    try:
        msg = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise PeerMisbehaviour(peer, f"malformed training message: {e}") from None
    if msg.v != VERSION:
        raise PeerMisbehaviour(peer, f"training protocol version {msg.v}, expected {VERSION}")
    if len(getattr(msg, "project", "")) > 32 or len(getattr(msg, "reason", "")) > 256 or (
            isinstance(msg, StateHeader) and not (
                0 <= msg.epoch <= MAX_EPOCH and 0 <= msg.length <= 2**31
                and len(msg.state_hash) == 64)):
        raise PeerMisbehaviour(peer, f"training message out of range: {type(msg).__name__}")
    return msg


def _request(data: bytes, peer: str) -> StateRequest:
    msg = _decode(data, peer)
    if not isinstance(msg, StateRequest):
        raise PeerMisbehaviour(peer, f"sent {type(msg).__name__} to the state server")
    return msg


def state_hash(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float32).tobytes()).hexdigest()


async def download(ctx: ServiceContext, dht: Any, project: str, size: int, source: Progress
                   ) -> tuple[np.ndarray, int] | None:
    """`source`'s state of `project` (a model of `size` values): (parameters, step), or None
    when it refused, failed, moved on without saying so yet, or lied (recorded)."""
    host = ctx.transport
    peer = source.peer_id
    try:
        with trio.fail_after(30):
            stream = await host.open_stream(peer, PROTOCOL, timeout=10)
            try:
                await write_frame(stream, msgspec.msgpack.encode(
                    StateRequest(VERSION, project)))
                head = _decode(await read_frame(stream, max_size=MAX_CONTROL, timeout=10,
                                                peer=peer), peer)
                if isinstance(head, StateRefused):
                    log.info("training: %s refused its state: %s", peer, head.reason)
                    return None
                if not isinstance(head, StateHeader) or head.project != project:
                    raise PeerMisbehaviour(peer, "answered a state request with something "
                                           "else")
                if head.length != size:
                    raise PeerMisbehaviour(peer, f"state of {head.length} values; the "
                                           f"model has {size}")
                if head.epoch != source.epoch:  # it stepped since: what does it say now?
                    fresh = await dht.get_progress(project, peer)
                    if fresh is None or fresh.record.epoch != head.epoch:
                        log.info("training: %s moved on to step %d", peer, head.epoch)
                        return None
                    source = Progress(peer, fresh.record.epoch, fresh.record.samples,
                                      fresh.record.samples_per_second,
                                      fresh.record.state_hash)
                if head.state_hash != source.state_hash:
                    raise PeerMisbehaviour(peer, f"state at step {head.epoch} that is not "
                                           "what it announced")
                data = await read_frame(stream, max_size=head.length * 4, timeout=20,
                                        peer=peer)
            finally:
                await close_stream(stream)
    except (trio.TooSlowError, NetworkError, StreamClosed) as e:
        log.info("training: state download from %s failed: %s", peer, type(e).__name__)
        return None
    except PeerMisbehaviour as e:
        ctx.penalise(e.peer, f"training: {e.reason}")
        return None
    values = np.frombuffer(data, dtype=np.float32) if len(data) == size * 4 else None
    with ctx.compute.counted():  # hashing megabytes: within the CPU share
        matches = values is not None and state_hash(values) == head.state_hash
    if values is None or not matches:
        ctx.penalise(peer, "training: state that does not match its hash")
        return None
    if not np.isfinite(values).all():
        ctx.penalise(peer, "training: state with NaN or Inf")
        return None
    return values.copy(), head.epoch


async def serve(ctx: ServiceContext, stream: Any, peer: str,
                snapshot: Callable[[str], tuple[np.ndarray, int, str] | None]) -> None:
    """Answer one state request; `snapshot(project)` is (parameters, step, hash) or None when
    this village does not train the project now."""
    try:
        req = _request(await read_frame(stream, max_size=MAX_CONTROL, timeout=10,
                                        peer=peer), peer)
        held = snapshot(req.project)
        if held is None:
            await write_frame(stream, msgspec.msgpack.encode(
                StateRefused(VERSION, "not training this project")))
            return
        params, epoch, digest = held
        await write_frame(stream, msgspec.msgpack.encode(
            StateHeader(VERSION, req.project, epoch, int(params.size), digest)))
        await write_frame(stream, params.tobytes())
    except PeerMisbehaviour as e:
        ctx.penalise(peer, f"training: {e.reason}")
        raise
    finally:
        await close_stream(stream)


class StateTransfer:
    """Catching up from and serving the collaboration's state: a mixin of TrainingService
    (which holds the projects, the DHT and the context these use)."""

    ctx: ServiceContext
    directory: Any
    credits: Any  # the ledger: `trusted`, the villages whose word counts when they are in
    projects: dict[str, Any]
    _running: dict[str, Any]
    progress: ProgressBoard

    def _accuracy(self, st: Any) -> float | None:
        raise NotImplementedError

    # -- state: catching up and serving -----------------------------------------------------
    async def _catch_up(self, st: Any) -> None:
        tried: set[str] = set()
        while True:
            source = state_source(st.epoch, st.hash, [p for p in st.peers.values()
                                                      if p.peer_id not in tried],
                                  trusted=self.credits.trusted)
            if source is None:
                return
            tried.add(source.peer_id)
            st.status = f"downloading the collaboration's state from {source.peer_id[-6:]}"
            got = await self._download(st, source)
            if got is None:
                await trio.sleep(0.5)  # a peer that just stepped says so a moment later
                continue
            st.set_params(got[0], got[1])
            self.progress.publish(st)
            st.prev_aggregate = None
            st.accuracy = await trio.to_thread.run_sync(self._accuracy, st)
            log.info("training %s: joined at step %d from %s", st.spec.name, st.epoch,
                     source.peer_id)
            return

    async def _download(self, st: Any, source: Progress
                        ) -> tuple[np.ndarray, int] | None:
        assert st.params is not None
        try:  # the frame and its copy, within the RAM cap, before a byte comes
            held = self.ctx.memory.reserve(2 * 4 * st.params.size,
                                           f"the {st.spec.name} state download")
        except MemoryRefused as e:
            st.status = f"cannot download the collaboration's state: {e.reason}"
            log.info("training %s: %s", st.spec.name, st.status)
            return None
        with held:
            return await download(self.ctx, self.directory, st.spec.name, st.params.size,
                                  source)

    async def _serve(self, stream: Any, peer: str) -> None:
        def snapshot(project: str) -> tuple[np.ndarray, int, str] | None:
            st = self.projects.get(project)
            if st is None or st.params is None or project not in self._running:
                return None
            return st.params, st.epoch, st.hash  # one consistent snapshot

        await serve(self.ctx, stream, peer, snapshot)
