"""Villages on the same local network find each other with mDNS (no bootstrap needed).

Each village registers a `_grove-village._udp.local.` service (Grove's own type: it never
answers or mixes with the public `_p2p._udp` libp2p mDNS) whose TXT record carries its peer id
and up to four dialable TCP addresses, and browses for the others. python-zeroconf (a
well-kept pure-Python mDNS implementation, already a py-libp2p dependency) runs its own threads:
its browse callback only hands the name over to trio (`trio.from_thread.run_sync` into a
memory channel); the lookup of the service's TXT record runs in a worker thread; parsing and
dialling happen on the node's trio loop.

Interfaces follow the listen address: a village listening on one address advertises and
browses on that interface only, one listening on 0.0.0.0 on every non-loopback IPv4 interface,
and one listening on loopback only (tests, benchmarks) does not use mDNS at all.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

log = logging.getLogger(__name__)

SERVICE_TYPE = "_grove-village._udp.local."
TXT_VERSION = "1"
MAX_ADDRS = 4
MAX_TXT_VALUE = 200  # bytes; one DNS character-string holds 255
INFO_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class LanPeer:
    peer_id: str
    addrs: tuple[str, ...]  # /ip4/…/tcp/… without /p2p/


class BadAdvert(ValueError):
    pass


def interfaces_for(listen_host: str, local_ipv4: list[str]) -> list[str]:
    """IPv4 addresses to run mDNS on, from the listen address ([] = do not use mDNS)."""
    if listen_host.startswith("127.") or listen_host in ("localhost", "::1"):
        return []
    if listen_host in ("0.0.0.0", ""):
        return [a for a in local_ipv4 if not a.startswith("127.")]
    return [listen_host]


def encode_txt(peer_id: str, addrs: list[str]) -> dict[str, str]:
    txt = {"v": TXT_VERSION, "id": peer_id}
    for i, a in enumerate(addrs[:MAX_ADDRS]):
        if len(a) <= MAX_TXT_VALUE:
            txt[f"a{i}"] = a
    return txt


def decode_txt(props: dict[bytes, bytes | None]) -> LanPeer:
    """A neighbour's TXT record; BadAdvert with the reason when it is not a village's."""
    def text(key: str) -> str:
        raw = props.get(key.encode())
        if raw is None:
            return ""
        if len(raw) > MAX_TXT_VALUE:
            raise BadAdvert(f"TXT value {key!r} longer than {MAX_TXT_VALUE} bytes")
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise BadAdvert(f"TXT value {key!r} is not ASCII") from None

    if text("v") != TXT_VERSION:
        raise BadAdvert(f"unknown advert version {text('v')!r}")
    peer_id = text("id")
    if not (40 <= len(peer_id) <= 64 and peer_id.isalnum()):
        raise BadAdvert("no valid peer id")
    addrs = []
    for i in range(MAX_ADDRS):
        a = text(f"a{i}")
        parts = a.split("/")
        if len(parts) == 5 and parts[1] == "ip4" and parts[3] == "tcp" and parts[4].isdigit():
            try:
                socket.inet_aton(parts[2])
            except OSError:
                continue
            addrs.append(a)
    if not addrs:
        raise BadAdvert("no dialable TCP address")
    return LanPeer(peer_id, tuple(addrs))


@asynccontextmanager
async def open_mdns(peer_id: str, ips: list[str], port: int
                    ) -> AsyncIterator[trio.MemoryReceiveChannel[LanPeer]]:
    """Advertise this village on `ips` and yield the villages seen there (never ourselves)."""
    from zeroconf import ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

    send, receive = trio.open_memory_channel[LanPeer](64)
    names, names_out = trio.open_memory_channel[str](64)
    token = trio.lowlevel.current_trio_token()
    addrs = [f"/ip4/{ip}/tcp/{port}" for ip in ips]
    zc: Any = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=ips))
    info = ServiceInfo(SERVICE_TYPE, f"{peer_id[-24:]}.{SERVICE_TYPE}",
                       addresses=[socket.inet_aton(ip) for ip in ips], port=port,
                       properties=encode_txt(peer_id, addrs))

    def on_change(zeroconf: Any, service_type: str, name: str,
                  state_change: Any) -> None:  # a zeroconf thread
        if state_change is not ServiceStateChange.Removed:
            try:
                trio.from_thread.run_sync(names.send_nowait, name, trio_token=token)
            except (trio.WouldBlock, trio.RunFinishedError, trio.BrokenResourceError):
                pass  # busy (the next announcement repeats it) or closing

    async def resolve() -> None:
        async with names_out:
            async for name in names_out:
                got = await trio.to_thread.run_sync(zc.get_service_info, SERVICE_TYPE, name,
                                                    INFO_TIMEOUT_MS)
                if got is None:
                    continue
                try:
                    peer = decode_txt(dict(got.properties))
                except BadAdvert as e:
                    log.info("mDNS: ignoring %s: %s", name, e)
                    continue
                if peer.peer_id != peer_id:
                    try:
                        send.send_nowait(peer)
                    except trio.WouldBlock:
                        pass

    try:
        await trio.to_thread.run_sync(zc.register_service, info)
        browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
        log.info("mDNS: advertising on %s", ", ".join(ips))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(resolve)
            try:
                yield receive
            finally:
                nursery.cancel_scope.cancel()
        browser.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_close, zc, info)


def _close(zc: Any, info: Any) -> None:
    try:
        zc.unregister_service(info)
    except Exception:
        pass
    zc.close()
