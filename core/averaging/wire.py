"""`/grove/avg/1.0.0`: matchmaking and butterfly all-reduce messages, and the tensor codec.

Every control message is a msgpack struct with a version field, in one length-prefixed frame of
at most MAX_CONTROL bytes; tensor data follows in one frame whose size the header fixes, so a
reader knows the exact cap before reading. Pure: no I/O.

One stream per exchange:
  matchmaking   follower -> leader  Join;          leader -> follower  Assembled | Reject
  all-reduce    member -> reducer   PartHeader, data;  reducer -> member  SliceResult, data
  spot check    member -> member    PartAsk;       member -> member    per slice asked:
                                                   PartHeader, data | Reject

A reducer's SliceResult lists, for each part it reduced, the `part_digest` of what it
received and the weight it used, so a member can check its own part's digest at once, and
spot-check the whole slice: fetch the other members' parts (PartAsk, once per part and asker)
and reduce them itself.
"""

from __future__ import annotations

import hashlib
import math

import msgspec
import numpy as np

from core.errors import PeerMisbehaviour

PROTOCOL = "/grove/avg/1.0.0"
VERSION = 1
MAX_CONTROL = 16 * 1024
MAX_GROUP = 64
MAX_ELEMENTS = 1 << 28  # 256 Mi values: 1 GiB of fp32 per averaged vector at most
MAX_REASON = 256       # characters of a refusal's reason
MAX_PEER_ID = 128      # characters of a peer id
MAX_WEIGHT = 1e9        # a member's weight (training: its samples this step; telemetry: 1)
DIGEST_BYTES = 32       # sha256
DTYPES = ("f32", "f16", "u8")
# how reducers reduce a slice (core.robust; named here so the wire needs no torch)
RULE_NAMES = ("mean", "median", "trimmed_mean", "krum", "multi_krum", "bulyan", "signsgd_mv",
              "centered_clip", "geometric_median")
BYTES_PER = {"f32": 4, "f16": 2, "u8": 1}


class Join(msgspec.Struct, frozen=True, tag="join"):
    v: int
    key: str            # the group key this round (run/round/coordinates)
    weight: float       # the member's weight in the average
    bandwidth: float    # its measured upload, Mb/s: sets its share of the reduction
    client: bool        # relay-only: contributes and receives, reduces no slice
    length: int         # vector length: members must agree
    rule: str = "mean"  # the reduction rule, and the Byzantine members it must tolerate:
    f: int = 0          # members must agree (round keys name them)


class Member(msgspec.Struct, frozen=True):
    peer: str
    share: float


class Assembled(msgspec.Struct, frozen=True, tag="assembled"):
    v: int
    key: str
    group_id: str
    members: list[Member]  # in slice order
    length: int
    rule: str = "mean"
    f: int = 0


class Reject(msgspec.Struct, frozen=True, tag="reject"):
    v: int
    reason: str
    leader: str = ""    # "join this one instead"


class PartHeader(msgspec.Struct, frozen=True, tag="part"):
    v: int
    group_id: str
    slice: int          # index of the reducer's slice
    length: int         # elements in the slice
    dtype: str
    weight: float
    scale: float = 1.0  # u8: value = zero + scale * byte
    zero: float = 0.0


class SliceResult(msgspec.Struct, frozen=True, tag="result"):
    v: int
    ok: bool
    members: list[str]  # whose parts are in this slice
    weight: float
    length: int
    dtype: str
    scale: float = 1.0
    zero: float = 0.0
    reason: str = ""
    digests: list[bytes] = []  # per member above: part_digest of the part it reduced
    weights: list[float] = []  # per member above: the weight it used
    center: bytes = b""        # sha256 of the center slice it clipped around ("": none)


class PartAsk(msgspec.Struct, frozen=True, tag="part-ask"):
    v: int
    group_id: str
    slices: list[int]   # "send me the parts you sent the reducers of these slices": the
                        # answer is, per slice in this order, PartHeader + data, or Reject


Control = Join | Assembled | Reject | PartHeader | SliceResult | PartAsk
_decoder = msgspec.msgpack.Decoder(Control)


def encode(msg: Control) -> bytes:
    return msgspec.msgpack.encode(msg)


def decode(data: bytes, peer: str) -> Control:
    if len(data) > MAX_CONTROL:
        raise PeerMisbehaviour(peer, f"averaging message of {len(data)} bytes (cap {MAX_CONTROL})",
                               proven=True)
    try:
        msg = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise PeerMisbehaviour(peer, f"malformed averaging message: {e}",
                               proven=True) from None
    if msg.v != VERSION:
        raise PeerMisbehaviour(peer, f"averaging protocol version {msg.v}, expected {VERSION}")
    _check(msg, peer)
    return msg


def _finite(x: float) -> bool:
    return math.isfinite(x)


