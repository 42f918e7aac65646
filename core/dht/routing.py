"""Kademlia routing table: k-buckets by XOR distance. Pure; time is passed in.

A peer enters only after it answered (or asked) on Grove's own DHT protocol, so a node that
speaks only `/ipfs/kad/1.0.0` never gets in. A full bucket keeps its long-lived peers
(Kademlia's preference for uptime) and parks newcomers in a small replacement cache that
fills the bucket when a member fails.

Address diversity (as libp2p's kbucket filter): at most PER_PREFIX_PER_BUCKET contacts of
one network prefix (an IPv4 /24, an IPv6 /48) in a bucket and PER_PREFIX_IN_TABLE in the
table, so ids ground from one subnet cannot fill the buckets around a key (an eclipse).
Loopback, private and link-local addresses are exempt (a LAN or one machine is one network
by design).
"""

from __future__ import annotations

import heapq
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

from core.dht.keyspace import BITS, bucket_index, peer_kad_id

K = 20
REPLACEMENTS = 5
PER_PREFIX_PER_BUCKET = 2
PER_PREFIX_IN_TABLE = 10
SIZE_NEAREST = 16          # contacts the network-size measure reads (error about 1/sqrt(14))
COUNTED_UNCERTAINTY = 0.1  # of a size counted from the table (contacts that left since)
SIZE_MIN_DENSITY = 6       # contacts before a density may outvote the count (error about 1/2;
#                            from 2 contacts it reads 3 villages as 10 about once in a hundred)


@lru_cache(maxsize=8192)
def network_prefix(addrs: tuple[str, ...]) -> str:
    """The /24 (IPv4) or /48 (IPv6) of the first public address in `addrs`, or "" when
    there is none (no address, or only loopback, private or link-local ones)."""
    for a in addrs:
        parts = a.split("/")
        if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
            continue
        try:
            ip = ipaddress.ip_address(parts[2])
        except ValueError:
            continue
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified:
            continue
        bits = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))
    return ""


@dataclass
class Contact:
    peer_id: str
    addrs: tuple[str, ...]
    kid: int
    last_seen: float
    failures: int = 0


@dataclass
class Bucket:
    contacts: list[Contact] = field(default_factory=list)  # oldest first
    replacements: list[Contact] = field(default_factory=list)
    refreshed_at: float = 0.0


