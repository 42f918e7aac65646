"""Signed village records and the `/grove` namespace's validator and selector. Pure.

Wire form (the value of a standard Kademlia `Record`): msgpack `SignedRecord{body, signature}`
where `body` is msgpack `VillageRecord` and the signature is Ed25519 by the village key over
`DOMAIN + key + body`. The key is `/grove/village/<peer id>`; the peer id embeds the public
key, so the validator needs nothing but the record: key↔signer match, signature, schema, size
≤ 4 KiB, expiry no further than `MAX_TTL` ahead, issued no later than `CLOCK_SKEW` ahead, and
not expired. Selection among copies from different holders: highest `seq`, then latest
`expires_at` - the signer's latest word wins, so a withdrawal (a higher `seq` with a 5 s
TTL) supersedes the record it withdraws at every reader too, not only at the holders that
saw it (expiry first let a stale holder's longer-lived copy outvote it). A holder replaces
its copy only with a higher `seq` from the same signer (`core.dht.store`). Every `seq` is
the signer's wall clock in microseconds, so it grows across restarts.

A second kind lives in the namespace: training progress, `/grove/progress/<project>/<peer id>`
(`ProgressRecord`, its own signing domain, at most `MAX_PROGRESS_TTL` ahead), checked the same
way. A third: a SWARM server's announcement, `/grove/swarm/<model>/<peer id>`
(`SwarmServerRecord`: the span it serves, its throughput, joining/online, direct/relay; its own
domain, at most `MAX_SWARM_TTL` ahead). Anything else under `/grove` - or outside it - is
refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.dht.keyspace import ed25519_public_key
from core.names import sanitise
from core.personas.model import AVAILABILITY, MAX_DESCRIPTION, MAX_NAME, STATUSES

VERSION = 1
# village records: 2 since persona summaries carry the profile, as arrays (no field names:
# 32 personas with the longest names fit the 4 KiB cap)
VILLAGE_VERSION = 3  # 3: a measured bandwidth category and the memory free for agents
VILLAGE_VERSIONS = (2, 3)  # read: a version-2 record lacks those two (not measured)
# fields added with a default since (`name`) need no new version: a village that does not
# know one skips it (msgspec ignores unknown fields) and still checks the signature
# The upload a village measured on its own transfers, as a category (Mb/s thresholds)
BANDWIDTH_CATEGORIES = ("not-measured", "slow", "moderate", "fast", "very-fast")
BANDWIDTH_MBPS = (1.0, 10.0, 100.0)  # slow below 1, moderate below 10, fast below 100
MAX_AGENT_MEMORY_MB = 2**24  # 16 TiB
NAMESPACE = b"/grove/village/"
MAX_RECORD_BYTES = 4096
DEFAULT_TTL = 300.0
MAX_TTL = 600.0
CLOCK_SKEW = 30.0
WITHDRAW_TTL = 5.0  # a clean shutdown overwrites the record with one this short
DOMAIN = b"grove-village-record:v1\x00"
PROGRESS_NAMESPACE = b"/grove/progress/"
PROGRESS_DOMAIN = b"grove-training-progress:v1\x00"
MAX_PROGRESS_TTL = 120.0
SWARM_NAMESPACE = b"/grove/swarm/"
SWARM_DOMAIN = b"grove-swarm-server:v1\x00"
MAX_SWARM_TTL = 120.0
SWARM_STATES = ("joining", "online")
REACHABILITY = ("direct", "relay")
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
KNOWN_TIERS = ("cpu", "consumer-gpu", "prosumer-gpu")
TRUST_NAMESPACE = b"/grove/trust/"
TRUST_DOMAIN = b"grove-trust-view:v1\x00"
MAX_TRUST_TTL = 900.0
MAX_VOUCHES = 32            # villages one trust view may name
MAX_SEQ = 2**62             # a seq is the signer's wall clock in microseconds
MAX_EPOCH = 10**9           # training steps a project may reach
MAX_SAMPLES = 10**12        # samples accumulated towards one step


class LimitsSummary(msgspec.Struct, frozen=True):
    cpu_share: int
    upload_kbps: int
    download_kbps: int


class PersonaSummary(msgspec.Struct, frozen=True, array_like=True):
    """A persona as other villages see it (docs/consistency.md): its presence (status,
    availability, capacity) and its profile (name, description, backend kind) at version
    `seq`. A description is left out (empty) where the record would pass its size cap."""

    id: str
    name: str
    status: str
    availability: str
    capacity: int = 1
    backend: str = ""
    seq: int = 0
    description: str = ""


class VillageRecord(msgspec.Struct, frozen=True):
    v: int
    peer_id: str
    addrs: list[str]
    tier: str
    services: list[str]
    limits: LimitsSummary
    personas: list[PersonaSummary]
    gardener_online: bool | None  # at the computer now; None: this desktop cannot say
    software: str
    region: str
    seq: int
    issued_at: float
    expires_at: float
    bandwidth: str = "not-measured"  # BANDWIDTH_CATEGORIES, from its measured upload
    agent_memory_mb: int | None = None  # memory free for agents' work now; None: not measured
    name: str = ""  # the name its gardener chose (core.names.sanitise'd; a label, not an id)


def bandwidth_category(upload_mbps: float | None) -> str:
    """The category of a measured upload rate (Mb/s; None: not measured yet)."""
    if upload_mbps is None:
        return "not-measured"
    for name, limit in zip(BANDWIDTH_CATEGORIES[1:], BANDWIDTH_MBPS, strict=False):
        if upload_mbps < limit:
            return name
    return BANDWIDTH_CATEGORIES[-1]


class ProgressRecord(msgspec.Struct, frozen=True):
    """A village's progress in a training project (hivemind's progress tracker, signed)."""

    v: int
    peer_id: str
    project: str
    epoch: int                  # the collaboration step its parameters are at
    samples: int                # samples it accumulated towards the next step
    samples_per_second: float
    state_hash: str             # sha256 of its parameters at `epoch` (hex): what it serves
    seq: int
    issued_at: float
    expires_at: float


class SwarmServerRecord(msgspec.Struct, frozen=True):
    """A village serving blocks `start..end-1` of a SWARM model (Petals' server info, signed)."""

    v: int
    peer_id: str
    model: str
    start: int
    end: int                    # exclusive
    throughput: float           # samples/s it offers through its span: min(compute, network)
    state: str                  # "joining" (loading blocks) or "online"
    reachability: str           # "direct" or "relay" (its throughput is discounted then)
    queue: int                  # requests waiting when it signed
    seq: int
    issued_at: float
    expires_at: float


class TrustRecord(msgspec.Struct, frozen=True):
    """A village's own word on whose work passed its sampled checks: EigenTrust's local trust
    (checks passed less failed, per village), normalised so the weights sum to at most 1."""

    v: int
    peer_id: str
    vouches: list[tuple[str, float]]  # (peer id, weight in (0, 1]), at most MAX_VOUCHES
    seq: int
    issued_at: float
    expires_at: float


class SignedRecord(msgspec.Struct, frozen=True):
    body: bytes
    signature: bytes


class RecordRejected(Exception):
    """A record that must not be stored, served or shown; `str()` says why."""


@dataclass(frozen=True)
class ValidRecord:
    key: bytes
    value: bytes  # the signed wire form, as stored and served
    record: Any  # VillageRecord under /grove/village/, ProgressRecord under /grove/progress/

    @property
    def expires_at(self) -> float:
        return self.record.expires_at


def village_key(peer_id: str) -> bytes:
    return NAMESPACE + peer_id.encode()


def sign_record(record: VillageRecord, sign: Callable[[bytes], bytes]) -> bytes:
    """`sign` is the village key's signer."""
    body = msgspec.msgpack.encode(record)
    signature = sign(DOMAIN + village_key(record.peer_id) + body)
    return msgspec.msgpack.encode(SignedRecord(body, signature))


def _check_shape(r: VillageRecord) -> None:
    if r.v not in VILLAGE_VERSIONS:
        raise RecordRejected(f"record version {r.v} is not supported")
    if r.bandwidth not in BANDWIDTH_CATEGORIES or not (
            r.agent_memory_mb is None or 0 <= r.agent_memory_mb <= MAX_AGENT_MEMORY_MB):
        raise RecordRejected("bandwidth category or agent memory out of range")
    if r.tier not in KNOWN_TIERS:
        raise RecordRejected(f"unknown tier {r.tier!r}")
    if len(r.addrs) > 8 or any(len(a) > 256 for a in r.addrs):
        raise RecordRejected("too many or too long addresses")
    if len(r.services) > 16 or len(r.personas) > 32:
        raise RecordRejected("too many services or personas")
    for p in r.personas:
        if not (0 < len(p.id) <= 64 and 0 < len(p.name) <= MAX_NAME
                and p.status in STATUSES and p.availability in AVAILABILITY
                and 0 <= p.capacity <= 1024 and len(p.backend) <= 32
                and 0 <= p.seq <= MAX_SEQ and len(p.description) <= MAX_DESCRIPTION):
            raise RecordRejected(f"a persona summary out of range ({p.id[:64]!r})")
    if len(r.region) > 64 or len(r.software) > 64:
        raise RecordRejected("region or software text too long")
    if r.name != sanitise(r.name):
        raise RecordRejected(f"a village name that is not plain text ({r.name[:64]!r})")


def progress_key(project: str, peer_id: str) -> bytes:
    return PROGRESS_NAMESPACE + project.encode() + b"/" + peer_id.encode()


def sign_progress(record: ProgressRecord, sign: Callable[[bytes], bytes]) -> bytes:
    body = msgspec.msgpack.encode(record)
    signature = sign(PROGRESS_DOMAIN + progress_key(record.project, record.peer_id) + body)
    return msgspec.msgpack.encode(SignedRecord(body, signature))


def _times(r: Any, now: float, max_ttl: float) -> None:
    if not (0 <= r.seq <= MAX_SEQ and math.isfinite(r.issued_at)
            and math.isfinite(r.expires_at)):
        raise RecordRejected("seq or times out of range")
    if r.expires_at <= r.issued_at:
        raise RecordRejected("seq or times out of order")
    if r.expires_at <= now:
        raise RecordRejected("expired")
    if r.expires_at > now + max_ttl + CLOCK_SKEW:
        raise RecordRejected("expires too far in the future")
    if r.issued_at > now + CLOCK_SKEW:
        raise RecordRejected("issued in the future")


def _signed(key: bytes, value: bytes, signer: str, domain: bytes, kind: type) -> Any:
    if len(value) > MAX_RECORD_BYTES:
        raise RecordRejected(f"record of {len(value)} bytes exceeds {MAX_RECORD_BYTES}")
    public = ed25519_public_key(signer)
    if public is None:
        raise RecordRejected("the key does not name an Ed25519 peer id")
    try:
        signed = msgspec.msgpack.decode(value, type=SignedRecord)
        record: Any = msgspec.msgpack.decode(signed.body, type=kind)
    except msgspec.DecodeError as e:
        raise RecordRejected(f"malformed record: {e}") from None
    if record.peer_id != signer:
        raise RecordRejected("the record is for another peer than its key")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signed.signature,
                                                          domain + key + signed.body)
    except (InvalidSignature, ValueError):
        raise RecordRejected("bad signature") from None
    return record


