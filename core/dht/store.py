"""What a DHT node keeps for others: village records and directory providers. Pure.

Records are validated on the way in and their expiry re-checked on every read, so an expired
record is never served (py-libp2p kept records 24 h and served local copies unchecked). Each
sender has a put budget (a token bucket) so one peer cannot flood the store; the budgets are
per sender and bounded by forgetting the oldest one, never all at once (clearing them all let
one sender with many ids reset everyone's limits). The store has a size cap and drops
expired entries as it goes.

One signer's records take at most MAX_PER_SIGNER places (a refusal for lack of room, as a
full store is: the sender may only be passing the record on).

A directory key's providers are listed long-lived first, and a full key takes no newcomer
until an entry expires: re-announcing (even with many fresh ids) cannot push established
providers out or ahead of them. A refusal for lack of room is `StoreFull`, not an offence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.dht.records import RecordRejected, ValidRecord, validate
from core.ratelimit import PeerRates

PUTS_PER_SECOND = 10.0
PUT_BURST = 30.0
MAX_RECORDS = 20_000
PROVIDER_TTL = 300.0
MAX_PROVIDERS_PER_KEY = 200
MAX_DIR_KEYS = 5_000
MAX_BUDGETS = 10_000
MAX_PER_SIGNER = 64  # records of one signer held (its village record, progress, SWARM spans)
DIR_PREFIX = b"/grove/dir/"


def store_pacer() -> PeerRates:
    """The sender's side of the put budget: stores to one peer leave at most 80 % as fast,
    and in bursts of at most 2/3, as its budget allows, so that a village announcing much at
    once (a SWARM span's blocks, its services, its record) is never refused - and refused
    for a minute - by a neighbour that holds all of it (a two-village network, where the
    other one is every key's closest)."""
    return PeerRates(PUTS_PER_SECOND * 0.8, PUT_BURST * 2 / 3, MAX_BUDGETS)


@dataclass(frozen=True)
class Provider:
    peer_id: str
    addrs: tuple[str, ...]
    expires_at: float
    since: float = 0.0  # when this holder first took it (kept across re-announcements)
    signature: bytes = b""  # the provider's proof (core.dht.providers) for this key


class StoreFull(RecordRejected):
    """No room for a new entry: a refusal, not the sender's fault."""


class RecordStore:
    def __init__(self) -> None:
        self.records: dict[bytes, ValidRecord] = {}
        self.providers: dict[bytes, dict[str, Provider]] = {}
        self._budgets = PeerRates(PUTS_PER_SECOND, PUT_BURST, MAX_BUDGETS)
        self._keys_of: dict[str, set[bytes]] = {}  # signer -> keys held (pruned as read)

    def _spend(self, sender: str, now: float) -> None:
        if not self._budgets.take(sender, now):
            raise RecordRejected("too many stores from this peer")

    def put(self, key: bytes, value: bytes, sender: str, now: float) -> ValidRecord:
        """Store if valid and better than what we hold; raises RecordRejected with why."""
        self._spend(sender, now)
        rec = validate(key, value, now)
        held = self.get(key, now)
        # One writer per key (the key names the signer): its highest seq supersedes, which
        # lets a village withdraw its record with a short-lived overwrite.
        if held is not None and rec.record.seq <= held.record.seq:
            if rec.value == held.value:
                return held
            raise RecordRejected(f"replayed old seq {rec.record.seq} <= {held.record.seq}")
        if held is None:
            if len(self.records) >= MAX_RECORDS:
                self.expire(now)
                if len(self.records) >= MAX_RECORDS:
                    raise StoreFull("store full")
            signer = rec.record.peer_id
            keys = {k for k in self._keys_of.get(signer, ()) if k in self.records}
            if len(keys) >= MAX_PER_SIGNER:  # one identity cannot fill the store alone
                raise StoreFull(f"{MAX_PER_SIGNER} records of one signer held already")
            self._keys_of[signer] = keys | {key}
        self.records[key] = rec
        return rec

    def get(self, key: bytes, now: float) -> ValidRecord | None:
        rec = self.records.get(key)
        if rec is not None and rec.expires_at <= now:
            del self.records[key]
            return None
        return rec

    def add_provider(self, key: bytes, provider: Provider, sender: str, now: float) -> None:
        self._spend(sender, now)
        if not key.startswith(DIR_PREFIX) or len(key) > 128:
            raise RecordRejected(f"unknown directory key {key[:32]!r}")
        if provider.peer_id != sender:
            raise RecordRejected("a peer may only announce itself")
        if provider.expires_at > now + PROVIDER_TTL + 30:
            raise RecordRejected("provider expiry too far in the future")
        if key not in self.providers and len(self.providers) >= MAX_DIR_KEYS:
            self.expire(now)
            if len(self.providers) >= MAX_DIR_KEYS:
                raise StoreFull("directory full")
        entries = self.providers.setdefault(key, {})
        held = entries.get(sender)
        if held is None and len(entries) >= MAX_PROVIDERS_PER_KEY:
            self.get_providers(key, now)  # drop the expired ones
            if len(entries) >= MAX_PROVIDERS_PER_KEY:
                raise StoreFull(f"directory key full ({MAX_PROVIDERS_PER_KEY} providers)")
        entries[sender] = replace(provider, since=held.since if held is not None else now)

    def get_providers(self, key: bytes, now: float) -> list[Provider]:
        entries = self.providers.get(key, {})
        for pid in [p for p, v in entries.items() if v.expires_at <= now]:
            del entries[pid]
        return sorted(entries.values(), key=lambda p: (p.since, p.peer_id))

    def expire(self, now: float) -> None:
        for k in [k for k, r in self.records.items() if r.expires_at <= now]:
            del self.records[k]
        for signer in [s for s, keys in self._keys_of.items()
                       if not any(k in self.records for k in keys)]:
            del self._keys_of[signer]
        for key in list(self.providers):
            self.get_providers(key, now)
            if not self.providers[key]:
                del self.providers[key]
