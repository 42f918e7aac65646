"""The SWARM client: a stochastic pipeline per micro-batch through the villages serving blocks.

For each micro-batch the client walks the model from block 0: at each position it picks one of
the servers holding that block with the stage's balancer (interleaved weighted round-robin on
advertised throughput, new servers first, banned ones skipped) and asks it to run as much of
the model as it holds from there. Backward goes back through the same chain (each server
recomputes its forward; with training on it steps its blocks' optimizer). A server that fails,
times out or returns something that is not a finite tensor of the right shape is banned until
its record expires and the hop is retried elsewhere; a backward whose server vanished goes to
another server holding the same blocks, or the whole micro-batch is redone. The client holds
the embedding and the head and trains them with its own optimizer.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream
from core.swarm import directory, wire
from core.swarm.balancer import Balancer, NoServer
from core.swarm.directory import ServerInfo

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.swarm.model import ModelSpec

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 20.0
HOP_TRIES = 4
BATCH_TRIES = 3
BUSY_BAN = 1.0  # s a server that said "busy" rests (not a fault: no misbehaviour recorded)
CHECK_RATE = 0.02  # share of forward hops recomputed here from the server's own parameters
CHECK_TOLERANCE = 1e-3  # relative difference a recomputation may show (float arithmetic)


class ServerFailed(Exception):
    def __init__(self, peer: str, reason: str, fault: bool) -> None:
        super().__init__(f"{peer[-8:]}: {reason}")
        self.peer, self.reason, self.fault = peer, reason, fault


class PipelineFailed(Exception):
    """A micro-batch could not get through the swarm; `str()` says where and why."""


@dataclass
class GenHop:
    """One server of a generation session's route, and every input it was sent (replayed
    to a replacement when it leaves)."""
    server: ServerInfo
    start: int
    end: int
    history: list[np.ndarray] = field(default_factory=list)
    stream: Any = None  # kept open to `server` for the session's next positions


@dataclass
class Hop:
    server: ServerInfo
    start: int
    end: int
    inputs: np.ndarray


@dataclass
class ClientStats:
    micro_batches: int = 0
    retries: int = 0
    redone: int = 0
    bans: list[str] = field(default_factory=list)  # "peer: reason"
    per_server: dict[str, int] = field(default_factory=dict)
    checks_passed: int = 0
    checks_failed: int = 0


async def _request(ctx: ServiceContext, server: ServerInfo, req: wire.SwarmRequest,
                   timeout: float, hold: GenHop | None = None) -> wire.SwarmAnswer:
    """One request and its answer on a new stream, or (`hold`: a generation session's hop)
    on the stream the hop keeps open to its server, opened here the first time; a stream
    that fails is closed and forgotten."""
    host = ctx.transport
    if server.addrs and not host.is_connected(server.peer_id):
        host.remember(server.peer_id, server.addrs)
    try:
        with trio.fail_after(timeout):
            stream = hold.stream if hold is not None else None
            if stream is None:
                stream = await host.open_stream(server.peer_id, wire.PROTOCOL, timeout=timeout)
            answered = False
            try:
                await write_frame(stream, wire.encode(req))
                data = await read_frame(stream, max_size=wire.MAX_FRAME, timeout=timeout,
                                        peer=server.peer_id)
                answered = True
            finally:
                if hold is not None and answered:
                    hold.stream = stream
                else:
                    if hold is not None:
                        hold.stream = None
                    await close_stream(stream)
    except trio.TooSlowError:
        raise ServerFailed(server.peer_id, f"no answer in {timeout:g} s", False) from None
    except (NetworkError, StreamClosed, EOFError) as e:
        raise ServerFailed(server.peer_id, f"unreachable ({type(e).__name__})", False) from None
    except PeerMisbehaviour as e:
        raise ServerFailed(server.peer_id, e.reason, True) from None
    except Exception as e:  # a stream reset mid-answer: the server went away
        raise ServerFailed(server.peer_id, f"stream broke ({type(e).__name__})", False) from None
    try:
        answer = wire.decode_answer(data)
    except wire.BadMessage as e:
        raise ServerFailed(server.peer_id, str(e), True) from None
    if not answer.ok:
        raise ServerFailed(server.peer_id, answer.error[:200], False)
    if answer.output is None:
        raise ServerFailed(server.peer_id, "an answer without a tensor", True)
    return answer


async def fetch_params(ctx: ServiceContext, server: ServerInfo, block: int, size: int,
                       version: int | None = None) -> np.ndarray | None:
    """Block `block`'s parameters as `server` holds them, or None (logged) if it cannot say
    (or, with `version`, holds another version of them by now)."""
    req = wire.SwarmRequest(wire.VERSION, "params", server.record.model, block, block + 1)
    try:
        answer = await _request(ctx, server, req, REQUEST_TIMEOUT)
        assert answer.output is not None
        if version is not None and answer.versions != [version]:
            return None
        return wire.decode_flat(answer.output, size)
    except ServerFailed as e:
        if e.fault:
            ctx.penalise(server.peer_id, f"swarm: {e.reason}")
        log.info("swarm: parameters of block %d not fetched from %s", block, e)
    except wire.BadTensor as e:
        ctx.penalise(server.peer_id, f"swarm: parameters: {e}")
    return None


class SwarmClient:
    """A pipeline's client: `dht` lists the servers, `credits` (the ledger) is told what
    each server did and what the sampled checks found."""

    def __init__(self, ctx: ServiceContext, dht: Any, credits: Any, spec: ModelSpec, *,
                 timeout: float = REQUEST_TIMEOUT, check_rate: float = CHECK_RATE) -> None:
        self.ctx = ctx
        self.dht = dht
        self.credits = credits
        self.spec = spec
        self.timeout = timeout
        self.check_rate = check_rate
        self._block_size: int | None = None
        self.servers: list[ServerInfo] = []
        self.balancers: dict[int, Balancer] = {}
        self.stats = ClientStats()
        self.route: list[GenHop] = []  # the last generation session's servers
        self.replaced = 0                # servers that session replaced

    async def refresh(self) -> list[ServerInfo]:
        """Re-read who serves what (online servers only)."""
        found = await directory.read_servers(self.ctx, self.dht, self.spec.name,
                                             self.spec.blocks)
        self.servers = [s for s in found if s.record.state == "online"
                        and s.record.model == self.spec.name]
        return self.servers

    def coverage(self) -> list[int]:
        """Servers per block, from the last refresh."""
        return [sum(1 for s in self.servers if s.record.start <= b < s.record.end)
                for b in range(self.spec.blocks)]

    def _ban(self, server: ServerInfo, reason: str, fault: bool) -> None:
        until = self.ctx.clock.wall() + BUSY_BAN if reason.startswith("busy") else server.expires_at
        for b in self.balancers.values():
            b.ban(server.peer_id, until)
        if fault:
            self.ctx.penalise(server.peer_id, f"swarm: {reason}")
        if not reason.startswith("busy"):
            self.stats.bans.append(f"{server.peer_id[-8:]}: {reason}")
            log.info("swarm: %s banned: %s", server.peer_id[-8:], reason)

    def _choose(self, position: int, exclude: set[str]) -> ServerInfo:
        now = self.ctx.clock.wall()
        distrusted = self.credits.distrusted  # failed more of our checks than passed
        announced = [s for s in self.servers if s.record.start <= position < s.record.end]
        here = {s.peer_id: s for s in announced
                if s.expires_at > now and s.peer_id not in distrusted}
        if announced and not here:  # say why, not "none announced"
            n_distrusted = sum(1 for s in announced if s.peer_id in distrusted)
            raise NoServer(f"no server can take the micro-batch ({len(announced)} announced: "
                           f"{n_distrusted} distrusted after failed checks, "
                           f"{len(announced) - n_distrusted} expired)")
        balancer = self.balancers.setdefault(position, Balancer())
        peer = balancer.choose({p: s.record.throughput for p, s in here.items()}, now,
                               exclude=exclude)
        return here[peer]

    async def _hop(self, op: str, server: ServerInfo, start: int, end: int, x: np.ndarray,
                   *, grad: np.ndarray | None = None, train: bool = True) -> np.ndarray:
        req = wire.SwarmRequest(wire.VERSION, op, self.spec.name, start, end,
                                wire.encode_tensor(x),
                                wire.encode_tensor(grad) if grad is not None else None, train)
        answer = await _request(self.ctx, server, req, self.timeout)
        assert answer.output is not None
        try:  # a server that returns garbage is caught here
            out = wire.decode_tensor(answer.output, self.spec.hidden,
                                     batch_seq=(x.shape[0], x.shape[1]))
        except wire.BadTensor as e:
            raise ServerFailed(server.peer_id, f"returned a bad tensor: {e}", True) from None
        self.stats.per_server[server.peer_id] = self.stats.per_server.get(server.peer_id, 0) + 1
        units = int(x.shape[0])
        self.credits.consumed(server.peer_id, "swarm", units,
                                  hashlib.sha256(answer.output.data[:4096]).digest())
        if op == "forward" and self.ctx.rng.random() < self.check_rate:
            await self._check(server, start, end, x, out=out, versions=answer.versions)
        return out.copy()

    async def _check(self, server: ServerInfo, start: int, end: int, x: np.ndarray, *,
                     out: np.ndarray, versions: list[int]) -> None:
        """Recompute the hop here from the server's own parameters (at the versions that
        made the answer); a different result fails the check, bans the server and costs it
        the credit. Inconclusive (it trained in between, or could not say) counts nothing."""
        from core.swarm.worker import block_size, recompute

        if len(versions) != end - start:
            return
        if self._block_size is None:
            self._block_size = await trio.to_thread.run_sync(block_size, self.spec)
        params = {}
        for b, v in zip(range(start, end), versions, strict=True):
            got = await fetch_params(self.ctx, server, b, self._block_size, version=v)
            if got is None:
                return
            params[b] = got
        want = await trio.to_thread.run_sync(recompute, self.spec, params, x)
        diff = float(np.abs(want - out).max() / (np.abs(want).max() + 1e-6))
        if diff > CHECK_TOLERANCE:
            reason = (f"a sampled check failed: the output differs from a recomputation "
                      f"with its own parameters by {diff:.2g} (relative)")
            self.stats.checks_failed += 1
            self.credits.check_failed(server.peer_id, "swarm", int(x.shape[0]), reason)
            raise ServerFailed(server.peer_id, reason, True)
        self.stats.checks_passed += 1
        self.credits.check_passed(server.peer_id, "swarm")

    async def forward(self, h: np.ndarray) -> tuple[np.ndarray, list[Hop]]:
        """Through every block; the hops taken (for the backward pass)."""
        hops: list[Hop] = []
        position = 0
        while position < self.spec.blocks:
            tried: set[str] = set()
            for attempt in range(HOP_TRIES):
                try:
                    server = self._choose(position, tried)
                except NoServer as e:
                    if attempt == 0 or not tried:
                        await self.refresh()
                        try:
                            server = self._choose(position, tried)
                        except NoServer:
                            raise PipelineFailed(f"block {position}: {e}") from None
                    else:
                        raise PipelineFailed(f"block {position}: {e}") from None
                end = min(server.record.end, self.spec.blocks)
                try:
                    out = await self._hop("forward", server, position, end, h)
                except ServerFailed as e:
                    tried.add(server.peer_id)
                    self.stats.retries += 1
                    self._ban(server, e.reason, e.fault)
                    continue
                hops.append(Hop(server, position, end, h))
                h, position = out, end
                break
            else:
                raise PipelineFailed(f"block {position}: {HOP_TRIES} servers failed in a row")
        return h, hops

    async def backward(self, hops: list[Hop], grad: np.ndarray, train: bool = True
                       ) -> np.ndarray:
        for hop in reversed(hops):
            candidates = [hop.server] + [
                s for s in self.servers if s.peer_id != hop.server.peer_id
                and s.record.start <= hop.start and hop.end <= s.record.end]
            for server in candidates[:HOP_TRIES]:
                try:
                    grad = await self._hop("backward", server, hop.start, hop.end,
                                           hop.inputs, grad=grad, train=train)
                    break
                except ServerFailed as e:
                    self.stats.retries += 1
                    self._ban(server, e.reason, e.fault)
            else:
                raise PipelineFailed(f"no server could take the backward of blocks "
                                     f"{hop.start}..{hop.end - 1}")
        return grad

    async def train_step(self, ids: Any, targets: Any, embed: Any, head: Any, opt: Any, *,
                         step: bool = True) -> float:
        """One micro-batch: forward through the swarm, loss at the head, backward through
        the swarm, the client's optimizer steps (with `step` false, the gradients are left
        in the ends' `.grad` for the caller). Redone from the start (up to BATCH_TRIES)
        when a pipeline breaks beyond a hop's retries. Returns the loss."""
        import torch

        for attempt in range(BATCH_TRIES):
            opt.zero_grad()
            x = embed(ids)
            try:
                out, hops = await self.forward(x.detach().numpy())
                y = torch.from_numpy(out).requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(
                    head(y).reshape(-1, self.spec.vocab), targets.reshape(-1))
                loss.backward()
                assert y.grad is not None
                g = await self.backward(hops, y.grad.numpy())
            except PipelineFailed:
                if attempt == BATCH_TRIES - 1:
                    raise
                self.stats.redone += 1
                await self.refresh()
                continue
            x.backward(torch.from_numpy(g))
            if step:
                opt.step()
            self.stats.micro_batches += 1
            return float(loss.detach())
        raise AssertionError("unreachable")

    # -- generation (Petals' path) ---------------------------------------------------------
    async def generate(self, prompt: list[int], new_tokens: int, embed: Any, head: Any,
                       on_token: Any = None) -> list[int]:
        """Greedy generation through the swarm: the prompt goes through a route of servers
        once, then each new token's position alone (each server keeps the session's
        attention cache). A server that fails is replaced by another holding its blocks,
        which is sent the whole prefix again. Returns the new tokens; `on_token(token)` is
        called as each one comes."""
        import torch

        from core.swarm.model import embed_at

        if not prompt or len(prompt) + new_tokens > self.spec.seq or new_tokens < 1:
            raise ValueError(f"a prompt of 1 or more tokens and at most {self.spec.seq} "
                             f"positions in all ({len(prompt)} + {new_tokens} asked)")
        if any(not 0 <= t < self.spec.vocab for t in prompt):
            raise ValueError(f"tokens are 0..{self.spec.vocab - 1}")
        session = f"{self.ctx.rng.getrandbits(64):016x}"
        hops: list[GenHop] = []
        self.route, self.replaced = hops, 0  # the session's servers, as they change
        position, new = 0, list(prompt)
        out: list[int] = []
        try:
            while len(out) < new_tokens:
                with torch.no_grad():
                    x = embed_at(embed, torch.tensor([new]), position).numpy()
                h = await self._infer_chain(session, hops, x, position)
                with torch.no_grad():
                    token = int(head(torch.from_numpy(h[:, -1:]))[0, -1].argmax())
                out.append(token)
                if on_token is not None:
                    on_token(token)
                position, new = position + len(new), [token]
        finally:  # the session's streams: one per server of the route
            for hop in hops:
                if hop.stream is not None:
                    with trio.CancelScope(shield=True):
                        await close_stream(hop.stream)
                    hop.stream = None
        return out

    async def _infer_chain(self, session: str, hops: list[GenHop], x: np.ndarray,
                           position: int) -> np.ndarray:
        if not hops:
            at = 0
            while at < self.spec.blocks:
                try:
                    server = self._choose(at, set())
                except NoServer:
                    await self.refresh()
                    try:
                        server = self._choose(at, set())
                    except NoServer as e:
                        raise PipelineFailed(f"block {at}: {e}") from None
                end = min(server.record.end, self.spec.blocks)
                hops.append(GenHop(server, at, end))
                at = end
        for hop in hops:
            x = await self._infer_hop(session, hop, x, position)
        return x

    async def _infer_hop(self, session: str, hop: GenHop, x: np.ndarray, position: int
                         ) -> np.ndarray:
        tried: set[str] = set()
        replay = False
        for _attempt in range(HOP_TRIES):
            inputs = np.concatenate([*hop.history, x], axis=1) if replay else x
            req = wire.SwarmRequest(wire.VERSION, "infer", self.spec.name, hop.start, hop.end,
                                    wire.encode_tensor(inputs), session=session,
                                    position=0 if replay else position)
            try:
                answer = await _request(self.ctx, hop.server, req, self.timeout, hold=hop)
                assert answer.output is not None
                try:
                    out = wire.decode_tensor(answer.output, self.spec.hidden,
                                             batch_seq=(inputs.shape[0], inputs.shape[1]))
                except wire.BadTensor as e:
                    raise ServerFailed(hop.server.peer_id, f"returned a bad tensor: {e}",
                                       True) from None
            except ServerFailed as e:
                tried.add(hop.server.peer_id)
                self.stats.retries += 1
                self._ban(hop.server, e.reason, e.fault)
                hop.server = await self._replacement(hop, tried)
                self.replaced += 1
                replay = True  # the replacement has none of this session: all of it again
                continue
            hop.history.append(x)
            return out[:, -x.shape[1]:].copy()
        raise PipelineFailed(f"blocks {hop.start}..{hop.end - 1}: {HOP_TRIES} servers "
                             "failed in a row")

    async def _replacement(self, hop: GenHop, tried: set[str]) -> ServerInfo:
        """Another server holding all of the hop's blocks."""
        for refreshed in (False, True):
            if refreshed:
                await self.refresh()
            while True:
                try:
                    server = self._choose(hop.start, tried)
                except NoServer:
                    break
                if server.record.end >= hop.end:
                    return server
                tried.add(server.peer_id)  # holds fewer of the hop's blocks: not this one
        raise PipelineFailed(f"blocks {hop.start}..{hop.end - 1}: no other server holds "
                             "them")

    async def evaluate(self, ids: Any, targets: Any, embed: Any, head: Any) -> float:
        """Loss without training (a forward only)."""
        import torch

        with torch.no_grad():
            out, _ = await self.forward(embed(ids).numpy())
            logits = head(torch.from_numpy(out))
            return float(torch.nn.functional.cross_entropy(
                logits.reshape(-1, self.spec.vocab), targets.reshape(-1)))
