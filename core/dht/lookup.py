"""An iterative Kademlia lookup as a state machine. Pure: the service feeds it answers.

`next_queries()` gives up to `alpha` unqueried peers among the closest known; `answered()`
and `failed()` report outcomes, `slow()` that a query has taken too long. A slow query no
longer holds one of the `alpha` places, nor a place among the `k` closest the lookup waits
for (a vanished village whose connection went silent would otherwise hold every lookup that
meets it for the whole RPC timeout); its answer still counts if it comes. At most
`alpha * MAX_SLOW_FACTOR` queries are in flight, slow ones included. The lookup is done when
the `k` closest peers it knows of (slow and failed ones aside) have all answered, or no
candidate is left (a lookup whose every query is slow waits for them: on a loaded machine
that is all of them, and a lookup that gave up then found nobody). One answer adds at most
MAX_NEW_PER_ANSWER peers it did not know (the closest to the target): an answer cannot make
the lookup dial a crowd.
"""

from __future__ import annotations

from dataclasses import dataclass

ALPHA = 3
MAX_SLOW_FACTOR = 3
MAX_NEW_PER_ANSWER = 10  # peers one answer may add to the lookup (the closest to the target):
                         # a hostile answer cannot fill the lookup with peers to dial


@dataclass(frozen=True)
class Candidate:
    peer_id: str
    addrs: tuple[str, ...]
    kid: int


class Lookup:
    def __init__(self, target: int, seeds: list[Candidate], k: int = 20, alpha: int = ALPHA,
                 own_peer_id: str = "") -> None:
        self.target = target
        self.k = k
        self.alpha = alpha
        self.own = own_peer_id
        self.known: dict[str, Candidate] = {}
        self.state: dict[str, str] = {}  # peer -> "waiting" | "slow" | "answered" | "failed"
        self.depth: dict[str, int] = {}  # hops from us: 1 for our own contacts
        self.hops = 0  # the deepest peer that answered
        for s in seeds:
            self._learn(s, 1)

    def _learn(self, c: Candidate, depth: int) -> None:
        if c.peer_id != self.own and c.peer_id not in self.known:
            self.known[c.peer_id] = c
            self.depth[c.peer_id] = depth

    def _ranked(self) -> list[Candidate]:
        return sorted((c for p, c in self.known.items()
                       if self.state.get(p) not in ("failed", "slow")),
                      key=lambda c: c.kid ^ self.target)

    def next_queries(self) -> list[Candidate]:
        waiting = sum(1 for s in self.state.values() if s == "waiting")
        slow = sum(1 for s in self.state.values() if s == "slow")
        out: list[Candidate] = []
        for c in self._ranked()[: self.k]:
            if waiting + len(out) >= self.alpha or \
                    waiting + slow + len(out) >= self.alpha * MAX_SLOW_FACTOR:
                break
            if c.peer_id not in self.state:
                out.append(c)
        for c in out:
            self.state[c.peer_id] = "waiting"
        return out

    def answered(self, peer_id: str, closer: list[Candidate]) -> None:
        self.state[peer_id] = "answered"
        depth = self.depth.get(peer_id, 1)
        self.hops = max(self.hops, depth)
        new = sorted({c.peer_id: c for c in closer if c.peer_id not in self.known
                      and c.peer_id != self.own}.values(), key=lambda c: c.kid ^ self.target)
        for c in new[:MAX_NEW_PER_ANSWER]:
            self._learn(c, depth + 1)

    def failed(self, peer_id: str) -> None:
        self.state[peer_id] = "failed"

    def slow(self, peer_id: str) -> None:
        if self.state.get(peer_id) == "waiting":
            self.state[peer_id] = "slow"

    @property
    def in_flight(self) -> int:
        """Queries the lookup still waits for (slow ones are not waited for)."""
        return sum(1 for s in self.state.values() if s == "waiting")

    @property
    def done(self) -> bool:
        top = self._ranked()[: self.k]
        if top and all(self.state.get(c.peer_id) == "answered" for c in top):
            return True
        if self.in_flight or any(c.peer_id not in self.state for c in top):
            return False
        # nothing left to ask: done, unless only slow queries could still give an answer
        states = self.state.values()
        return "answered" in states or "slow" not in states

    def closest_reached(self, n: int | None = None) -> list[Candidate]:
        """The closest peers that answered or were still answering when the lookup ended
        (slow, not failed): where a record belongs, though a busy peer among them did not
        tell us of its neighbours in time."""
        n = self.k if n is None else n
        return sorted((c for p, c in self.known.items()
                       if self.state.get(p) in ("answered", "slow")),
                      key=lambda c: c.kid ^ self.target)[:n]

    def closest_answered(self, n: int | None = None) -> list[Candidate]:
        n = self.k if n is None else n
        return [c for c in self._ranked() if self.state.get(c.peer_id) == "answered"][:n]
