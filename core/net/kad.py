"""Grove's Kademlia wire protocol, `/grove/kad/1.0.0`: the standard Kademlia protobuf
`Message` in uvarint-length-prefixed frames (so other libp2p implementations can join), on
Grove's own protocol id (so Grove never mixes with the public IPFS DHT).

This module speaks bytes and protobufs; the decisions (what to store, whom to ask) live in
`core.dht`. Plain dataclasses cross the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import multiaddr
import trio
from google.protobuf.message import DecodeError
from libp2p.kad_dht.pb.kademlia_pb2 import Message, Record
from libp2p.peer.id import ID

from core.errors import NetworkError, PeerMisbehaviour

PROTOCOL = "/grove/kad/1.0.0"
MAX_REQUEST = 8 * 1024
MAX_RESPONSE = 64 * 1024
MAX_PEERS_IN_MESSAGE = 40
MAX_ADDRS_PER_PEER = 8

FIND_NODE = Message.MessageType.FIND_NODE
GET_VALUE = Message.MessageType.GET_VALUE
PUT_VALUE = Message.MessageType.PUT_VALUE
ADD_PROVIDER = Message.MessageType.ADD_PROVIDER
GET_PROVIDERS = Message.MessageType.GET_PROVIDERS
PING = Message.MessageType.PING
TYPE_NAMES = {FIND_NODE: "FIND_NODE", GET_VALUE: "GET_VALUE", PUT_VALUE: "PUT_VALUE",
              ADD_PROVIDER: "ADD_PROVIDER", GET_PROVIDERS: "GET_PROVIDERS", PING: "PING"}


@dataclass(frozen=True)
class KadPeer:
    peer_id: str
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class KadMessage:
    type: int
    key: bytes = b""
    record_key: bytes = b""
    record_value: bytes = b""
    closer: tuple[KadPeer, ...] = ()
    providers: tuple[KadPeer, ...] = ()


# Parsing multiaddrs and peer ids dominated the CPU of a busy DHT node: the same few hundred
# peers appear in every answer, so their conversions are cached.
@lru_cache(maxsize=8192)
def _addr_bytes(addr: str) -> bytes | None:
    try:
        return bytes(multiaddr.Multiaddr(addr).to_bytes())
    except Exception:
        return None


@lru_cache(maxsize=8192)
def _addr_text(raw: bytes) -> str:
    return str(multiaddr.Multiaddr(raw))


@lru_cache(maxsize=8192)
def _id_bytes(peer_id: str) -> bytes:
    return bytes(ID.from_base58(peer_id).to_bytes())


@lru_cache(maxsize=8192)
def _id_text(raw: bytes) -> str:
    return str(ID(raw).to_base58())


@lru_cache(maxsize=8192)  # the same peers fill every answer; `extend` copies what it gets
def _peer_to_pb(p: KadPeer) -> Message.Peer:
    addrs = [b for b in (_addr_bytes(a) for a in p.addrs[:MAX_ADDRS_PER_PEER]) if b]
    return Message.Peer(id=_id_bytes(p.peer_id), addrs=addrs,
                        connection=Message.ConnectionType.CAN_CONNECT)


def _peer_from_pb(p: Message.Peer, sender: str) -> KadPeer:
    try:
        return _kad_peer(p.id, tuple(p.addrs[:MAX_ADDRS_PER_PEER]))
    except Exception as e:
        raise PeerMisbehaviour(sender, f"malformed peer in a DHT message: {e}") from None


@lru_cache(maxsize=8192)
def _kad_peer(raw_id: bytes, raw_addrs: tuple[bytes, ...]) -> KadPeer:
    return KadPeer(_id_text(raw_id), tuple(_addr_text(a) for a in raw_addrs))


def encode(msg: KadMessage) -> bytes:
    pb = Message(type=msg.type, key=msg.key)  # type: ignore[arg-type]
    if msg.record_key or msg.record_value:
        pb.record.CopyFrom(Record(key=msg.record_key, value=msg.record_value))
    pb.closerPeers.extend(_peer_to_pb(p) for p in msg.closer[:MAX_PEERS_IN_MESSAGE])
    pb.providerPeers.extend(_peer_to_pb(p) for p in msg.providers[:MAX_PEERS_IN_MESSAGE])
    return pb.SerializeToString()


def decode(data: bytes, sender: str) -> KadMessage:
    pb = Message()
    try:
        pb.ParseFromString(data)
    except (DecodeError, ValueError) as e:
        raise PeerMisbehaviour(sender, f"malformed DHT message: {e}") from None
    if pb.type not in TYPE_NAMES:
        raise PeerMisbehaviour(sender, f"unknown DHT message type {pb.type}")
    if len(pb.closerPeers) > MAX_PEERS_IN_MESSAGE or len(pb.providerPeers) > \
            MAX_PEERS_IN_MESSAGE:
        raise PeerMisbehaviour(sender, "too many peers in a DHT message")
    return KadMessage(
        type=pb.type, key=bytes(pb.key),
        record_key=bytes(pb.record.key) if pb.HasField("record") else b"",
        record_value=bytes(pb.record.value) if pb.HasField("record") else b"",
        closer=tuple(_peer_from_pb(p, sender) for p in pb.closerPeers),
        providers=tuple(_peer_from_pb(p, sender) for p in pb.providerPeers))


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class FrameReader:
    """Buffered uvarint-framed reads from one stream."""

    def __init__(self, stream: Any, peer: str) -> None:
        self.stream = stream
        self.peer = peer
        self.buf = bytearray()

    async def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                part = await self.stream.read(max(n - len(self.buf), 4096))
            except EOFError:  # py-libp2p's StreamEOF
                part = b""
            if not part:
                return False
            self.buf += part
        return True

    async def read(self, max_size: int) -> bytes | None:
        """One frame, or None at a clean end of stream."""
        length = shift = 0
        i = 0
        while True:
            if not await self._fill(i + 1):
                if i == 0 and not self.buf:
                    return None
                raise PeerMisbehaviour(self.peer, "stream ended inside a frame header")
            b = self.buf[i]
            length |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80:
                break
            shift += 7
            if shift > 35:
                raise PeerMisbehaviour(self.peer, "frame length varint too long")
        if length > max_size:
            raise PeerMisbehaviour(self.peer, f"DHT frame of {length} bytes exceeds "
                                              f"{max_size}")
        if not await self._fill(i + length):
            raise PeerMisbehaviour(self.peer, "stream ended inside a frame")
        data = bytes(self.buf[i:i + length])
        del self.buf[:i + length]
        return data


async def send(stream: Any, msg: KadMessage) -> None:
    data = encode(msg)
    await stream.write(uvarint(len(data)) + data)


async def request(stream: Any, msg: KadMessage, peer: str, timeout: float,
                  reader: FrameReader | None = None) -> KadMessage:
    """Send `msg`, read the answer; PeerMisbehaviour on silence or garbage. `reader`: the
    stream's reader when the stream carries several requests (it may hold buffered bytes)."""
    with trio.move_on_after(timeout):
        await send(stream, msg)
        data = await (reader or FrameReader(stream, peer)).read(MAX_RESPONSE)
        if data is None:  # the peer went away (or is shutting down): not an offence
            raise NetworkError(f"{peer} closed the DHT stream without answering", "")
        return decode(data, peer)
    raise PeerMisbehaviour(peer, f"no DHT answer within {timeout:g} s")
