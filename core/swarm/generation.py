"""Greedy generation through the swarm (Petals' path): a session's prompt goes through a route
of servers once, then each new token's position alone; each server keeps the session's
attention cache for the blocks it computed. A server that fails is replaced by another holding
its blocks or, where none holds all of them, by several that hold them between them (the route
gets longer); a replacement is sent every position so far again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from core.net.host import close_stream
from core.swarm import wire
from core.swarm.balancer import NoServer
from core.swarm.calls import ServerFailed, request
from core.swarm.client import HOP_TRIES, PipelineFailed, SwarmClient
from core.swarm.directory import ServerInfo


@dataclass
class GenHop:
    """One server of a generation session's route, and every input it was sent (replayed
    to a replacement when it leaves)."""
    server: ServerInfo
    start: int
    end: int
    history: list[np.ndarray] = field(default_factory=list)
    stream: Any = None  # kept open to `server` for the session's next positions


class Session:
    """One generation session of `client`: `hops` is its route as it changes; the client's
    `replaced` counts the servers it replaced."""

    def __init__(self, client: SwarmClient) -> None:
        self.client = client
        self.id = f"{client.ctx.rng.getrandbits(64):016x}"
        self.hops: list[GenHop] = []

    async def run(self, prompt: list[int], new_tokens: int, embed: Any, head: Any,
                  on_token: Any = None) -> list[int]:
        """The new tokens; `on_token(token)` is called as each one comes."""
        import torch

        from core.swarm.model import embed_at

        spec = self.client.spec
        if not prompt or len(prompt) + new_tokens > spec.seq or new_tokens < 1:
            raise ValueError(f"a prompt of 1 or more tokens and at most {spec.seq} "
                             f"positions in all ({len(prompt)} + {new_tokens} asked)")
        if any(not 0 <= t < spec.vocab for t in prompt):
            raise ValueError(f"tokens are 0..{spec.vocab - 1}")
        position, new = 0, list(prompt)
        out: list[int] = []
        try:
            while len(out) < new_tokens:
                with torch.no_grad():
                    x = embed_at(embed, torch.tensor([new]), position).numpy()
                h = await self._chain(x, position)
                with torch.no_grad():
                    token = int(head(torch.from_numpy(h[:, -1:]))[0, -1].argmax())
                out.append(token)
                if on_token is not None:
                    on_token(token)
                position, new = position + len(new), [token]
        finally:  # the session's streams: one per server of the route
            for hop in self.hops:
                if hop.stream is not None:
                    with trio.CancelScope(shield=True):
                        await close_stream(hop.stream)
                    hop.stream = None
        return out

    async def _chain(self, x: np.ndarray, position: int) -> np.ndarray:
        hops, client = self.hops, self.client
        if not hops:
            at = 0
            while at < client.spec.blocks:
                try:
                    server = client.choose(at, set())
                except NoServer:
                    await client.refresh()
                    try:
                        server = client.choose(at, set())
                    except NoServer as e:
                        raise PipelineFailed(f"block {at}: {e}") from None
                end = min(server.record.end, client.spec.blocks)
                hops.append(GenHop(server, at, end))
                at = end
        i = 0
        while i < len(hops):
            x, route = await self._hop(hops[i], x, position)
            hops[i:i + 1] = route  # (the hop itself, or the servers that took its blocks over)
            i += len(route)
        return x

    async def _hop(self, hop: GenHop, x: np.ndarray, position: int
                   ) -> tuple[np.ndarray, list[GenHop]]:
        """The hop's outputs for the new positions `x`, and the hops that stand for it now:
        itself, or (its server failed and no other holds all of its blocks) the servers
        that hold them between them."""
        client = self.client
        tried: set[str] = set()
        replay = False
        for _attempt in range(HOP_TRIES):
            inputs = np.concatenate([*hop.history, x], axis=1) if replay else x
            req = wire.SwarmRequest(wire.VERSION, "infer", client.spec.name, hop.start,
                                    hop.end, wire.encode_tensor(inputs), session=self.id,
                                    position=0 if replay else position)
            try:
                answer = await request(client.ctx, hop.server, req, client.timeout, hold=hop)
                assert answer.output is not None
                try:
                    out = wire.decode_tensor(answer.output, client.spec.hidden,
                                             batch_seq=(inputs.shape[0], inputs.shape[1]))
                except wire.BadTensor as e:
                    raise ServerFailed(hop.server.peer_id, f"returned a bad tensor: {e}",
                                       True) from None
            except ServerFailed as e:
                tried.add(hop.server.peer_id)
                client.stats.retries += 1
                client.ban(hop.server, e.reason, e.fault)
                cover = await self._replacement(hop, tried)
                client.replaced += 1
                if len(cover) > 1:
                    return await self._split(hop, cover, x)
                hop.server = cover[0]
                replay = True  # the replacement has none of this session: all of it again
                continue
            hop.history.append(x)
            return out[:, -x.shape[1]:].copy(), [hop]
        raise PipelineFailed(f"blocks {hop.start}..{hop.end - 1}: {HOP_TRIES} servers "
                             "failed in a row")

    async def _split(self, hop: GenHop, cover: list[ServerInfo], x: np.ndarray
                     ) -> tuple[np.ndarray, list[GenHop]]:
        """`hop`'s blocks through `cover` (servers in block order that hold them between
        them), each sent every position so far: the first the hop's own inputs, each next
        one what the one before returned."""
        seq = np.concatenate([*hop.history, x], axis=1)
        route: list[GenHop] = []
        at = hop.start
        for server in cover:
            part = GenHop(server, at, min(server.record.end, hop.end))
            seq, parts = await self._hop(part, seq, 0)
            route += parts
            at = part.end
        return seq[:, -x.shape[1]:].copy(), route

    async def _replacement(self, hop: GenHop, tried: set[str]) -> list[ServerInfo]:
        """Another server holding all of the hop's blocks, or else servers that hold them
        between them (in block order; the route gets longer, but the session goes on)."""
        client = self.client
        for refreshed in (False, True):
            if refreshed:
                await client.refresh()
            fewer = set(tried)
            while True:
                try:
                    server = client.choose(hop.start, fewer)
                except NoServer:
                    break
                if server.record.end >= hop.end:
                    return [server]
                fewer.add(server.peer_id)  # holds fewer of the hop's blocks: not alone
            cover = self._cover(hop.start, hop.end, tried)
            if cover:
                return cover
        raise PipelineFailed(f"blocks {hop.start}..{hop.end - 1}: no other servers hold "
                             "them")

    def _cover(self, start: int, end: int, tried: set[str]) -> list[ServerInfo]:
        """Servers, in block order, that hold blocks start..end-1 between them ([]: none do)."""
        route: list[ServerInfo] = []
        at = start
        while at < end:
            try:
                server = self.client.choose(at, tried)
            except NoServer:
                return []
            route.append(server)
            at = min(server.record.end, end)
        return route