def _validate_progress(key: bytes, value: bytes, now: float) -> ValidRecord:
    project, _, signer = key[len(PROGRESS_NAMESPACE):].decode(errors="replace").partition("/")
    if not PROJECT_NAME.fullmatch(project):
        raise RecordRejected(f"bad project name {project[:40]!r}")
    record: ProgressRecord = _signed(key, value, signer, PROGRESS_DOMAIN, ProgressRecord)
    if record.v != VERSION or record.project != project:
        raise RecordRejected("progress version or project does not match its key")
    if not (0 <= record.epoch <= MAX_EPOCH and 0 <= record.samples <= MAX_SAMPLES
            and 0 <= record.samples_per_second < 1e9 and len(record.state_hash) == 64):
        raise RecordRejected("progress figures out of range")
    _times(record, now, MAX_PROGRESS_TTL)
    return ValidRecord(key, value, record)


def swarm_key(model: str, peer_id: str) -> bytes:
    return SWARM_NAMESPACE + model.encode() + b"/" + peer_id.encode()


def sign_swarm(record: SwarmServerRecord, sign: Callable[[bytes], bytes]) -> bytes:
    body = msgspec.msgpack.encode(record)
    signature = sign(SWARM_DOMAIN + swarm_key(record.model, record.peer_id) + body)
    return msgspec.msgpack.encode(SignedRecord(body, signature))


