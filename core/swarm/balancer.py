"""Which server of a stage takes the next micro-batch. Pure; `now` comes from the caller.

SWARM's balancer: interleaved weighted round-robin. Each server has an accumulated expected
load; the next micro-batch goes to the server whose load after taking it (load + 1/throughput)
is lowest, so over time each server gets work in proportion to its throughput, interleaved
rather than in bursts. A server seen for the first time takes the next micro-batch whatever
its throughput (a new server proves itself early), then joins at the lowest load. A server
that failed is banned until a given time (its record's expiry); a banned server is never
chosen, and comes back at the lowest load when its ban ends.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


class NoServer(Exception):
    """No server of the stage may take work now; `str()` says why."""


class Balancer:
    def __init__(self) -> None:
        self._load: dict[str, float] = {}
        self._banned: dict[str, float] = {}

    def ban(self, peer_id: str, until: float) -> None:
        self._banned[peer_id] = max(until, self._banned.get(peer_id, until))
        self._load.pop(peer_id, None)

    def banned(self, now: float) -> set[str]:
        for p in [p for p, t in self._banned.items() if t <= now]:
            del self._banned[p]
        return set(self._banned)

    def choose(self, servers: Mapping[str, float], now: float,
               exclude: Collection[str] = ()) -> str:
        """The server (peer id -> advertised throughput) for the next micro-batch; its
        expected load is charged at once."""
        banned = self.banned(now)
        usable = {p: t for p, t in servers.items()
                  if t > 0 and p not in banned and p not in exclude}
        if not usable:
            why = "all banned or excluded" if servers else "none announced"
            raise NoServer(f"no server can take the micro-batch ({why})")
        for p in [p for p in self._load if p not in servers]:
            del self._load[p]  # gone from the directory
        known = [self._load[p] for p in usable if p in self._load]
        floor = min(known) if known else 0.0
        new = sorted(p for p in usable if p not in self._load)
        for p in new:
            self._load[p] = floor
        best = new[0] if new else min(usable, key=lambda p: (self._load[p] + 1.0 / usable[p], p))
        self._load[best] += 1.0 / usable[best]
        return best

    def refund(self, peer_id: str, throughput: float) -> None:
        """A micro-batch charged to `peer_id` went elsewhere after all (it timed out)."""
        if peer_id in self._load and throughput > 0:
            self._load[peer_id] -= 1.0 / throughput
