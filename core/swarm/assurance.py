"""A SWARM client's service level at work: what it saw of each server (its reputation, with
the stake this village honours), whether a forward answer's commitment is the server's and
names exactly the hop, the verdict of a recomputation and what follows from it (scored,
credited or rejected, slashed in this village's view, the commitment kept as evidence), and
the second server of an `assured` hop. The rules themselves are `core.ledger.levels`'."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from core.ledger import levels
from core.swarm import checks, commit, wire
from core.swarm.balancer import NoServer
from core.swarm.calls import ServerFailed
from core.swarm.challenge import Evidence

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.swarm.directory import ServerInfo
    from core.swarm.model import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class CheckStats:
    checks_passed: int = 0
    checks_failed: int = 0
    checks_inconclusive: int = 0
    independent_checks: int = 0      # recomputed with other servers' parameters
    disagreements: int = 0           # assured hops whose two servers differed
    commitments: int = 0             # forward answers whose signed commitment held
    evidence: list[tuple[str, bytes, str]] = field(default_factory=list)  # peer, commit, why


class Assurance:
    """One client's level (`level`, `check_rate` None: the level's schedule; `distinct`: how
    trust clusters are told apart, `levels.cluster`), over `credits` (the ledger: told what
    the checks found; its `stakes` book says what each server's stake is worth here)."""

    def __init__(self, ctx: ServiceContext, spec: ModelSpec, credits: Any, stats: CheckStats,
                 *, level: str, check_rate: float | None, distinct: str) -> None:
        if level not in levels.LEVELS:
            raise ValueError(f"no service level {level!r} (one of {', '.join(levels.LEVELS)})")
        self.ctx, self.spec, self.credits, self.stats = ctx, spec, credits, stats
        self.level, self.check_rate, self.distinct = level, check_rate, distinct
        self.reps: dict[str, levels.Reputation] = {}
        self._block_size: int | None = None
        self._params = checks.ParamCache()  # confirmed by other servers (independent only)

    @property
    def stakes(self) -> Any:
        return getattr(self.credits, "stakes", None)

    def reputation(self, peer: str) -> levels.Reputation:
        """What this client saw of `peer`'s work, with the stake this village honours."""
        staked = self.stakes.stake(peer) if self.stakes is not None else 0.0
        return replace(self.reps.get(peer, levels.Reputation()), stake=staked)

    def may_serve(self, peer: str) -> bool:
        return levels.may_serve(self.reputation(peer), self.level)

    def rate(self, peer: str) -> float:
        """The share of `peer`'s hops to check now."""
        if self.check_rate is not None:
            return self.check_rate
        return levels.check_rate(self.reputation(peer), self.level)

    def scored(self, peer: str, *, hops: int = 0, passed: int = 0, failed: int = 0) -> None:
        r = self.reps.get(peer, levels.Reputation())
        self.reps[peer] = replace(r, hops=r.hops + hops, passed=r.passed + passed,
                                  failed=r.failed + failed)

    def commitment(self, server: ServerInfo, start: int, end: int, sent: wire.WireTensor,
                   answer: wire.SwarmAnswer) -> commit.Work:
        """The answer's commitment, if it is the server's and names exactly this hop;
        ServerFailed (its fault) if not."""
        assert answer.output is not None
        if not answer.commit:
            raise ServerFailed(server.peer_id, "a forward answer without its signed "
                                               "commitment", True)
        try:
            work = commit.open_signed(answer.commit, self.ctx.clock.wall())
            commit.expect(work, server=server.peer_id, model=self.spec.name, start=start,
                          end=end, inputs=wire.digest(sent), output=wire.digest(answer.output))
        except commit.BadCommit as e:
            raise ServerFailed(server.peer_id, f"its commitment: {e}", True) from None
        return work

    async def verdict(self, work: commit.Work, x: np.ndarray, out: np.ndarray,
                      servers: list[ServerInfo]) -> checks.Verdict:
        from core.swarm.flat import block_size

        if self._block_size is None:
            self._block_size = await trio.to_thread.run_sync(block_size, self.spec)
        return await checks.recheck(self.ctx, self.spec, work, x, out, servers=servers,
                                    block_size=self._block_size, cache=self._params)

    def record(self, peer: str, verdict: checks.Verdict, signed: bytes, units: int,
               tensors: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """What a verdict means: nothing (inconclusive); a pass, scored and credited; or a
        failure - scored, the work's credit rejected, the stake slashed in this village's
        view, the commitment kept as evidence and (with the hop's `tensors`, inputs and
        output) taken to a referee by the ledger's challenger - and ServerFailed."""
        if verdict.ok is None:
            self.stats.checks_inconclusive += 1
            log.info("swarm: a check of %s was inconclusive: %s", peer[-8:], verdict.reason)
            return
        self.stats.independent_checks += verdict.independent
        if verdict.ok:
            self.stats.checks_passed += 1
            self.scored(peer, passed=1)
            self.credits.check_passed(peer, "swarm")
            return
        self.stats.checks_failed += 1
        self.stats.evidence.append((peer, signed, verdict.reason))
        self.scored(peer, failed=1)
        self.credits.check_failed(peer, "swarm", units, verdict.reason)
        stakes = self.stakes
        staked = stakes.stake(peer) if stakes is not None else 0.0
        if stakes is not None and staked > 0:  # in this village's view, at once
            stakes.slash(peer, staked * levels.SLASH_SHARE, commit.key(signed))
        challenge = getattr(self.credits, "on_evidence", None)
        if challenge is not None and tensors is not None:  # the referee's ruling: for all
            challenge(Evidence(peer, signed, wire.encode_tensor(tensors[0]),
                               wire.encode_tensor(tensors[1])))
        raise ServerFailed(peer, verdict.reason, True)

    def agreed(self, *peers: str) -> None:
        """An assured hop's two servers gave the same answer: each passed a check."""
        for p in peers:
            self.scored(p, passed=1)
            self.credits.check_passed(p, "swarm")

    def second(self, first: ServerInfo, start: int, end: int, *, servers: list[ServerInfo],
               exclude: set[str], used: dict[str, int]) -> ServerInfo:
        """Another server for an assured hop: holds start..end-1, may serve at `assured`,
        of another trust cluster than `first`; the least used (`used`) first. NoServer
        when there is none."""
        now = self.ctx.clock.wall()
        distrusted = self.credits.distrusted
        mine = levels.cluster(first.peer_id, first.addrs, self.distinct)
        fit = [s for s in servers if s.peer_id != first.peer_id
               and s.peer_id not in exclude and s.peer_id not in distrusted
               and s.expires_at > now and s.record.start <= start and end <= s.record.end
               and self.may_serve(s.peer_id)
               and levels.cluster(s.peer_id, s.addrs, self.distinct) != mine]
        if not fit:
            raise NoServer(f"assured: no second staked server of another trust cluster "
                           f"holds blocks {start}..{end - 1}")
        return min(fit, key=lambda s: used.get(s.peer_id, 0))
