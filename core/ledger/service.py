"""Crediting on a running village: tallies of work, receipts settled between the two sides,
sampled checks, and the gardener's view of the ledger.

Both sides count: a worker counts what it served each consumer (a SWARM request answered, the
samples of a training step a group averaged in), a consumer what it received. Every
SETTLE_EVERY the consumer turns what it received since its last receipt into the next receipt
of the pair (its running total, signed) and sends it on `/grove/receipt/1.0.0`, with the
outcome of the sampled checks it ran on that work. The worker refuses a receipt that is not
for it, not from that consumer, or claims more than it served; else it countersigns, records
it, and answers with the doubly-signed receipt, which the consumer records too - both ledgers
then hold the same receipt. Work a consumer's check found wrong is not signed for: the worker
records it as rejected credit, with the consumer's reason, and the consumer's ledger scores a
failed check against the worker (its local trust, the input to EigenTrust). A receipt whose
work passed a check is verified at once; one never checked becomes verified after the grace
period. The ledger itself runs on its own writer thread; nothing here blocks the trio loop.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import time as wall_now
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from core.errors import NetworkError, PeerMisbehaviour
from core.ledger import receipts as rc
from core.ledger import stake
from core.ledger.reader import LedgerDamaged, LedgerReader
from core.ledger.store import Ledger, LedgerPaused
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream
from core.ratelimit import TokenBucket
from core.snapshot import CreditEvent, CreditsView

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

PROTOCOL = "/grove/receipt/1.0.0"
VERSION = 1
MAX_FRAME = 4096
SETTLE_EVERY = 30.0
LEDGER_FILE = "ledger.db"
RATE_PER_PEER = 1.0  # receipts a second one identity may ask us to countersign...
RATE_BURST = 20.0    # ...after a burst of this many
VIEW_EVERY = 2.0  # s between looks at whether the ledger changed (the gardener's view)
VIEW_REFRESH = 60.0  # s: the view is read again at least this often


class SettleRequest(msgspec.Struct, frozen=True, tag="settle"):
    v: int
    kind: str
    receipt: bytes            # SignedReceipt, signed by the consumer (b"": nothing to pay)
    checks_passed: int = 0    # sampled checks of this work that passed
    rejected_units: int = 0   # units a check found wrong: not paid
    reason: str = ""          # why (the failed check)


class SettleAnswer(msgspec.Struct, frozen=True, tag="settled"):
    v: int
    ok: bool
    receipt: bytes = b""      # the doubly-signed receipt
    error: str = ""


_decoder = msgspec.msgpack.Decoder(SettleRequest | SettleAnswer)


@dataclass
class Tally:
    """Work between us and one peer, of one kind, since the pair's last receipt."""

    units: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    checks_passed: int = 0
    rejected_units: int = 0
    reason: str = ""


