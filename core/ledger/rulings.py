"""Rulings: a referee's signed decision on a challenge of served work, and the credit it moves.
Pure (crypto, no I/O).

A ruling names the work (its key, `core.swarm.commit.key`), the server that did it, the
challenger, the referee that signed it, whether the challenge was upheld, the server's stake
as the referee honoured it, and why. An upheld ruling slashes SLASH_SHARE of that stake and
pays the challenger CHALLENGER_SHARE of what was slashed; a rejected one costs the
challenger FALSE_CHALLENGE_FEE, paid to the server (`core.ledger.levels.settle_challenge`).
The server's and the challenger's ledgers each record the ruling once (by work key) with the
credit event it means for them, verified at once (the referee's signature is the decision).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec

from core import signed
from core.ledger import levels

VERSION = 1
DOMAIN = b"grove-ruling:v1\x00"
MAX_BYTES = 2048
KINDS = ("stake", "challenge")  # ledger kinds a ruling's credit is booked under
CLOCK_SKEW = 60.0


class Ruling(msgspec.Struct, frozen=True):
    v: int
    work_key: bytes
    server: str
    challenger: str
    referee: str
    upheld: bool
    stake: float       # the server's stake, as the referee honoured it
    reason: str
    at: float


class BadRuling(ValueError):
    """A ruling that does not hold; `str()` says why."""


def make(r: Ruling, sign: Callable[[bytes], bytes]) -> bytes:
    return signed.seal(r, DOMAIN, sign)


def check(data: bytes, now: float) -> Ruling:
    """The ruling if its shape, figures and the referee's signature hold; BadRuling if not."""
    env, r = signed.open_envelope(data, Ruling, limit=MAX_BYTES, what="ruling",
                                  error=BadRuling)
    if r.v != VERSION:
        raise BadRuling(f"ruling version {r.v} is not supported")
    if len(r.work_key) != 32:
        raise BadRuling("the work key is a sha256 (32 bytes)")
    if len({r.server, r.challenger, r.referee}) != 3:
        raise BadRuling("the server, the challenger and the referee are three villages")
    if not (math.isfinite(r.stake) and 0 <= r.stake <= 1e12) or len(r.reason) > 500:
        raise BadRuling("the stake or the reason is out of range")
    if not (math.isfinite(r.at) and 0 <= r.at <= now + CLOCK_SKEW):
        raise BadRuling("dated in the future, or not a date")
    signed.verify(env, DOMAIN, r.referee, "referee", BadRuling)
    return r


def moves(r: Ruling, me: str) -> list[tuple[str, float, str]]:
    """The credit events the ruling means for village `me`: (kind, credits, the other
    party); none for a village that is neither party."""
    settled = levels.settle_challenge(r.server, r.challenger, r.stake, r.upheld)
    other = {r.server: r.challenger, r.challenger: r.server}
    out = []
    for village, credits in settled.moves:
        if village == me and credits:
            kind = "stake" if village == r.server and r.upheld else "challenge"
            out.append((kind, credits, other[me]))
    return out