def _validate_swarm(key: bytes, value: bytes, now: float) -> ValidRecord:
    model, _, signer = key[len(SWARM_NAMESPACE):].decode(errors="replace").partition("/")
    if not PROJECT_NAME.fullmatch(model):
        raise RecordRejected(f"bad model name {model[:40]!r}")
    record: SwarmServerRecord = _signed(key, value, signer, SWARM_DOMAIN, SwarmServerRecord)
    if record.v != VERSION or record.model != model:
        raise RecordRejected("swarm record version or model does not match its key")
    if not 0 <= record.start < record.end <= 4096 or not 0 <= record.throughput < 1e9 \
            or not 0 <= record.queue < 1_000_000:
        raise RecordRejected("swarm span or figures out of range")
    if record.state not in SWARM_STATES or record.reachability not in REACHABILITY:
        raise RecordRejected("unknown swarm server state or reachability")
    _times(record, now, MAX_SWARM_TTL)
    return ValidRecord(key, value, record)


def trust_key(peer_id: str) -> bytes:
    return TRUST_NAMESPACE + peer_id.encode()


def sign_trust(record: TrustRecord, sign: Callable[[bytes], bytes]) -> bytes:
    body = msgspec.msgpack.encode(record)
    signature = sign(TRUST_DOMAIN + trust_key(record.peer_id) + body)
    return msgspec.msgpack.encode(SignedRecord(body, signature))


