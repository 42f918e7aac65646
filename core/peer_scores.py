"""Misbehaviour and what follows it, per peer: a score that decays, and refusal for a growing
period once the score crosses a threshold (gossipsub v1.1's peer scoring and libp2p's
connection gater are the models).

Rules: pure. Every call takes `now` (seconds on one monotonic clock); no trio, no I/O. What a
refusal means on the wire (a disconnect, streams reset, dials refused) is the service layer's
(`core.peer_guard`). The book is bounded: past `max_peers` the least suspicious entries that
are not refused are forgotten first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HALF_LIFE = 600.0     # s: an offence weighs half as much ten minutes later
THRESHOLD = 5.0       # score at which a peer is refused
FIRST_REFUSAL = 60.0  # s: the first refusal; each later one lasts twice the one before
MAX_REFUSAL = 86_400.0
MAX_PEERS = 10_000
# An unanswered request is not proof of malice (a crash, a partition and a full link look
# the same): it weighs a tenth of an offence, so only a peer that keeps doing it is refused.
# Bytes that no correct implementation sends (an undecodable message, a frame past its cap,
# a bad signature) weigh the whole threshold: the peer is refused at the first (gossipsub
# v1.1 weighs invalid messages the same way); the first refusal is short, the next ones not.
MINOR = 0.1
SEVERE = THRESHOLD
_MINOR_WORDS = ("timed out", "did not answer", "within", "no answer", "went away",
                "silent for")
_SEVERE_WORDS = ("malformed", "exceeds", "signature", "too many", "unknown dht message",
                 "outside the round's range", "its part twice", "to the reducer of slice",
                 "listed parts do not give", "a part we did not send", "with another part")


def weight_of(reason: str) -> float:
    """How much one offence of this kind weighs: MINOR for silence, SEVERE for bytes no
    correct implementation sends, 1 for the rest."""
    text = reason.lower()
    if any(w in text for w in _MINOR_WORDS):
        return MINOR
    return SEVERE if any(w in text for w in _SEVERE_WORDS) else 1.0


@dataclass
class Standing:
    score: float = 0.0       # at `at`; decays with HALF_LIFE
    at: float = 0.0
    offences: int = 0        # ever (what the trust layer reads)
    refusals: int = 0        # how many times refused so far
    refused_until: float = -math.inf
    last_reason: str = ""


class PeerBook:
    """Scores and refusals of every peer this village has had to judge."""

    def __init__(self, *, half_life: float = HALF_LIFE, threshold: float | None = None,
                 first_refusal: float = FIRST_REFUSAL, max_refusal: float = MAX_REFUSAL,
                 max_peers: int = MAX_PEERS) -> None:
        threshold = THRESHOLD if threshold is None else threshold  # read now: tests of the
        # per-request checks switch refusal off by raising the module's THRESHOLD
        if half_life <= 0 or threshold <= 0 or first_refusal <= 0 or max_peers < 1:
            raise ValueError("half_life, threshold, first_refusal and max_peers must be > 0")
        self.half_life, self.threshold = half_life, threshold
        self.first_refusal, self.max_refusal = first_refusal, max(max_refusal, first_refusal)
        self.max_peers = max_peers
        self._peers: dict[str, Standing] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def _decayed(self, s: Standing, now: float) -> float:
        return s.score * 0.5 ** (max(0.0, now - s.at) / self.half_life)

    def score(self, peer: str, now: float) -> float:
        s = self._peers.get(peer)
        return self._decayed(s, now) if s is not None else 0.0

    def offences(self, peer: str) -> int:
        s = self._peers.get(peer)
        return s.offences if s is not None else 0

    def refused_until(self, peer: str, now: float) -> float | None:
        """When the refusal of `peer` ends, or None when it is not refused at `now`."""
        s = self._peers.get(peer)
        return s.refused_until if s is not None and s.refused_until > now else None

    def is_refused(self, peer: str, now: float) -> bool:
        return self.refused_until(peer, now) is not None

    def penalise(self, peer: str, reason: str, now: float,
                 weight: float | None = None) -> float | None:
        """Record one offence. Returns the end of a refusal this offence started (None when
        the peer stays admitted, or was refused already)."""
        w = weight_of(reason) if weight is None else weight
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"an offence's weight must be a finite number >= 0, not {w!r}")
        s = self._peers.get(peer)
        if s is None:
            self._make_room(now)
            s = self._peers[peer] = Standing(at=now)
        s.score, s.at = self._decayed(s, now) + w, now
        s.offences += 1
        s.last_reason = reason[:200]
        if s.refused_until > now or s.score < self.threshold:
            return None
        length = min(self.max_refusal, self.first_refusal * 2.0 ** s.refusals)
        s.refusals += 1
        s.score = 0.0  # the refusal is the consequence; what follows it counts afresh
        s.refused_until = now + length
        return s.refused_until

    def refused(self, now: float) -> dict[str, float]:
        """Every peer refused at `now`, with the end of its refusal."""
        return {p: s.refused_until for p, s in self._peers.items() if s.refused_until > now}

    def counts(self) -> dict[str, int]:
        return {p: s.offences for p, s in self._peers.items()}

    def _make_room(self, now: float) -> None:
        if len(self._peers) < self.max_peers:
            return
        admitted = [(self._decayed(s, now), p) for p, s in self._peers.items()
                    if s.refused_until <= now]
        if not admitted:  # every entry is refused: the oldest refusal ends first
            admitted = [(s.refused_until, p) for p, s in self._peers.items()]
        drop = min(admitted)[1]
        del self._peers[drop]
