"""The collaboration's decisions, pure: projects, whether to train now, when the next step is,
whether the collaboration's target batch is reached, and whose state to download.

A collaboration step: every participating village starts from the same parameters, trains
locally on its own shard (through the compute gate) until the step's wall-clock boundary or
until the collaboration has the target batch, then the villages average their updates (the
parameter change since the step began) in Moshpit groups with the project's rule, and apply
the aggregate. Progress - the step a village is at, its samples towards the next one, a hash
of its parameters - is shared through signed, short-lived DHT records; a village that is
behind (or whose parameters differ from the collaboration's) downloads the state from a peer
and checks it against the hash that peer announced.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    title: str
    rule: str = "centered_clip"   # robust by default: any village may be malicious
    f: int = 1                    # Byzantine members a group's rule must tolerate
    target_batch: int = 1024      # collaboration samples per step
    period_s: float = 8.0         # a step at most this often (wall-clock aligned)
    local_lr: float = 0.1
    batch: int = 32
    shard_share: float = 0.5      # each village trains on its own seeded share of the data
    seed: int = 0


PROJECTS: dict[str, ProjectSpec] = {
    "digits": ProjectSpec("digits", "Handwritten digits (demo)"),
}


@dataclass(frozen=True)
class Progress:
    """What a village said of itself in its latest progress record."""

    peer_id: str
    epoch: int
    samples: int
    samples_per_second: float
    state_hash: str


MAX_JUMP = 1  # steps past the villages' median epoch a state may claim to be adopted


def wanted(project: str, *, participate: bool, opted_in: Sequence[str], may_compute: bool,
           why_not_compute: str) -> tuple[bool, str]:
    """Whether this village trains `project` now, and if not, why (in words)."""
    if project not in opted_in:
        return False, "not opted in"
    if not participate:
        return False, "paused: participation is off"
    if not may_compute:
        return False, f"paused by rule: {why_not_compute}" if why_not_compute else "paused"
    return True, ""


def boundary_after(now: float, period: float) -> tuple[int, float]:
    """The next step boundary after `now` (wall clock): (its index, its time). Every village
    computes the same boundaries, so they meet for the same step."""
    index = math.floor(now / period) + 1
    return index, index * period


def target_reached(mine: int, peers: Sequence[Progress], my_hash: str, target: int) -> bool:
    """The collaboration (the villages at our parameters) has the step's target batch."""
    return mine + sum(p.samples for p in peers if p.state_hash == my_hash) >= target


def state_source(my_epoch: int, my_hash: str, peers: Sequence[Progress],
                 trusted: frozenset[str] = frozenset()) -> Progress | None:
    """The peer to download the collaboration's state from, or None to keep ours: the state
    at the highest epoch that enough identities vouch for, when we are behind it or hold
    different parameters at it. A claim is signed, not true, so one identity decides
    nothing: an (epoch, hash) needs two villages behind it (one, when only one other village
    is in the project), and an epoch counts only up to MAX_JUMP steps past the median of
    every village's epoch (ours too, unless we are fresh) - one identity claiming step 10^9,
    or a ring of fresh ones smaller than the honest villages, cannot lead the project. When
    villages we trust (`trusted`: pre-trusted, or their work passed our checks) are in the
    project, only what they say counts - their median, their vouching: a ring of fresh
    identities larger than the honest villages cannot lead it either."""
    if not peers:
        return None
    if trusted and any(p.peer_id in trusted for p in peers):
        peers = [p for p in peers if p.peer_id in trusted]
    epochs = sorted([p.epoch for p in peers] + ([my_epoch] if my_epoch > 0 else []))
    reference = epochs[len(epochs) // 2]
    need = 2 if len({p.peer_id for p in peers}) >= 2 else 1
    votes = Counter((p.epoch, p.state_hash) for p in peers if p.epoch <= reference + MAX_JUMP)
    eligible = [(epoch, n, h) for (epoch, h), n in votes.items() if n >= need]
    if not eligible:
        return None
    top, backing, common = max(eligible)
    if top < my_epoch:
        return None
    if top == my_epoch and (common == my_hash or backing < 2):
        return None  # we are at it, or nobody else agrees enough to overrule us
    return next(p for p in peers if (p.epoch, p.state_hash) == (top, common))
