"""Service levels, stake and challenges: the pure rules (phase 5). No I/O, no clock of its own.

A client chooses how much assurance to buy for each piece of work it sends (a SWARM hop, a
generation step, a training update):

- `basic`: one server; the work is checked after the fact, at a rate that falls as the
  server proves itself (new servers often, proven ones rarely: SCHEDULE). A wrong result may
  reach the client; a check that finds it slashes the server's stake and bans it.
- `checked`: staked servers only; before the result is released it is recomputed elsewhere at
  the server's check rate (never below the level's floor). A result that fails is replaced
  by the recomputed one and the server is slashed.
- `assured`: two staked servers of different trust clusters compute it independently; the
  answer is released only when they agree, and a referee decides when they do not.

Stake: a server that serves above `basic` locks MIN_STAKE of its verified credit. An upheld
challenge slashes SLASH_SHARE of the stake and pays the challenger CHALLENGER_SHARE of what
was slashed, so checking pays for itself; a challenge the referee rejects costs the
challenger FALSE_CHALLENGE_FEE, paid to the challenged server, so a challenge is not free to
throw. The referee is chosen by the DHT key of the work, not by either party (`referee`).

These are the rules; `bench.challenge` simulates them over a swarm with cheaters (a
simulation of the rules, not of the network). Not built yet: stake and slashing as signed
ledger events, the challenge protocol between villages, the router and clients choosing a
level.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

LEVELS = ("basic", "checked", "assured")
MIN_STAKE = {"basic": 0.0, "checked": 10.0, "assured": 10.0}  # credits locked to serve
SLASH_SHARE = 0.5          # of the stake, per upheld challenge
CHALLENGER_SHARE = 0.2     # of what was slashed, to the challenger
FALSE_CHALLENGE_FEE = 0.5  # credits a rejected challenge costs the challenger
# check-rate schedule per level: (rate over the first `warm-up` hops, warm-up hops, hops by
# which a server whose checks passed is down to the floor, the floor). Basic checks after
# delivery, so it checks newcomers hard (a cheater wrong on 5 % of its hops is caught within
# its first 100); checked checks before release, so a miss costs one result, not many
SCHEDULE = {"basic": (0.9, 100, 400, 0.01), "checked": (0.5, 50, 200, 0.03)}
ASSURED_AGREEMENT = 2      # independent servers that must agree


@dataclass(frozen=True)
class Reputation:
    """What a village knows of a server's served work: checks passed and failed, hops it
    served, whether its stake is slashed below the level's minimum."""

    passed: int = 0
    failed: int = 0
    hops: int = 0
    stake: float = 0.0

    @property
    def banned(self) -> bool:
        return self.failed > 0


def check_rate(rep: Reputation, level: str) -> float:
    """The share of a server's work checked at `level` (SCHEDULE): high over its first hops,
    then falling linearly to the level's floor while its checks pass; 1.0 for a server that
    ever failed one (it is banned anyway); 0 for `assured` (its two servers check each
    other)."""
    if level == "assured":
        return 0.0
    if rep.failed:
        return 1.0
    new, warmup, proven_at, floor = SCHEDULE[level]
    if rep.hops < warmup or not rep.passed:
        return new
    proven = min(1.0, (rep.hops - warmup) / (proven_at - warmup))
    return max(floor, new - (new - floor) * proven)


def may_serve(rep: Reputation, level: str) -> bool:
    """Whether a server may take work at `level` (staked enough, never caught)."""
    return not rep.banned and rep.stake >= MIN_STAKE[level]


@dataclass(frozen=True)
class Settlement:
    """Credit moved by a decided challenge: (village, credits) pairs, negative = paid."""

    moves: tuple[tuple[str, float], ...]
    upheld: bool


def settle_challenge(server: str, challenger: str, stake: float, upheld: bool) -> Settlement:
    """An upheld challenge slashes SLASH_SHARE of the server's stake and pays the challenger
    CHALLENGER_SHARE of it (the rest is burnt); a rejected one costs the challenger
    FALSE_CHALLENGE_FEE, paid to the server."""
    if upheld:
        slashed = stake * SLASH_SHARE
        return Settlement(((server, -slashed), (challenger, slashed * CHALLENGER_SHARE)), True)
    return Settlement(((challenger, -FALSE_CHALLENGE_FEE), (server, FALSE_CHALLENGE_FEE)),
                      False)


def referee(work_key: bytes, candidates: list[str], parties: tuple[str, ...]) -> str | None:
    """The referee of a dispute over `work_key`: the candidate whose id is closest to the
    key (XOR of sha256s, as the DHT's keyspace), never one of the parties; None when no
    third village exists."""
    key = int.from_bytes(hashlib.sha256(work_key).digest(), "big")
    others = [c for c in candidates if c not in parties]
    if not others:
        return None
    return min(others, key=lambda c: int.from_bytes(hashlib.sha256(c.encode()).digest(),
                                                    "big") ^ key)


def cluster(peer_id: str, addrs: tuple[str, ...], by: str = "network") -> str:
    """The trust cluster a server belongs to, for `assured` (its two servers must differ):
    by "network", the /24 (IPv4) or /48 (IPv6) of its first direct address - villages one
    operator runs on one machine or network are one cluster, so one operator cannot answer
    both halves; by "village", each village its own (a private swarm whose servers share one
    network). A server with no direct address is a cluster of its own."""
    if by == "network":
        for a in addrs:
            parts = a.split("/")
            if "p2p-circuit" in parts or len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
                continue
            try:
                net = ipaddress.ip_network(f"{parts[2]}/{24 if parts[1] == 'ip4' else 48}",
                                           strict=False)
            except ValueError:
                continue
            return f"net:{net}"
    return f"village:{peer_id}"