class RoutingTable:
    def __init__(self, own_peer_id: str, k: int = K) -> None:
        self.own = peer_kad_id(own_peer_id)
        self.own_peer_id = own_peer_id
        self.k = k
        self.buckets: list[Bucket] = [Bucket() for _ in range(BITS)]
        # every contact in one list, rebuilt after a change of who is in the table: every
        # request served and every lookup reads it, and walking 256 mostly empty buckets
        # each time was the DHT's largest cost of its own in a 100-village simulation
        self._flat: list[Contact] | None = None

    def __len__(self) -> int:
        return sum(len(b.contacts) for b in self.buckets)

    def __contains__(self, peer_id: str) -> bool:
        return self.get(peer_id) is not None

    def get(self, peer_id: str) -> Contact | None:
        kid = peer_kad_id(peer_id)
        idx = bucket_index(self.own, kid)
        if idx < 0:
            return None
        return next((c for c in self.buckets[idx].contacts if c.peer_id == peer_id), None)

    def add(self, peer_id: str, addrs: tuple[str, ...], now: float) -> bool:
        """Record a peer that spoke our protocol. True if it is in the table now."""
        if peer_id == self.own_peer_id:
            return False
        kid = peer_kad_id(peer_id)
        bucket = self.buckets[bucket_index(self.own, kid)]
        for i, c in enumerate(bucket.contacts):
            if c.peer_id == peer_id:
                c.last_seen, c.failures = now, 0
                if addrs:
                    c.addrs = addrs
                bucket.contacts.append(bucket.contacts.pop(i))  # most recently seen last
                bucket.refreshed_at = now
                return True
        contact = Contact(peer_id, addrs, kid, now)
        if not self._diverse(bucket, addrs):
            return False
        if len(bucket.contacts) < self.k:
            bucket.contacts.append(contact)
            self._flat = None
            bucket.refreshed_at = now
            return True
        bucket.replacements = [r for r in bucket.replacements if r.peer_id != peer_id]
        bucket.replacements.append(contact)
        del bucket.replacements[:-REPLACEMENTS]
        return False

    def _diverse(self, bucket: Bucket, addrs: tuple[str, ...]) -> bool:
        prefix = network_prefix(addrs)
        if not prefix:
            return True
        if sum(network_prefix(c.addrs) == prefix for c in bucket.contacts) \
                >= PER_PREFIX_PER_BUCKET:
            return False
        return sum(network_prefix(c.addrs) == prefix for c in self._contacts()) \
            < PER_PREFIX_IN_TABLE

    def failed(self, peer_id: str, max_failures: int = 2) -> None:
        """A peer did not answer; after `max_failures` in a row it is replaced."""
        kid = peer_kad_id(peer_id)
        idx = bucket_index(self.own, kid)
        if idx < 0:
            return
        bucket = self.buckets[idx]
        for c in bucket.contacts:
            if c.peer_id == peer_id:
                c.failures += 1
                if c.failures >= max_failures:
                    bucket.contacts.remove(c)
                    self._flat = None
                    while bucket.replacements:
                        r = bucket.replacements.pop()
                        if self._diverse(bucket, r.addrs):
                            bucket.contacts.append(r)
                            break
                return

    def remove(self, peer_id: str) -> None:
        c = self.get(peer_id)
        if c is not None:
            self.buckets[bucket_index(self.own, c.kid)].contacts.remove(c)
            self._flat = None

    def closest(self, target: int, n: int | None = None,
                exclude: frozenset[str] = frozenset()) -> list[Contact]:
        n = self.k if n is None else n
        # every request served asks: the n smallest without sorting the whole table (and
        # without copying it to leave out the few excluded: take that many more, then drop)
        near = heapq.nsmallest(n + len(exclude), self._contacts(), key=lambda c: c.kid ^ target)
        return [c for c in near if c.peer_id not in exclude][:n] if exclude else near

    def all(self) -> list[Contact]:
        return list(self._contacts())

    def _contacts(self) -> list[Contact]:
        if self._flat is None:
            self._flat = [c for b in self.buckets for c in b.contacts]
        return self._flat

    def size_measure(self, nearest: int = SIZE_NEAREST) -> tuple[float, float]:
        """How many villages the network holds, as this table measures it: (estimate, its
        relative uncertainty). While no bucket has turned a peer away, the table holds every
        village it met, and the count is that (plus this one) - unless the density below says
        far more (a newcomer whose far buckets are still empty); otherwise the `nearest`
        contacts - the part of the keyspace a table knows completely - say how dense the
        network is: the m-th closest of N-1 other ids lies at about (m-1)/(N-1) of the
        keyspace, so N is about 1 + (m-1) * 2^256 / its distance (error about 1/sqrt(m-2)).
        Only contacts that spoke our protocol are counted; ids a peer merely names are not.
        Pure."""
        contacts = self._contacts()
        counted = float(len(contacts) + 1)
        m = min(nearest, len(contacts))
        far = max(1, self.closest(self.own, m)[-1].kid ^ self.own) if m else 1
        estimate = 1.0 + (m - 1) * 2.0**BITS / far if m >= 2 else counted
        uncertainty = 1.0 / max(1.0, max(0, m - 2) ** 0.5)  # (m - 2) ** 0.5 is complex below 2
        full = any(len(b.contacts) >= self.k or b.replacements for b in self.buckets)
        # a newcomer knows its neighbourhood (it looked itself up) before the far buckets
        # fill: a density far above its count says the count is not everyone
        if not full and (m < SIZE_MIN_DENSITY or estimate <= counted * (1.0 + 2.0 * uncertainty)):
            return counted, COUNTED_UNCERTAINTY
        return max(estimate, counted), uncertainty

    def stale_buckets(self, now: float, older_than: float) -> list[int]:
        """Indices of non-empty-range buckets not refreshed for `older_than` seconds, nearest
        first; these deserve a random-walk lookup."""
        top = max((i for i, b in enumerate(self.buckets) if b.contacts), default=-1)
        return [i for i in range(top + 1)
                if now - self.buckets[i].refreshed_at > older_than][:16]
