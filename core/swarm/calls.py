"""Requests to SWARM servers: one request and its answer, a block's parameters, and the
failure a client acts on (`ServerFailed`: whose, why, and whether it was the server's fault).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import trio

from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream
from core.swarm import wire

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.swarm.directory import ServerInfo
    from core.swarm.generation import GenHop

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 20.0


class ServerFailed(Exception):
    def __init__(self, peer: str, reason: str, fault: bool) -> None:
        super().__init__(f"{peer[-8:]}: {reason}")
        self.peer, self.reason, self.fault = peer, reason, fault


async def request(ctx: ServiceContext, server: ServerInfo, req: wire.SwarmRequest,
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
        answer = await request(ctx, server, req, REQUEST_TIMEOUT)
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