def _validate_trust(key: bytes, value: bytes, now: float) -> ValidRecord:
    signer = key[len(TRUST_NAMESPACE):].decode(errors="replace")
    record: TrustRecord = _signed(key, value, signer, TRUST_DOMAIN, TrustRecord)
    if record.v != VERSION:
        raise RecordRejected(f"trust view version {record.v} is not supported")
    if len(record.vouches) > MAX_VOUCHES:
        raise RecordRejected(f"a trust view names {len(record.vouches)} villages "
                             f"(at most {MAX_VOUCHES})")
    names = [p for p, _w in record.vouches]
    if len(set(names)) != len(names) or signer in names:
        raise RecordRejected("a trust view names a village twice, or its own signer")
    if any(len(p) > 64 or ed25519_public_key(p) is None for p in names):
        raise RecordRejected("a trust view names something that is not an Ed25519 peer id")
    weights = [w for _p, w in record.vouches]
    if not all(math.isfinite(w) and 0 < w <= 1 for w in weights) or sum(weights) > 1 + 1e-6:
        raise RecordRejected("trust weights out of range (each in (0, 1], summing to <= 1)")
    _times(record, now, MAX_TRUST_TTL)
    return ValidRecord(key, value, record)


def validate(key: bytes, value: bytes, now: float) -> ValidRecord:
    """The record if it may be stored and served now; RecordRejected (with why) if not."""
    if key.startswith(TRUST_NAMESPACE):
        return _validate_trust(key, value, now)
    if key.startswith(PROGRESS_NAMESPACE):
        return _validate_progress(key, value, now)
    if key.startswith(SWARM_NAMESPACE):
        return _validate_swarm(key, value, now)
    if not key.startswith(NAMESPACE):
        raise RecordRejected(f"unknown namespace {key[:32]!r}")
    signer = key[len(NAMESPACE):].decode(errors="replace")
    record: VillageRecord = _signed(key, value, signer, DOMAIN, VillageRecord)
    _check_shape(record)
    _times(record, now, MAX_TTL)
    return ValidRecord(key, value, record)


def better(a: ValidRecord, b: ValidRecord | None) -> bool:
    """Whether `a` beats `b`: highest seq (the signer's latest word), then latest expiry."""
    if b is None:
        return True
    return (a.record.seq, a.record.expires_at) > (b.record.seq, b.record.expires_at)


def select(records: list[ValidRecord]) -> ValidRecord | None:
    best: ValidRecord | None = None
    for r in records:
        if better(r, best):
            best = r
    return best
