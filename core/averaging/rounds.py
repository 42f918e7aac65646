"""The state of one averaging round and one reduction, the constants both sides of the
protocol agree on, and the slice reduction itself. Shared by the matchmaking and all-reduce
halves of `core.averaging.service`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from core.averaging import wire

log = logging.getLogger(__name__)

DECIDE_MARGIN = 0.8     # s before close_at: read the directory and pick the leader
LATE_JOIN = 2.0         # s after close_at a leader waits for villages it saw listed (busy hosts)
ASSEMBLE_SLACK = 5.0    # s after assembly a follower waits for the leader's answer (busy hosts)
PART_WAIT = 3.0         # s a part may wait for its reducer to learn the group
DIRECTORY_POLL = 0.5    # s between reads of the round's directory key while gathering
POLL_REPLICAS = 3       # of the DIR_REPLICAS holders, how many one read asks (rotating)
SEND_PARALLEL = 4       # parts in flight at once per member (py-libp2p stalls with more)
HEADER_WAIT = 10.0      # s an averaging stream may stay silent before its first message
PART_SHARE_OF_TIME = 0.5  # of the time left, what a reducer may wait for parts
RESULT_MARGIN = 0.5     # s before the deadline a reducer must have reduced
SHUN_MEMORY = 600.0     # s a peer that offended us in averaging (or led silently) is neither
                        # followed nor let into a group we lead
SILENT_AFTER = 2.0      # s past the latest answer of an honest leader (close_at + LATE_JOIN)
                        # after which one that took our Join and said nothing is silent
MAX_OFFENDERS = 1000    # peers that offended in averaging, remembered (their results unbelieved)
MAX_SHUNNED = 1000      # shunned peers remembered at most
RETRY_PAUSE = 0.5       # s before asking again a candidate that still followed one that
                        # turned us away
MAX_ASKS = 8            # candidates (and redirects, retries) a member asks in one round at most
LEADER_TRIES = 3        # leaders that do not answer a member tries before it gives up the round
DIAL_WAIT = 6.0         # s a Join waits while the member it reached is still dialling its own


@dataclass(frozen=True)
class AveragingResult:
    key: str
    vector: np.ndarray
    members: tuple[str, ...]   # whose contributions are in every slice
    weight: float              # their total weight
    complete: bool             # every slice averaged exactly `members`
    dropped: tuple[str, ...]   # group members left out this round
    group_size: int            # members the leader assembled (1: alone)
    seconds: float
    reason: str = ""           # why it is alone or partial, in words
    rule: str = "mean"         # how this village reduced its slice (a fallback says why:)
    rule_note: str = ""
    # each other member's whole vector and weight as it sent them, where this village holds
    # every slice of it (its own slice as the reducer, the others fetched by the reducer
    # checks); only when asked for (`average(..., collect=True)`), to check the work
    contributions: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)


@dataclass
class _Round:
    key: str
    length: int
    close_at: float            # trio clock
    max_group: int
    deadline: float = 0.0      # trio clock: the round's last moment here
    rule: str = "mean"
    f: int = 0
    state: str = "gathering"   # gathering -> leading | following | closed
    leader: str = ""
    joiners: dict[str, wire.Join] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)  # others seen in the directory
    joined: trio.Event = field(default_factory=trio.Event)  # a Join came (set, then renewed)
    decided: trio.Event = field(default_factory=trio.Event)
    assembled: trio.Event = field(default_factory=trio.Event)
    message: wire.Assembled | None = None
    dialling: bool = False     # following: still reaching the leader (it may not answer)
    dialled: trio.Event = field(default_factory=trio.Event)  # set when a dial settles
    groups_started: bool = False  # the all-reduce started every group of the round it will


@dataclass
class _Reduction:
    group_id: str
    members: tuple[str, ...]
    my_slice: int
    start: int
    stop: int
    part_deadline: float       # trio clock
    parts: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    receiving: set[str] = field(default_factory=set)  # members whose part header came
    rejected: set[str] = field(default_factory=set)   # members dropped for an offence
    digests: dict[str, bytes] = field(default_factory=dict)  # wire.part_digest per part
    done: trio.Event = field(default_factory=trio.Event)
    result: np.ndarray | None = None
    result_members: tuple[str, ...] = ()
    result_weight: float = 0.0
    rule: str = "mean"
    f: int = 0
    center: np.ndarray | None = None  # this slice of the previous aggregate (centered clipping)
    bounds: Bounds | None = None      # this slice's range of what a member may send
    rule_used: str = "mean"
    rule_note: str = ""

    @property
    def expected(self) -> int:
        return len(self.members)


def _robust_reduce(parts: list[np.ndarray], rule: str, f: int, center: np.ndarray | None,
                   ) -> tuple[np.ndarray, str, str]:
    """One slice reduced with a robust rule (torch, imported only when a round asks for one):
    (result, the rule used, why it differs from the one asked for)."""
    import torch

    from core.robust import aggregate

    stack = torch.from_numpy(np.stack(parts).astype(np.float32))
    params: dict[str, object] = {}
    if rule == "centered_clip" and center is not None:
        params["center"] = torch.from_numpy(np.ascontiguousarray(center, dtype=np.float32))
    out, used, why = aggregate(rule, stack, f, **params)
    return out.numpy().astype(np.float32), used, why


Bounds = tuple[np.ndarray, np.ndarray]  # (lowest, highest) allowed, per element


def lone_excluders(got: dict[str, set[str]], ids: list[str], failed: list[str], *,
                   skip: Collection[str] = ()) -> list[str]:
    """Reducers (besides `skip`) whose result alone left out a member that every other reducer
    averaged - a member we could reach, when it reduces too (one we could not may be gone, and
    leaving it out is right). Believed, one such reducer would shrink everyone's member set
    to its own; members that did not hear from it (it cut them off) would average the rest
    in another group. Its slice is averaged again instead. With fewer than three results,
    one cannot be told from the others: none is singled out. Pure."""
    results = {r: m for r, m in got.items() if r not in skip}
    if len(results) < 3:
        return []
    lone = []
    for r, mine in results.items():
        others = [m for r2, m in results.items() if r2 != r]
        if any(p not in mine and p not in failed and all(p in m for m in others)
               for p in ids):
            lone.append(r)
    return lone


def out_of_range(values: np.ndarray, bounds: Bounds | None) -> str:
    """Why `values` break `bounds` (lo <= v <= hi per element, with room for the rounding of
    compressed payloads), or "" when they keep them. Every average of parts in range is in
    range too, so a reducer's result is held to the same bounds as a member's part."""
    if bounds is None:
        return ""
    lo, hi = bounds
    slack = 1e-3 * (hi - lo) + 1e-6
    bad = (values < lo - slack) | (values > hi + slack)
    if not bad.any():
        return ""
    i = int(np.argmax(bad))
    return (f"value {float(values[i]):.6g} at {i} is outside the round's range "
            f"[{float(lo[i]):.6g}, {float(hi[i]):.6g}]")


def slice_bounds(bounds: Bounds | None, ranges: list[Any]) -> Bounds | None:
    """The bounds of the elements in `ranges` (anything with `start` and `stop`), in order."""
    if bounds is None:
        return None
    return (np.concatenate([bounds[0][r.start:r.stop] for r in ranges]),
            np.concatenate([bounds[1][r.start:r.stop] for r in ranges]))


def leader_rank(key: str, peer: str) -> bytes:
    """The order in which a round's members consider each other as its leader: a hash of the
    round key and the id, so no id leads every round (an attacker who grinds an id for one
    round's key gets that round, not the next) and every member that saw the same villages
    picks the same leader."""
    return hashlib.sha256(f"{key}\n{peer}".encode()).digest()


def group_id_for(key: str, members: list[str]) -> str:
    return hashlib.sha256((key + "|" + ",".join(members)).encode()).hexdigest()[:32]

