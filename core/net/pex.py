"""Peer exchange, `/grove/pex/1.0.0`: "who do you know?" — the small discovery step that lets a
village bootstrapped off one peer meet the others. (The DHT supersedes it for large networks.)

Request: empty frame. Response: one msgpack `PexResponse` frame, capped in size and count.
"""

from __future__ import annotations

import msgspec

from core.errors import PeerMisbehaviour

PROTOCOL = "/grove/pex/1.0.0"
VERSION = 1
MAX_PEERS = 32
MAX_ADDRS = 4
MAX_ADDR_LEN = 256
MAX_FRAME = 32 * 1024
TIMEOUT = 5.0


class PexPeer(msgspec.Struct, frozen=True):
    peer_id: str
    addrs: list[str]


class PexResponse(msgspec.Struct, frozen=True):
    v: int
    peers: list[PexPeer]


def encode_response(peers: list[PexPeer]) -> bytes:
    return msgspec.msgpack.encode(PexResponse(VERSION, peers[:MAX_PEERS]))


def decode_response(data: bytes, sender: str) -> PexResponse:
    if len(data) > MAX_FRAME:
        raise PeerMisbehaviour(sender, "pex response too large")
    try:
        msg = msgspec.msgpack.decode(data, type=PexResponse)
    except msgspec.DecodeError as e:
        raise PeerMisbehaviour(sender, f"malformed pex response: {e}") from None
    if msg.v != VERSION:
        raise PeerMisbehaviour(sender, f"pex version {msg.v} not supported")
    if len(msg.peers) > MAX_PEERS:
        raise PeerMisbehaviour(sender, "pex response lists too many entries")
    for p in msg.peers:
        if len(p.addrs) > MAX_ADDRS or len(p.peer_id) > 128:
            raise PeerMisbehaviour(sender, "pex entry too large")
    if any(len(a) > MAX_ADDR_LEN for p in msg.peers for a in p.addrs):
        raise PeerMisbehaviour(sender, "pex address too long")
    return msg
