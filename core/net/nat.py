"""NAT traversal: AutoNAT (am I reachable?), relay reservations and circuit dials, DCUtR.

Built on py-libp2p 0.8.1's circuit relay v2, AutoNAT v1 and DCUtR, composed, with two fixes:

* py-libp2p's AutoNAT server "dials back" with `host.connect`, which returns the connection the
  request arrived on, so every node looked public. `GroveAutoNAT` dials back over a fresh TCP
  connection and checks that a libp2p listener answers there (multistream-select header).
* the circuit transport is used explicitly for `/p2p-circuit` addresses (the swarm does not pick
  it), and DCUtR runs beside it so a relayed connection is upgraded to direct where NATs allow;
  the relayed connection stays as the fallback.

Peer ids and addresses cross this boundary as strings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p.host.autonat.autonat import AUTONAT_PROTOCOL_ID, AutoNATService
from libp2p.host.autonat.pb.autonat_pb2 import Message as AutoNATMessage
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.config import RelayConfig
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service

from core.errors import NetworkError

log = logging.getLogger(__name__)

DIAL_BACK_TIMEOUT = 4.0
AUTONAT_TIMEOUT = 8.0
MULTISTREAM = b"/multistream/1.0.0\n"


def _tcp_target(raw: bytes) -> tuple[str, int] | None:
    try:
        ma = multiaddr.Multiaddr(raw)
        return ma.value_for_protocol("ip4"), int(ma.value_for_protocol("tcp"))
    except Exception:
        return None


async def probe_libp2p_listener(ip: str, port: int, timeout: float = DIAL_BACK_TIMEOUT) -> bool:
    """A fresh TCP connection to ip:port answers the multistream-select header."""
    with trio.move_on_after(timeout):
        try:
            stream = await trio.open_tcp_stream(ip, port)
        except OSError:
            return False
        async with stream:
            await stream.send_all(bytes([len(MULTISTREAM)]) + MULTISTREAM)
            got = b""
            while len(got) < len(MULTISTREAM) + 1:
                part = await stream.receive_some(64)
                if not part:
                    break
                got += part
            return MULTISTREAM in got
    return False


class GroveAutoNAT(AutoNATService):
    """AutoNAT v1 (standard wire format) whose server dials back on a fresh connection."""

    async def _try_dial(self, peer_id: ID, addrs: list[bytes]) -> bytes | None:
        for raw in addrs:
            target = _tcp_target(raw)
            if target and await probe_libp2p_listener(*target):
                return bytes(raw)
        return None


@dataclass(frozen=True)
class NatVerdict:
    public: int      # servers that reached us on a fresh connection
    private: int     # servers that could not (or refused: our address is not what they see)
    asked: int

    @property
    def status(self) -> str:
        if self.public > self.private:
            return "public"
        if self.private:
            return "private"
        return "unknown"


class NatClient:
    """What a village needs to be reachable from behind a NAT. Trio-only."""

    def __init__(self, host: Any) -> None:
        self._host = host
        self.autonat = GroveAutoNAT(host, serve=True)
        self.protocol = CircuitV2Protocol(host, allow_hop=False)
        self.transport = CircuitV2Transport(host, self.protocol, RelayConfig())
        self.dcutr = DCUtRProtocol(host)
        self.reservations: dict[str, tuple[str, float]] = {}  # relay id -> (relay addr, expiry)
        self._nursery: trio.Nursery | None = None

    # -- AutoNAT ------------------------------------------------------------------------------
    async def check_reachability(self, peer_ids: list[str]) -> NatVerdict:
        public = private = 0
        for pid in peer_ids:
            try:
                with trio.fail_after(AUTONAT_TIMEOUT):
                    status, _ = await self.autonat.query_server(ID.from_base58(pid))
            except Exception as e:
                log.debug("AutoNAT query to %s failed: %s", pid, e)
                continue
            if status == AutoNATMessage.OK:
                public += 1
            elif status in (AutoNATMessage.E_DIAL_ERROR, AutoNATMessage.E_DIAL_REFUSED):
                private += 1
        return NatVerdict(public, private, len(peer_ids))

    def supports(self, peer_id: str, protocol: str) -> bool:
        try:
            got = self._host.get_peerstore().supports_protocols(ID.from_base58(peer_id),
                                                                [protocol])
        except Exception:
            return False
        return bool(got)

    def is_relay(self, peer_id: str) -> bool:
        return self.supports(peer_id, str(HOP_PROTOCOL))

    def is_autonat_server(self, peer_id: str) -> bool:
        return self.supports(peer_id, str(AUTONAT_PROTOCOL_ID))

    # -- relays -------------------------------------------------------------------------------
    async def reserve(self, relay_id: str, relay_addr: str, timeout: float = 10.0) -> bool:
        """Reserve a slot on a relay; the transport renews it before it expires."""
        assert self._nursery is not None
        rid = ID.from_base58(relay_id)
        with trio.move_on_after(timeout):
            try:
                stream = await self._host.new_stream(rid, [HOP_PROTOCOL])
            except Exception as e:
                log.info("relay %s refused a reservation stream: %s", relay_id, e)
                return False
            ok = await self.transport.reserve(stream, rid, self._nursery)
            if ok:
                expiry = float(self.transport._reservations.get(rid, time.time() + 3600))
                self.reservations[relay_id] = (relay_addr, expiry)
                log.info("reserved a slot on relay %s (until %s)", relay_id,
                         time.strftime("%H:%M:%S", time.localtime(expiry)))
            return bool(ok)
        log.info("relay %s did not answer a reservation within %g s", relay_id, timeout)
        return False

    def drop_reservation(self, relay_id: str) -> None:
        self.reservations.pop(relay_id, None)
        self.transport._reservations.pop(ID.from_base58(relay_id), None)

    def circuit_addrs(self, own_id: str) -> list[str]:
        """Addresses through our live reservations: `<relay addr>/p2p/<relay>/p2p-circuit`."""
        now = time.time()
        return [f"{addr}/p2p/{rid}/p2p-circuit" for rid, (addr, exp) in
                sorted(self.reservations.items()) if exp > now]

    async def dial_circuit(self, address: str, timeout: float = 15.0) -> str:
        """Dial `<relay addr>/p2p/<relay>/p2p-circuit/p2p/<peer>` through the relay."""
        try:
            ma = multiaddr.Multiaddr(address)
        except Exception as e:
            raise NetworkError(f"The address '{address}' cannot be used ({e}).",
                               "Give a circuit address ending in /p2p-circuit/p2p/<id>.") from None
        with trio.move_on_after(timeout):
            try:
                conn = await self.transport.dial(ma)
            except Exception as e:
                raise NetworkError(f"Could not reach {address} through its relay "
                                   f"({type(e).__name__}: {e}).",
                                   "The relay may be gone or full; try again later.") from None
            return str(conn.muxed_conn.peer_id.to_base58())
        raise NetworkError(f"{address} did not answer through its relay within {timeout:g} s.",
                           "The relay may be overloaded; try again later.")


@asynccontextmanager
async def open_nat_client(host: Any) -> AsyncIterator[NatClient]:
    """Circuit relay v2 stop side + DCUtR (+ AutoNAT server) for a GroveHost, until exit."""
    client = NatClient(host._host)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(background_trio_service(client.protocol))
        await client.protocol.event_started.wait()
        await stack.enter_async_context(background_trio_service(client.dcutr))
        await client.dcutr.event_started.wait()
        nursery = await stack.enter_async_context(trio.open_nursery())
        client._nursery = nursery
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
