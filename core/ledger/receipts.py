"""Receipts: what one village did for another, signed by both. Pure (crypto, no I/O).

A receipt says: `worker` did `units` of `kind` for `consumer`, for the work named by `context`
(a hash of the batch or round ids), at `at`. Receipts between one pair for one kind form a
chain: `seq` counts them from 1 and `total` is the running sum of units (Tribler's cumulative
pairwise records), so a receipt can only ever raise the total - replaying one pays nothing,
and a gap or an inflated total is visible. The consumer signs first (it attests it received
the work), the worker countersigns; both keep the doubly-signed receipt.

Wire form: msgpack `SignedReceipt{body, consumer_sig, worker_sig}`; each signature is Ed25519
by that party's village key over DOMAIN + body. Peer ids embed their public keys, so a receipt
is checked with nothing but itself.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.dht.keyspace import ed25519_public_key

VERSION = 1
DOMAIN = b"grove-receipt:v1\x00"
MAX_BYTES = 1024
CLOCK_SKEW = 60.0
KINDS = ("swarm", "training", "averaging", "relay")
# The most units one receipt may carry per kind (a receipt settles at most this much work:
# anything larger is an inflated claim, refused whoever signed it).
MAX_UNITS = {"swarm": 100_000, "training": 1_000_000, "averaging": 10_000,
             "relay": 10 * 2**30}
HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_SEQ = 2**40       # receipts one pair may ever exchange of one kind
MAX_TOTAL = 2**53     # units one pair's running total may reach (exact in a float, and far
#                       inside SQLite's 64-bit integers: a larger one stopped the writer)


class Receipt(msgspec.Struct, frozen=True):
    v: int
    worker: str
    consumer: str
    kind: str
    units: int
    total: int      # cumulative units of `kind` from worker to consumer, this one included
    seq: int        # this pair's and kind's receipt number, from 1
    context: str    # sha256 (hex) of what was done
    at: float


class SignedReceipt(msgspec.Struct, frozen=True):
    body: bytes
    consumer_sig: bytes
    worker_sig: bytes = b""


class ReceiptRejected(ValueError):
    """A receipt that must not be recorded; `str()` says why."""


def encode_body(r: Receipt) -> bytes:
    return msgspec.msgpack.encode(r)


def consumer_sign(r: Receipt, sign: Callable[[bytes], bytes]) -> SignedReceipt:
    body = encode_body(r)
    return SignedReceipt(body, sign(DOMAIN + body))


def worker_sign(s: SignedReceipt, sign: Callable[[bytes], bytes]) -> SignedReceipt:
    return SignedReceipt(s.body, s.consumer_sig, sign(DOMAIN + s.body))


def encode(s: SignedReceipt) -> bytes:
    return msgspec.msgpack.encode(s)


@functools.lru_cache(maxsize=4096)
def peer_public_key(peer: str) -> Ed25519PublicKey | None:
    raw = ed25519_public_key(peer)
    try:
        return Ed25519PublicKey.from_public_bytes(raw) if raw is not None else None
    except ValueError:
        return None


def _verify(peer: str, sig: bytes, body: bytes, who: str) -> None:
    public = peer_public_key(peer)
    if public is None:
        raise ReceiptRejected(f"the {who} {peer[:16]!r} is not an Ed25519 peer id")
    try:
        public.verify(sig, DOMAIN + body)
    except (InvalidSignature, ValueError):
        raise ReceiptRejected(f"the {who}'s signature is not valid") from None


def check(data: bytes | SignedReceipt, now: float, need_worker: bool = True
          ) -> tuple[Receipt, SignedReceipt]:
    """The receipt if its shape, figures, times and signatures hold; ReceiptRejected (saying
    which) if not. `need_worker=False` accepts one the worker has not countersigned yet."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise ReceiptRejected(f"a receipt of {len(data)} bytes (at most {MAX_BYTES})")
        try:
            signed = msgspec.msgpack.decode(data, type=SignedReceipt)
        except msgspec.DecodeError as e:
            raise ReceiptRejected(f"malformed or truncated receipt: {e}") from None
    else:
        signed = data
    try:
        r = msgspec.msgpack.decode(signed.body, type=Receipt)
    except msgspec.DecodeError as e:
        raise ReceiptRejected(f"malformed or truncated receipt body: {e}") from None
    if r.v != VERSION:
        raise ReceiptRejected(f"receipt version {r.v} is not supported")
    if r.kind not in KINDS:
        raise ReceiptRejected(f"unknown kind of work {r.kind[:20]!r}")
    if r.worker == r.consumer:
        raise ReceiptRejected("a village cannot be credited for work done for itself")
    if not 0 < r.units <= MAX_UNITS[r.kind]:
        raise ReceiptRejected(f"{r.units} units of {r.kind} in one receipt (at most "
                              f"{MAX_UNITS[r.kind]}): inflated")
    if r.seq < 1 or r.total < r.units:
        raise ReceiptRejected("sequence or running total out of order")
    if r.seq > MAX_SEQ or r.total > MAX_TOTAL:
        raise ReceiptRejected(f"sequence {r.seq} or running total {r.total} out of range "
                              f"(at most {MAX_SEQ} and {MAX_TOTAL})")
    if not (math.isfinite(r.at) and r.at >= 0):
        raise ReceiptRejected("a receipt's time must be a date")
    if not HEX64.fullmatch(r.context):
        raise ReceiptRejected("the context is not a sha256 in hex")
    if not r.at <= now + CLOCK_SKEW:
        raise ReceiptRejected("dated in the future")
    _verify(r.consumer, signed.consumer_sig, signed.body, "consumer")
    if need_worker or signed.worker_sig:
        _verify(r.worker, signed.worker_sig, signed.body, "worker")
    return r, signed
