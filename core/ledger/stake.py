"""Stake: what a village puts at risk to serve above the `basic` level, shown so that any other
village can check it with nothing but the proof.

A stake proof says: village V stakes `amount` credits, backed by `receipts` - the latest
verified, doubly-signed receipt V holds from each village it worked for (a pair's receipts
carry the running total of its units, so one receipt per pair proves all that pair's work).
V signs the proof with its village key (Ed25519 over DOMAIN + body). A reader honours only
the backing from consumers it trusts (itself, the villages its checks and the network's trust
vouch for): credit a ring of fresh identities signed for each other backs nothing. The stake
that counts is the smaller of the amount and that honoured backing, less whatever this reader
saw slashed.

A village's proof is served on `/grove/stake/1.0.0` (one request, one answer); `StakeBook`
fetches, checks and caches them for a client choosing servers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from core import signed
from core.errors import NetworkError, PeerMisbehaviour
from core.ledger import policy
from core.ledger import receipts as rc
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

PROTOCOL = "/grove/stake/1.0.0"
VERSION = 1
DOMAIN = b"grove-stake:v1\x00"
MAX_RECEIPTS = 16
MAX_BYTES = MAX_RECEIPTS * rc.MAX_BYTES + 1024
MAX_AGE = 600.0       # s a proof is believed after it was signed (it is fetched again)
CACHE_FOR = 120.0     # s a fetched proof is kept before asking again
RETRY_AFTER = 10.0    # s before asking again a village whose proof did not come or hold
ASK_TIMEOUT = 10.0


class Stake(msgspec.Struct, frozen=True):
    v: int
    village: str
    amount: float
    receipts: list[bytes]  # SignedReceipt wire bytes, worker == village
    at: float


class BadStake(ValueError):
    """A stake proof that does not hold; `str()` says why."""


def make(stake: Stake, sign: Callable[[bytes], bytes]) -> bytes:
    return signed.seal(stake, DOMAIN, sign)


def check(data: bytes, village: str, now: float) -> tuple[Stake, dict[str, float]]:
    """The proof and the credit each consumer's receipts prove (consumer -> credits), if it is
    `village`'s, fresh, signed, and every receipt in it holds; BadStake saying which if not."""
    env, s = signed.open_envelope(data, Stake, limit=MAX_BYTES, what="stake proof",
                                  error=BadStake)
    if s.v != VERSION:
        raise BadStake(f"stake proof version {s.v} is not supported")
    if s.village != village:
        raise BadStake("the proof names another village")
    if not (math.isfinite(s.amount) and 0 <= s.amount <= 1e12):
        raise BadStake("the amount is not a number of credits")
    if not (math.isfinite(s.at) and now - MAX_AGE <= s.at <= now + rc.CLOCK_SKEW):
        raise BadStake("the proof is stale or dated in the future")
    if len(s.receipts) > MAX_RECEIPTS:
        raise BadStake(f"{len(s.receipts)} receipts (at most {MAX_RECEIPTS})")
    signed.verify(env, DOMAIN, village, "village", BadStake)
    backing: dict[str, float] = {}
    seen: set[tuple[str, str]] = set()
    for wire in s.receipts:
        try:
            r, _ = rc.check(wire, now)
        except rc.ReceiptRejected as e:
            raise BadStake(f"a receipt does not hold: {e}") from None
        if r.worker != village:
            raise BadStake("a receipt for another village's work")
        if (r.consumer, r.kind) in seen:
            raise BadStake("two receipts of one pair (only the latest counts)")
        seen.add((r.consumer, r.kind))
        backing[r.consumer] = backing.get(r.consumer, 0.0) + policy.credits(r.kind, r.total)
    return s, backing


def honoured_stake(amount: float, backing: dict[str, float], trusted: Iterable[str],
                   slashed: float = 0.0) -> float:
    """What a stake is worth to a reader: the amount, up to the credit consumers it trusts
    signed for, less what it saw slashed (never below 0). Pure."""
    trusted = set(trusted)
    honoured = sum(c for consumer, c in backing.items() if consumer in trusted)
    return max(0.0, min(amount, honoured) - slashed)


