"""The SWARM client: a stochastic pipeline per micro-batch through the villages serving blocks.

For each micro-batch the client walks the model from block 0: at each position it picks one of
the servers holding that block with the stage's balancer (interleaved weighted round-robin on
advertised throughput, new servers first, banned ones skipped) and asks it to run as much of
the model as it holds from there. Backward goes back through the same chain (each server
recomputes its forward; with training on it steps its blocks' optimizer).

Service levels (`core.ledger.levels`): every forward answer carries the server's signed
commitment, checked here against what was sent and received. At `basic` any server may take
the hop and a share of hops is recomputed (`core.swarm.checks`: with other servers'
parameters) at a rate that falls as the server proves itself; at `checked` only servers
whose stake this village honours, at the higher `checked` rates; at `assured` two staked
servers of different trust clusters compute each hop and the output is used only when they
agree (when they do not, both are recomputed and the one that fails is banned). In this
client every check runs before the hop's output is used, at every level. A server that fails,
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

from core.ledger import levels
from core.swarm import checks, commit, directory, wire
from core.swarm.assurance import Assurance, CheckStats
from core.swarm.balancer import Balancer, NoServer
from core.swarm.calls import REQUEST_TIMEOUT, ServerFailed, request
from core.swarm.directory import ServerInfo

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.swarm.generation import GenHop
    from core.swarm.model import ModelSpec

log = logging.getLogger(__name__)

HOP_TRIES = 4
BATCH_TRIES = 3
BUSY_BAN = 1.0  # s a server that said "busy" rests (not a fault: no misbehaviour recorded)
ASSURED_TRIES = 3  # second servers tried for one assured hop


class PipelineFailed(Exception):
    """A micro-batch could not get through the swarm; `str()` says where and why."""


@dataclass
class Hop:
    server: ServerInfo
    start: int
    end: int
    inputs: np.ndarray
    commit: bytes = b""  # the server's signed commitment to the forward (evidence)


@dataclass
class ClientStats(CheckStats):
    micro_batches: int = 0
    retries: int = 0
    redone: int = 0
    bans: list[str] = field(default_factory=list)  # "peer: reason"
    per_server: dict[str, int] = field(default_factory=dict)


class SwarmClient:
    """A pipeline's client: `dht` lists the servers, `credits` (the ledger) is told what
    each server did and what the sampled checks found, and holds the stakes (`stakes`, a
    `core.ledger.stake.StakeBook`) this village honours. `level` is the service level;
    `check_rate` (None: the level's schedule) fixes the share of hops checked; `distinct`
    is how `assured` tells trust clusters apart (`levels.cluster`)."""

    def __init__(self, ctx: ServiceContext, dht: Any, credits: Any, spec: ModelSpec, *,
                 timeout: float = REQUEST_TIMEOUT, check_rate: float | None = None,
                 level: str = "basic", distinct: str = "network") -> None:
        self.ctx = ctx
        self.dht = dht
        self.credits = credits
        self.spec = spec
        self.timeout = timeout
        self.level = level
        self.servers: list[ServerInfo] = []
        self.balancers: dict[int, Balancer] = {}
        self.stats = ClientStats()
        self.assurance = Assurance(ctx, spec, credits, self.stats, level=level,
                                   check_rate=check_rate, distinct=distinct)
        self.route: list[GenHop] = []  # the last generation session's servers
        self.replaced = 0                # servers that session replaced

    async def refresh(self) -> list[ServerInfo]:
        """Re-read who serves what (online servers only)."""
        found = await directory.read_servers(self.ctx, self.dht, self.spec.name,
                                             self.spec.blocks)
        self.servers = [s for s in found if s.record.state == "online"
                        and s.record.model == self.spec.name]
        stakes = self.assurance.stakes
        if self.level != "basic" and stakes is not None:
            await stakes.refresh(s.peer_id for s in self.servers)
        return self.servers

    def reputation(self, peer: str) -> levels.Reputation:
        return self.assurance.reputation(peer)

    @property
    def check_rate(self) -> float | None:
        """The share of hops checked (None: the level's schedule)."""
        return self.assurance.check_rate

    @check_rate.setter
    def check_rate(self, rate: float | None) -> None:
        self.assurance.check_rate = rate

    def coverage(self) -> list[int]:
        """Servers per block, from the last refresh."""
        return [sum(1 for s in self.servers if s.record.start <= b < s.record.end)
                for b in range(self.spec.blocks)]

    def ban(self, server: ServerInfo, reason: str, fault: bool) -> None:
        until = self.ctx.clock.wall() + BUSY_BAN if reason.startswith("busy") else server.expires_at
        for b in self.balancers.values():
            b.ban(server.peer_id, until)
        if fault:
            self.ctx.penalise(server.peer_id, f"swarm: {reason}")
        if not reason.startswith("busy"):
            self.stats.bans.append(f"{server.peer_id[-8:]}: {reason}")
            log.info("swarm: %s banned: %s", server.peer_id[-8:], reason)

    def choose(self, position: int, exclude: set[str]) -> ServerInfo:
        now = self.ctx.clock.wall()
        distrusted = self.credits.distrusted  # failed more of our checks than passed
        announced = [s for s in self.servers if s.record.start <= position < s.record.end]
        live = [s for s in announced if s.expires_at > now and s.peer_id not in distrusted]
        here = {s.peer_id: s for s in live
                if self.assurance.may_serve(s.peer_id)}
        if announced and not here:  # say why, not "none announced"
            n_distrusted = sum(1 for s in announced if s.peer_id in distrusted)
            raise NoServer(f"no server can take the micro-batch at the {self.level} level "
                           f"({len(announced)} announced: {n_distrusted} distrusted after "
                           f"failed checks, {len(announced) - len(live) - n_distrusted} "
                           f"expired, {len(live) - len(here)} not staked enough or caught)")
        balancer = self.balancers.setdefault(position, Balancer())
        peer = balancer.choose({p: s.record.throughput for p, s in here.items()}, now,
                               exclude=exclude)
        return here[peer]

    async def _hop(self, op: str, server: ServerInfo, start: int, end: int, x: np.ndarray,
                   *, grad: np.ndarray | None = None, train: bool = True, check: bool = True,
                   hops: list[Hop] | None = None) -> np.ndarray:
        """One request to `server`; a forward's commitment is verified (and, with `hops`,
        the hop is added to it) and sampled for a check at this level's rate."""
        sent = wire.encode_tensor(x)
        req = wire.SwarmRequest(wire.VERSION, op, self.spec.name, start, end, sent,
                                wire.encode_tensor(grad) if grad is not None else None, train)
        answer = await request(self.ctx, server, req, self.timeout)
        assert answer.output is not None
        try:  # a server that returns garbage is caught here
            out = wire.decode_tensor(answer.output, self.spec.hidden,
                                     batch_seq=(x.shape[0], x.shape[1]))
        except wire.BadTensor as e:
            raise ServerFailed(server.peer_id, f"returned a bad tensor: {e}", True) from None
        work = (self.assurance.commitment(server, start, end, sent, answer)
                if op == "forward" else None)
        self.stats.per_server[server.peer_id] = self.stats.per_server.get(server.peer_id, 0) + 1
        units = int(x.shape[0])
        self.credits.consumed(server.peer_id, "swarm", units,
                                  hashlib.sha256(answer.output.data[:4096]).digest())
        if work is not None:
            self.stats.commitments += 1
            rate = self.assurance.rate(server.peer_id)
            self.assurance.scored(server.peer_id, hops=1)
            if check and self.ctx.rng.random() < rate:
                await self._check(server, work, answer.commit, x, out)
            if hops is not None:
                hops.append(Hop(server, start, end, x, answer.commit))
        return out.copy()

    async def _check(self, server: ServerInfo, work: commit.Work, signed: bytes,
                     x: np.ndarray, out: np.ndarray) -> None:
        """Recompute the hop (`core.swarm.checks`); a different result fails the check,
        bans the server, costs it the credit and keeps its commitment as evidence.
        Inconclusive counts nothing."""
        verdict = await self.assurance.verdict(work, x, out, self.servers)
        self.assurance.record(server.peer_id, verdict, signed, int(x.shape[0]), (x, out))

    async def _assured(self, first: ServerInfo, start: int, end: int, x: np.ndarray, *,
                       hops: list[Hop], tried: set[str]) -> np.ndarray:
        """Both halves of an assured hop: `first` and a staked server of another trust
        cluster holding the same blocks compute it; the output is used when they agree.
        When they differ, both are recomputed: one that fails is banned (ServerFailed for
        `first`; the second is replaced); when neither can be settled, the hop fails."""
        exclude = set(tried)
        for _ in range(ASSURED_TRIES):
            second = self.assurance.second(first, start, end, servers=self.servers,
                                           exclude=exclude, used=self.stats.per_server)
            pair: list[Hop] = []
            out_a = await self._hop("forward", first, start, end, x, check=False, hops=pair)
            try:
                out_b = await self._hop("forward", second, start, end, x, check=False,
                                        hops=pair)
            except ServerFailed as e:
                exclude.add(second.peer_id)
                self.ban(second, e.reason, e.fault)
                continue
            if checks.difference(out_a, out_b) <= checks.TOLERANCE:
                self.assurance.agreed(first.peer_id, second.peer_id)
                hops.append(pair[0])
                return out_a
            self.stats.disagreements += 1
            works = [commit.open_signed(h.commit, self.ctx.clock.wall()) for h in pair]
            verdicts = [await self.assurance.verdict(w, x, o, self.servers)
                        for w, o in zip(works, (out_a, out_b), strict=True)]
            try:
                self.assurance.record(second.peer_id, verdicts[1], pair[1].commit,
                                      int(x.shape[0]), (x, out_b))
            except ServerFailed as e:
                exclude.add(second.peer_id)
                self.ban(second, e.reason, e.fault)
            self.assurance.record(first.peer_id, verdicts[0], pair[0].commit,
                                  int(x.shape[0]), (x, out_a))
            if verdicts[0].ok:
                hops.append(pair[0])
                return out_a
            raise ServerFailed(first.peer_id, "its answer and another server's differed and "
                                              "no recomputation settled which was right", False)
        raise NoServer(f"assured: no second server answered blocks {start}..{end - 1} "
                       f"within {ASSURED_TRIES} tries")

    async def forward(self, h: np.ndarray) -> tuple[np.ndarray, list[Hop]]:
        """Through every block; the hops taken (for the backward pass)."""
        hops: list[Hop] = []
        position = 0
        while position < self.spec.blocks:
            tried: set[str] = set()
            refreshed = False  # (the second of an assured hop: the records read may expire)
            for attempt in range(HOP_TRIES):
                try:
                    server = self.choose(position, tried)
                except NoServer as e:
                    if attempt == 0 or not tried:
                        await self.refresh()
                        try:
                            server = self.choose(position, tried)
                        except NoServer:
                            raise PipelineFailed(f"block {position}: {e}") from None
                    else:
                        raise PipelineFailed(f"block {position}: {e}") from None
                end = min(server.record.end, self.spec.blocks)
                try:
                    if self.level == "assured":
                        out = await self._assured(server, position, end, h, hops=hops,
                                                  tried=tried)
                    else:
                        out = await self._hop("forward", server, position, end, h, hops=hops)
                except NoServer as e:
                    if refreshed:
                        raise PipelineFailed(f"block {position}: {e}") from None
                    refreshed = True
                    await self.refresh()
                    continue
                except ServerFailed as e:
                    tried.add(server.peer_id)
                    self.stats.retries += 1
                    if e.peer == server.peer_id:
                        self.ban(server, e.reason, e.fault)
                    continue
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
                    self.ban(server, e.reason, e.fault)
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

    # -- generation (Petals' path: core.swarm.generation) ---------------------------------
    async def generate(self, prompt: list[int], new_tokens: int, embed: Any, head: Any,
                       on_token: Any = None) -> list[int]:
        """Greedy generation through the swarm (`core.swarm.generation.Session`): the new
        tokens; `on_token(token)` is called as each one comes. `route` is the session's
        servers as they change, `replaced` how many it replaced."""
        from core.swarm.generation import Session

        session = Session(self)
        self.route, self.replaced = session.hops, 0
        return await session.run(prompt, new_tokens, embed, head, on_token)

    async def evaluate(self, ids: Any, targets: Any, embed: Any, head: Any) -> float:
        """Loss without training (a forward only)."""
        import torch

        with torch.no_grad():
            out, _ = await self.forward(embed(ids).numpy())
            logits = head(torch.from_numpy(out))
            return float(torch.nn.functional.cross_entropy(
                logits.reshape(-1, self.spec.vocab), targets.reshape(-1)))
