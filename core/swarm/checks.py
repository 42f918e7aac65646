"""Checking a SWARM server's work from public state, not from its word.

A forward answer carries the server's signed commitment (`core.swarm.commit`): the digest of
each block's parameters it used, of the inputs and of the output. `recheck` recomputes the hop
with parameters fetched from *other* servers of the same blocks whose digest is the committed
one: a server that computed honestly is confirmed by them, one that returned wrong outputs
fails, and one that lies about its parameters as consistently as about its outputs gains
nothing (no one else holds what it committed to). Where no other server holds those exact
parameters (a stage that trained since, or a block only one village serves), the server's own
parameters at the committed version are used when their digest matches (a weaker check:
`independent` false); when even they differ from what it committed to at that version, it
committed to parameters it does not hold - a failed check. Otherwise the check is
inconclusive and counts nothing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import trio

from core.swarm import commit
from core.swarm.calls import fetch_params

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.swarm.directory import ServerInfo
    from core.swarm.model import ModelSpec

log = logging.getLogger(__name__)

TOLERANCE = 1e-3   # relative difference a recomputation may show (float arithmetic, the same
#                    CPU kernels; across hardware this is the calibrated bound to measure)
HOLDERS_TRIED = 3  # other servers asked for one block's parameters
CACHE_BYTES = 64 * 2**20  # parameters kept for the next check (what others confirmed)


@dataclass(frozen=True)
class Verdict:
    ok: bool | None    # None: inconclusive (nothing to compare with)
    reason: str
    independent: bool  # the parameters came from other servers, not the checked one


def difference(want: np.ndarray, got: np.ndarray) -> float:
    """Largest difference relative to the recomputation's scale."""
    return float(np.abs(want - got).max() / (np.abs(want).max() + 1e-6))


class ParamCache:
    """Parameters fetched for checks, by digest, within a byte budget (least recently used
    leave first): a swarm that is not training is checked without fetching a block twice."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget = budget
        self._held: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def get(self, digest: bytes) -> np.ndarray | None:
        flat = self._held.get(digest)
        if flat is not None:
            self._held.move_to_end(digest)
        return flat

    def put(self, digest: bytes, flat: np.ndarray) -> None:
        if flat.nbytes > self.budget:
            return
        self._held[digest] = flat
        while sum(a.nbytes for a in self._held.values()) > self.budget:
            self._held.popitem(last=False)


async def recheck(ctx: ServiceContext, spec: ModelSpec, work: commit.Work, x: np.ndarray,
                  out: np.ndarray, *, servers: list[ServerInfo], block_size: int,
                  cache: ParamCache | None = None) -> Verdict:
    """The verdict on one committed forward hop (`x` in, `out` back) given the servers now
    listed (`servers`, the checked one among them)."""
    from core.swarm.flat import recompute

    params: dict[int, np.ndarray] = {}
    independent = True
    for i, b in enumerate(range(work.start, work.end)):
        want = work.params[i]
        found = cache.get(want) if cache is not None else None
        if found is not None:
            params[b] = found
            continue
        holders = [s for s in servers if s.peer_id != work.server
                   and s.record.start <= b < s.record.end][:HOLDERS_TRIED]
        for h in holders:
            flat = await fetch_params(ctx, h, b, block_size)
            if flat is not None and commit.params_digest(flat) == want:
                found = flat
                if cache is not None:
                    cache.put(want, flat)
                break
        if found is None:
            own = next((s for s in servers if s.peer_id == work.server), None)
            flat = None if own is None else await fetch_params(
                ctx, own, b, block_size, version=work.versions[i])
            if flat is None:
                return Verdict(None, f"no one holds block {b}'s committed parameters now",
                               False)
            if commit.params_digest(flat) != want:
                return Verdict(False, f"it committed to parameters of block {b} it does not "
                                      f"hold at version {work.versions[i]}", False)
            found, independent = flat, False
        params[b] = found
    expected = await trio.to_thread.run_sync(recompute, spec, params, x)
    diff = difference(expected, out)
    source = "other servers'" if independent else "its own"
    if diff > TOLERANCE:
        return Verdict(False, f"a check failed: the output differs from a recomputation with "
                              f"{source} parameters by {diff:.2g} (relative)", independent)
    return Verdict(True, f"recomputed with {source} parameters", independent)