class StakeService:
    """Serves this village's stake proof: `amount()` is what the gardener staked (a
    setting), `backing()` the latest verified receipts of our work (the ledger's)."""

    def __init__(self, ctx: ServiceContext, amount: Callable[[], float],
                 backing: Callable[[], list[bytes]]) -> None:
        self.ctx, self.amount, self.backing = ctx, amount, backing

    async def proof(self) -> bytes:
        receipts = await trio.to_thread.run_sync(self.backing)
        return make(Stake(VERSION, self.ctx.peer_id, float(self.amount()),
                          receipts[:MAX_RECEIPTS], self.ctx.clock.wall()), self.ctx.sign)

    async def serve(self, stream: Any, peer: str) -> None:
        try:
            await read_frame(stream, max_size=64, timeout=ASK_TIMEOUT, peer=peer)
            await write_frame(stream, await self.proof())
        except (StreamClosed, EOFError, trio.TooSlowError, NetworkError):
            pass
        except PeerMisbehaviour as e:
            self.ctx.penalise(peer, f"stake: {e.reason}")
        finally:
            await close_stream(stream)


@dataclass
class Known:
    at: float
    amount: float = 0.0
    backing: dict[str, float] | None = None
    error: str = ""


class StakeBook:
    """Stakes of the servers a client may choose, fetched on demand and cached; `trusted()`
    is whose receipts count; `slashed` is what this village saw taken from each, per piece
    of work (a check here and the referee's ruling on the same work slash it once)."""

    def __init__(self, ctx: ServiceContext, trusted: Callable[[], Iterable[str]]) -> None:
        self.ctx, self.trusted = ctx, trusted
        self.known: dict[str, Known] = {}
        self.slashed: dict[str, dict[bytes, float]] = {}

    def stake(self, peer: str) -> float:
        """The stake this village honours for `peer` now (0 when unknown or unproven)."""
        k = self.known.get(peer)
        if k is None or k.backing is None:
            return 0.0
        return honoured_stake(k.amount, k.backing, {self.ctx.peer_id, *self.trusted()},
                              sum(self.slashed.get(peer, {}).values()))

    def claimed(self, peer: str) -> float:
        """The amount `peer`'s valid proof stakes, whoever backs it (what a ruling slashes a
        share of: the village itself put it at risk); 0 without a valid proof."""
        k = self.known.get(peer)
        return k.amount if k is not None and k.backing is not None else 0.0

    def slash(self, peer: str, credits: float, work: bytes) -> None:
        """`credits` of `peer`'s stake taken over `work` (its key): the larger of what a
        check here and a ruling took, never both."""
        held = self.slashed.setdefault(peer, {})
        held[work] = max(held.get(work, 0.0), credits)

    async def refresh(self, peers: Iterable[str]) -> None:
        """Fetch the proofs of `peers` not fetched for CACHE_FOR."""
        now = self.ctx.clock.wall()
        due = [p for p in peers if p not in self.known or now - self.known[p].at > (
            CACHE_FOR if self.known[p].backing is not None else RETRY_AFTER)]
        async with trio.open_nursery() as n:
            for p in due:
                n.start_soon(self._fetch, p)

    async def _fetch(self, peer: str) -> None:
        now = self.ctx.clock.wall()
        try:
            with trio.fail_after(ASK_TIMEOUT):
                stream = await self.ctx.transport.open_stream(peer, PROTOCOL,
                                                              timeout=ASK_TIMEOUT)
                try:
                    await write_frame(stream, b"\x00")
                    data = await read_frame(stream, max_size=MAX_BYTES, timeout=ASK_TIMEOUT,
                                            peer=peer)
                finally:
                    await close_stream(stream)
            s, backing = check(data, peer, now)
            self.known[peer] = Known(now, s.amount, backing)
        except BadStake as e:
            self.ctx.penalise(peer, f"stake: {e}")
            self.known[peer] = Known(now, error=str(e))
        except PeerMisbehaviour as e:
            self.ctx.penalise(peer, f"stake: {e.reason}")
            self.known[peer] = Known(now, error=e.reason)
        except (trio.TooSlowError, NetworkError, StreamClosed, EOFError) as e:
            self.known[peer] = Known(now, error=f"no stake proof ({type(e).__name__})")