def _check(msg: Control, peer: str) -> None:
    def bad(why: str) -> PeerMisbehaviour:
        return PeerMisbehaviour(peer, f"bad {type(msg).__name__}: {why}", proven=True)

    if isinstance(msg, Join | Assembled) and (msg.rule not in RULE_NAMES
                                               or not 0 <= msg.f < MAX_GROUP):
        raise bad(f"unknown rule {msg.rule[:32]!r} or f={msg.f} out of range")
    if isinstance(msg, Join):
        if not (_finite(msg.weight) and 0 < msg.weight <= MAX_WEIGHT and _finite(msg.bandwidth)
                and msg.bandwidth >= 0 and 0 < msg.length <= MAX_ELEMENTS and len(msg.key) <= 512):
            raise bad("weight, bandwidth, length or key out of range")
    elif isinstance(msg, Assembled):
        if not (0 < len(msg.members) <= MAX_GROUP and 0 < msg.length <= MAX_ELEMENTS):
            raise bad("group size or length out of range")
        if len({m.peer for m in msg.members}) != len(msg.members):
            raise bad("a member listed twice")
        if any(not (_finite(m.share) and m.share >= 0) for m in msg.members) or \
                sum(m.share for m in msg.members) <= 0:
            raise bad("shares must be >= 0 and not all zero")
    elif isinstance(msg, Reject):
        if len(msg.reason) > MAX_REASON or len(msg.leader) > MAX_PEER_ID:
            raise bad("reason or leader too long")
    elif isinstance(msg, PartHeader | SliceResult):
        if msg.dtype not in DTYPES or not 0 <= msg.length <= MAX_ELEMENTS:
            raise bad(f"dtype {msg.dtype!r} or length {msg.length} not allowed")
        if not (_finite(msg.weight) and 0 <= msg.weight <= MAX_WEIGHT * MAX_GROUP
                and _finite(msg.scale) and _finite(msg.zero)):
            raise bad("weight out of range, or scale or zero not finite")
        if isinstance(msg, PartHeader) and not 0 <= msg.slice < MAX_GROUP:
            raise bad("slice index out of range")
        if isinstance(msg, SliceResult) and (len(msg.reason) > MAX_REASON or len(
                msg.members) > MAX_GROUP or any(len(m) > MAX_PEER_ID for m in msg.members)):
            raise bad("reason or members out of range")
        if isinstance(msg, SliceResult) and (msg.digests or msg.weights) and not (
                len(msg.digests) == len(msg.weights) == len(msg.members)
                and all(len(d) == DIGEST_BYTES for d in msg.digests)
                and all(_finite(w) and 0 < w <= MAX_WEIGHT for w in msg.weights)
                and len(msg.center) in (0, DIGEST_BYTES)):
            raise bad("digests, weights or center out of range")
    elif isinstance(msg, PartAsk) and (not 0 < len(msg.slices) <= MAX_GROUP
                                       or any(not 0 <= i < MAX_GROUP for i in msg.slices)
                                       or len(set(msg.slices)) != len(msg.slices)
                                       or len(msg.group_id) > 128):
        raise bad("slice indices or group id out of range")


def part_digest(dtype: str, scale: float, zero: float, weight: float, payload: bytes) -> bytes:
    """What a part is, as its reducer received it: its bytes and how to read and weigh them."""
    h = hashlib.sha256(f"grove-avg-part|{dtype}|{scale!r}|{zero!r}|{weight!r}|".encode())
    h.update(payload)
    return h.digest()


def center_digest(center: np.ndarray | None) -> bytes:
    if center is None:
        return b""
    return hashlib.sha256(np.ascontiguousarray(center, dtype="<f4").tobytes()).digest()


# -- tensor codec ------------------------------------------------------------------------------
def choose_dtype(length: int, compression: str) -> str:
    """"none" keeps fp32 (exact); "auto" sends fp16 above 1 Mi values, 8-bit above 16 Mi."""
    if compression == "none":
        return "f32"
    if compression in ("f16", "u8"):
        return compression
    if length > 16 << 20:
        return "u8"
    return "f16" if length > 1 << 20 else "f32"


def error_bound(dtype: str, vectors: list[np.ndarray]) -> float:
    """The most an average sent over the wire in `dtype` may differ, per value, from the exact
    mean of the members' `vectors`: a slice is rounded twice (a member's part on its way to
    the reducer, the reduced slice on its way back). fp16 rounds to within 2^-11 of a value's
    size, 8-bit to within half a step of 1/255 of the packed range; fp32 only by float32
    arithmetic."""
    big = max(float(np.abs(v).max()) for v in vectors) if vectors else 0.0
    if dtype == "f16":
        return 2 * big * 2.0 ** -11 + 2 * 2.0 ** -24 + 1e-6 * big
    if dtype == "u8":
        spread = max(float(v.max()) for v in vectors) - min(float(v.min()) for v in vectors)
        return spread / 255.0 + 1e-6 * big
    return 1e-6 * big * max(1, len(vectors))


def pack(values: np.ndarray, dtype: str) -> tuple[bytes, float, float]:
    """(payload, scale, zero) for a float32 vector."""
    if dtype == "f32":
        return np.ascontiguousarray(values, dtype="<f4").tobytes(), 1.0, 0.0
    if dtype == "f16":
        return values.astype("<f2").tobytes(), 1.0, 0.0
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 0.0
    scale = (hi - lo) / 255.0 or 1.0
    q = np.clip(np.rint((values - lo) / scale), 0, 255).astype(np.uint8)
    return q.tobytes(), scale, lo


def unpack(data: bytes, dtype: str, length: int, *, scale: float, zero: float,
           peer: str) -> np.ndarray:
    """The float32 vector a payload holds; refuses a wrong size and NaN/Inf."""
    if len(data) != length * BYTES_PER[dtype]:
        raise PeerMisbehaviour(peer, f"{len(data)} bytes for {length} {dtype} values",
                               proven=True)
    if dtype == "f32":
        out = np.frombuffer(data, dtype="<f4").astype(np.float32, copy=True)
    elif dtype == "f16":
        out = np.frombuffer(data, dtype="<f2").astype(np.float32)
    else:
        out = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) * np.float32(scale)
               + np.float32(zero))
    if not np.isfinite(out).all():
        raise PeerMisbehaviour(peer, "NaN or Inf in an averaging payload", proven=True)
    return out
