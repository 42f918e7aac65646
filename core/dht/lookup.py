"""An iterative Kademlia lookup as a state machine. Pure: the service feeds it answers.

`next_queries()` gives up to `alpha` unqueried peers among the closest known; `answered()`
and `failed()` report outcomes. The lookup is done when the `k` closest peers it knows of have
all answered, or no candidate is left.
"""

from __future__ import annotations

from dataclasses import dataclass

ALPHA = 3


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
        self.state: dict[str, str] = {}  # peer -> "waiting" | "answered" | "failed"
        for s in seeds:
            self._learn(s)

    def _learn(self, c: Candidate) -> None:
        if c.peer_id != self.own and c.peer_id not in self.known:
            self.known[c.peer_id] = c

    def _ranked(self) -> list[Candidate]:
        return sorted((c for p, c in self.known.items() if self.state.get(p) != "failed"),
                      key=lambda c: c.kid ^ self.target)

    def next_queries(self) -> list[Candidate]:
        waiting = sum(1 for s in self.state.values() if s == "waiting")
        out: list[Candidate] = []
        for c in self._ranked()[: self.k]:
            if waiting + len(out) >= self.alpha:
                break
            if c.peer_id not in self.state:
                out.append(c)
        for c in out:
            self.state[c.peer_id] = "waiting"
        return out

    def answered(self, peer_id: str, closer: list[Candidate]) -> None:
        self.state[peer_id] = "answered"
        for c in closer:
            self._learn(c)

    def failed(self, peer_id: str) -> None:
        self.state[peer_id] = "failed"

    @property
    def in_flight(self) -> int:
        return sum(1 for s in self.state.values() if s == "waiting")

    @property
    def done(self) -> bool:
        top = self._ranked()[: self.k]
        if all(self.state.get(c.peer_id) == "answered" for c in top):
            return True
        return self.in_flight == 0 and not any(c.peer_id not in self.state for c in top)

    def closest_answered(self, n: int | None = None) -> list[Candidate]:
        n = self.k if n is None else n
        return [c for c in self._ranked() if self.state.get(c.peer_id) == "answered"][:n]