class LedgerService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.ledger: Ledger | None = None
        self.problem = ""  # why crediting does not run ("" when it does)
        self.received: dict[tuple[str, str], Tally] = defaultdict(Tally)  # (worker, kind)
        self.served: dict[tuple[str, str], int] = defaultdict(int)  # (consumer, kind): total
        self.pairs: dict[tuple[str, str], tuple[int, int]] = {}  # (worker, kind): seq, total
        self._lock = trio.Lock()
        self.last_view = CreditsView()
        self.distrusted: frozenset[str] = frozenset()  # failed more sampled checks than passed
        self.trusted: frozenset[str] = frozenset()  # pre-trusted, passed more than failed,
        # or vouched for by the network's trust (core.ledger.trust)
        self.vouched: frozenset[str] = frozenset()
        self.network_trust: dict[str, float] = {}
        self._scores: dict[str, tuple[int, int, str]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        # stake: ours, served to whoever asks; others', as this village honours them
        self.stake = stake.StakeService(ctx, lambda: ctx.settings.swarm_stake, self._backing)
        self.stakes = stake.StakeBook(ctx, trusted=lambda: self.trusted)
        # evidence of wrong work our checks found, taken to a referee (core.swarm.challenge)
        self.on_evidence: Callable[[Any], None] | None = None

    def _backing(self) -> list[bytes]:
        ledger = self.ledger
        return ledger.backing(self.ctx.peer_id, stake.MAX_RECEIPTS) if ledger else []

    # -- tallies (called on the trio thread by the services doing the work) ----------------
    def consumed(self, worker: str, kind: str, units: int, context: bytes = b"") -> None:
        t = self.received[(worker, kind)]
        t.units += units
        t.digest.update(context)

    def served_to(self, consumer: str, kind: str, units: int) -> None:
        self.served[(consumer, kind)] += units

    def check_passed(self, worker: str, kind: str) -> None:
        self.received[(worker, kind)].checks_passed += 1
        if self.ledger is not None:
            self.ledger.decide(-1, True, peer=worker)

    def check_failed(self, worker: str, kind: str, units: int, reason: str) -> None:
        """A sampled check found `units` of `worker`'s work wrong: not paid, and scored."""
        t = self.received[(worker, kind)]
        t.units -= min(units, t.units)
        t.rejected_units += units
        t.reason = reason
        if self.ledger is not None:
            self.ledger.decide(-1, False, reason, peer=worker)

    # -- trust ------------------------------------------------------------------------------
    async def read_scores(self) -> dict[str, tuple[int, int, str]]:
        """Our sampled-check scores per village ({} while the ledger is not open)."""
        ledger = self.ledger
        return await trio.to_thread.run_sync(ledger.scores) if ledger is not None else {}

    def set_network_trust(self, trust: dict[str, float], vouched: frozenset[str]) -> None:
        """A refresh of the network's trust (core.ledger.trust): who it vouches for now."""
        from core.ledger import policy
        from core.resources import pretrusted_villages

        self.network_trust, self.vouched = trust, vouched
        self.trusted = policy.trusted_peers(self._scores, pretrusted_villages(),
                                            vouched=vouched)

    # -- running -----------------------------------------------------------------------------
    async def run(self) -> None:
        host = self.ctx.transport
        me = self.ctx.peer_id
        path = self.ctx.data_dir / LEDGER_FILE
        try:
            self.ledger = await trio.to_thread.run_sync(Ledger, path, me, self.ctx.sign)
        except LedgerDamaged as e:
            self.problem = f"crediting paused: {e}"
            self.last_view = CreditsView(paused=self.problem)
            log.error("ledger: %s", e)  # noqa: TRY400 (the reason is the message)
            return
        try:
            self.pairs = await trio.to_thread.run_sync(self._load_pairs, me)
            host.set_handler(PROTOCOL, self._serve)
            host.set_handler(stake.PROTOCOL, self.stake.serve)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._view_loop)
                while True:
                    await trio.sleep(SETTLE_EVERY * self.ctx.rng.uniform(0.8, 1.2))
                    await self.settle_all()
                    await trio.to_thread.run_sync(lambda: self.ledger.settle().result(30)
                                                  if self.ledger else None)
        finally:
            ledger, self.ledger = self.ledger, None
            if ledger is not None:
                with trio.CancelScope(shield=True):  # a stopping node still closes its file
                    await trio.to_thread.run_sync(ledger.close)

    async def _view_loop(self) -> None:
        """The gardener's view, read again after the ledger changed (our writer committed, or
        the file and its WAL changed under us; looked at every VIEW_EVERY s) and at least
        every VIEW_REFRESH s (pending credit turns verified with time, "today" rolls over)."""
        from core.ledger import policy
        from core.resources import pretrusted_villages

        seen: tuple[Any, ...] = ()
        read_at = -VIEW_REFRESH
        while self.ledger is not None:
            ledger = self.ledger
            now = (ledger.generation, _stamp(ledger.path), _stamp(Path(f"{ledger.path}-wal")))
            if now != seen or trio.current_time() - read_at >= VIEW_REFRESH:
                seen, read_at = now, trio.current_time()
                self.last_view = await trio.to_thread.run_sync(
                    credits_view, ledger, self.problem, self.vouched,
                    self.ctx.settings.swarm_stake, self.ctx.peer_id)
                scores = self._scores = await trio.to_thread.run_sync(ledger.scores)
                self.distrusted = frozenset(p for p, (ok, bad, _r) in scores.items()
                                            if bad > ok)
                self.trusted = policy.trusted_peers(scores, pretrusted_villages(),
                                                    vouched=self.vouched)
            await trio.sleep(VIEW_EVERY)

    def _load_pairs(self, me: str) -> dict[tuple[str, str], tuple[int, int]]:
        assert self.ledger is not None
        with self.ledger._read() as c:
            rows = c.execute("SELECT worker, consumer, kind, seq, total FROM pairs").fetchall()
        for w, cons, kind, _seq, total in rows:
            if w == me:
                self.served[(cons, kind)] = max(self.served[(cons, kind)], total)
        return {(w, kind): (seq, total) for w, cons, kind, seq, total in rows if cons == me}

    @property
    def paused(self) -> str:
        if self.problem:
            return self.problem
        return self.ledger.paused if self.ledger is not None else ""

    # -- settling (consumer side) -------------------------------------------------------------
    async def settle_all(self) -> int:
        """Send a receipt for every pair with unsettled work; returns how many settled."""
        done = 0
        for (worker, kind), t in list(self.received.items()):
            if t.units > 0 or t.rejected_units > 0:
                try:
                    done += await self.settle(worker, kind)
                except (NetworkError, PeerMisbehaviour, LedgerPaused, rc.ReceiptRejected) as e:
                    log.info("ledger: settling with %s failed: %s", worker[-8:], e)
        return done

    async def settle(self, worker: str, kind: str) -> int:
        async with self._lock:
            return await self._settle(worker, kind)

    async def _settle(self, worker: str, kind: str) -> int:
        ledger = self.ledger
        if ledger is None:
            return 0
        t = self.received.pop((worker, kind), Tally())
        me = self.ctx.peer_id
        seq, total = self.pairs.get((worker, kind), (0, 0))
        units = min(t.units, rc.MAX_UNITS[kind])
        if units <= 0 and t.rejected_units <= 0:
            return 0
        wire = b""
        signed = None
        if units > 0:
            receipt = rc.Receipt(rc.VERSION, worker, me, kind, units, total + units, seq + 1,
                                 t.digest.hexdigest(), self.ctx.clock.wall())
            signed = rc.consumer_sign(receipt, self.ctx.sign)
            wire = rc.encode(signed)
        req = SettleRequest(VERSION, kind, wire, t.checks_passed, t.rejected_units,
                            t.reason[:200])
        try:
            answer = await self._ask(worker, req)
        except BaseException:
            self._restore(worker, kind, t)
            raise
        if not answer.ok:
            self._restore(worker, kind, t)
            raise PeerMisbehaviour(worker, f"refused our receipt: {answer.error[:200]}")
        if signed is None:  # only wrong work to report: nothing signed, nothing recorded
            return 0
        try:
            r, both = rc.check(answer.receipt, self.ctx.clock.wall())
        except rc.ReceiptRejected as e:
            self._restore(worker, kind, t)
            raise PeerMisbehaviour(worker, f"countersigned receipt: {e}") from None
        if both.body != signed.body:
            self._restore(worker, kind, t)
            raise PeerMisbehaviour(worker, "countersigned a different receipt")
        await trio.to_thread.run_sync(ledger.add, answer.receipt)
        self.pairs[(worker, kind)] = (r.seq, r.total)
        if t.units > units:  # more than one receipt may carry: the rest goes in the next
            self.consumed(worker, kind, t.units - units)
        return 1

    def _restore(self, worker: str, kind: str, t: Tally) -> None:
        back = self.received[(worker, kind)]
        back.units += t.units
        back.checks_passed += t.checks_passed
        back.rejected_units += t.rejected_units
        back.reason = back.reason or t.reason

    async def _ask(self, worker: str, req: SettleRequest) -> SettleAnswer:
        host = self.ctx.transport
        stream = await host.open_stream(worker, PROTOCOL)
        try:
            await write_frame(stream, msgspec.msgpack.encode(req))
            data = await read_frame(stream, max_size=MAX_FRAME, timeout=30, peer=worker)
        except StreamClosed:
            raise NetworkError(f"{worker} closed the receipt stream", "") from None
        finally:
            await close_stream(stream)
        try:
            msg = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise PeerMisbehaviour(worker, f"malformed receipt answer: {e}") from None
        if not isinstance(msg, SettleAnswer) or msg.v != VERSION:
            raise PeerMisbehaviour(worker, "answered a receipt with something else")
        return msg

    # -- countersigning (worker side) ---------------------------------------------------------
    async def _serve(self, stream: Any, peer: str) -> None:
        data = await read_frame(stream, max_size=MAX_FRAME, timeout=30, peer=peer)
        now = trio.current_time()
        bucket = self._buckets.setdefault(peer, TokenBucket(RATE_PER_PEER, RATE_BURST, now))
        if bucket.take(1, now) > 0:  # an identity flooding us with receipts waits its turn
            bucket.take(-1, now)
            answer = SettleAnswer(VERSION, False, error=f"too many receipts: at most "
                                  f"{RATE_PER_PEER:g} a second after a burst of {RATE_BURST:g}")
            await write_frame(stream, msgspec.msgpack.encode(answer))
            return
        answer = await self._countersign(data, peer)
        await write_frame(stream, msgspec.msgpack.encode(answer))

    async def _countersign(self, data: bytes, peer: str) -> SettleAnswer:
        def refuse(why: str) -> SettleAnswer:
            self.ctx.penalise(peer, f"receipt refused: {why}")
            return SettleAnswer(VERSION, False, error=why)

        ledger = self.ledger
        if ledger is None or self.paused:
            return SettleAnswer(VERSION, False, error=f"not crediting now ({self.paused})")
        try:
            msg = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            return refuse(f"malformed: {e}")
        if not isinstance(msg, SettleRequest) or msg.v != VERSION:
            return refuse("not a receipt to countersign")
        if msg.kind not in rc.KINDS:
            return refuse(f"unknown kind of work {msg.kind[:20]!r}")
        if not (0 <= msg.checks_passed <= 1_000_000
                and 0 <= msg.rejected_units <= rc.MAX_UNITS[msg.kind]):
            return refuse("checks or rejected units out of range")
        why = f"a check by {peer[-8:]} failed: {msg.reason[:200] or 'wrong result'}"
        if not msg.receipt:  # nothing to pay: only work the consumer found wrong
            if msg.rejected_units > self.served[(peer, msg.kind)]:
                return refuse(f"rejects {msg.rejected_units} units of {msg.kind} this village "
                              f"never served it")
            if msg.rejected_units > 0:
                await trio.to_thread.run_sync(lambda: ledger.reject_unpaid(
                    0, msg.kind, msg.rejected_units, why, peer).result(30))
            return SettleAnswer(VERSION, True)
        try:
            r, signed = rc.check(msg.receipt, self.ctx.clock.wall(), need_worker=False)
        except rc.ReceiptRejected as e:
            return refuse(str(e))
        if r.worker != self.ctx.peer_id or r.consumer != peer or r.kind != msg.kind:
            return refuse("someone else's receipt (not for this village, or not from the "
                          "village that sent it)")
        served = self.served[(peer, r.kind)]
        if r.total > served:
            return refuse(f"claims {r.total} units of {r.kind} in all; this village served "
                          f"{served}")
        both = rc.worker_sign(signed, self.ctx.sign)
        try:
            rid = await trio.to_thread.run_sync(ledger.add, both)
        except rc.ReceiptRejected as e:
            return refuse(str(e))
        except LedgerPaused as e:
            return SettleAnswer(VERSION, False, error=str(e))
        if msg.rejected_units > 0:
            await trio.to_thread.run_sync(lambda: ledger.reject_unpaid(
                rid, r.kind, msg.rejected_units, why, peer).result(30))
        elif msg.checks_passed > 0:
            await trio.to_thread.run_sync(lambda: ledger.decide(rid, True).result(30))
        return SettleAnswer(VERSION, True, receipt=rc.encode(both))

    # -- the gardener's view ------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """Blocking reads: call from a worker thread (or the CLI)."""
        ledger = self.ledger
        if ledger is None:
            return {"running": False, "paused": self.paused}
        return ledger_view(ledger, self.paused)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def credits_view(ledger: LedgerReader, paused: str = "",
                 vouched: frozenset[str] = frozenset(), stake_offered: float = 0.0,
                 me: str = "") -> CreditsView:
    from core.ledger import policy
    from core.resources import pretrusted_villages

    v = ledger_view(ledger, paused)
    trusted = policy.trusted_peers(v["scores"], pretrusted_villages(), vouched=vouched)
    backing = ledger.backing_credit(me, stake.MAX_RECEIPTS) if me else 0.0
    scores = v["scores"].values()
    return CreditsView(
        stake=stake_offered, stake_backing=backing, slashed=-v["by_kind"].get("stake", 0.0),
        challenges=v["by_kind"].get("challenge", 0.0), checked_villages=len(v["scores"]),
        checks_passed=sum(a for a, _b, _r in scores),
        checks_failed=sum(b for _a, b, _r in scores),
        checks=tuple(sorted(((p, a, b) for p, (a, b, _r) in v["scores"].items()),
                            key=lambda c: -(c[1] + c[2]))[:256]),
        running=True, paused=v["paused"], balance=v["balance"],
        honoured=policy.honoured_credit(ledger.verified_by_consumer(), trusted),
        trusted=len(trusted), pending=v["pending"], rejected=v["rejected"], today=v["today"],
        this_week=v["this_week"], last_hour=v["last_hour"],
        by_kind=tuple(sorted(v["by_kind"].items())), history=tuple(v["history"]),
        events=tuple(CreditEvent(e["kind"], e["credits"], e["status"], e["reason"] or "",
                                 e["created_at"], e["consumer"] or "") for e in v["events"][:20]),
        receipts=v["receipts"], rates=tuple(sorted(policy.RATES.items())))


def ledger_view(ledger: LedgerReader, paused: str = "", now: float | None = None
                ) -> dict[str, Any]:
    now = wall_now() if now is None else now
    b = ledger.balance()
    day = now - now % 86400
    return {"running": True, "paused": paused or ledger.paused, "balance": b.verified,
            "pending": b.pending, "rejected": b.rejected, "by_kind": b.by_kind,
            "today": ledger.earned_since(day), "this_week": ledger.earned_since(now - 7 * 86400),
            "last_hour": ledger.earned_since(now - 3600),
            "history": ledger.history(30, now), "events": ledger.events(50),
            "receipts": ledger.receipt_count(), "scores": ledger.scores()}


__all__ = ["LedgerDamaged", "LedgerService", "ledger_view"]
