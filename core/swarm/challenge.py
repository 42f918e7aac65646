"""Challenges of served SWARM work, and refereeing them: `/grove/challenge/1.0.0`.

A client whose check of a server's work failed holds evidence: the server's signed commitment
(`core.swarm.commit`), the inputs it sent and the output it got back (both named by digest in
the commitment, so neither can be swapped). It challenges: the referee is the village closest
to the work's key among those a DHT lookup of that key reaches (`levels.referee`), never the
server or the challenger, so neither party picks it. The referee checks the evidence against
the commitment, recomputes the hop with parameters fetched from the servers of those blocks
(`core.swarm.checks`), and signs a ruling (`core.ledger.rulings`): upheld (the output was
wrong: the server's stake is slashed and the challenger paid a share) or rejected (it was
right: the challenger pays the server a fee), with the server's stake as its signed proof
states it. It tells the server; both parties' ledgers record the ruling once, with the credit
it moves. A referee that cannot decide (no one holds the committed parameters) says so, and
the challenger asks the next closest, up to REFEREES_TRIED.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from core.errors import NetworkError, PeerMisbehaviour
from core.ledger import levels, rulings
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream
from core.swarm import checks, commit, directory, wire

if TYPE_CHECKING:
    from core.ports import ServiceContext

log = logging.getLogger(__name__)

PROTOCOL = "/grove/challenge/1.0.0"
VERSION = 1
MAX_FRAME = wire.MAX_FRAME
REFEREES_TRIED = 3
ASK_TIMEOUT = 120.0   # s a referee may take (it fetches parameters and recomputes)
NOTIFY_TIMEOUT = 10.0
QUEUE = 16            # evidence waiting to be taken to a referee; older is dropped


class Challenge(msgspec.Struct, frozen=True, tag="challenge"):
    v: int
    work: bytes               # the server's signed commitment
    inputs: wire.WireTensor   # what was sent (the commitment names its digest)
    output: wire.WireTensor   # what came back


class Notice(msgspec.Struct, frozen=True, tag="ruling"):
    v: int
    ruling: bytes             # the referee's signed ruling, sent to the server


class Answer(msgspec.Struct, frozen=True, tag="answer"):
    v: int
    ok: bool
    ruling: bytes = b""
    error: str = ""


_request = msgspec.msgpack.Decoder(Challenge | Notice)
_answer = msgspec.msgpack.Decoder(Answer)


@dataclass(frozen=True)
class Evidence:
    server: str
    work: bytes
    inputs: wire.WireTensor
    output: wire.WireTensor


class ChallengeService:
    """Ports: dht (finds the referee, reads the SWARM directory), ledger (the
    LedgerService: its ledger records rulings, its stakes book reads stake proofs)."""

    def __init__(self, ctx: ServiceContext, dht: Any, ledger: Any) -> None:
        self.ctx, self.dht, self.ledger = ctx, dht, ledger
        self.pending: deque[Evidence] = deque(maxlen=QUEUE)
        self._wake = trio.Event()
        self.rulings: list[rulings.Ruling] = []  # recorded here this run, newest last
        self.refereed = 0
        self.last_error = ""

    def submit(self, evidence: Evidence) -> None:
        """Take `evidence` to a referee soon (the run loop does)."""
        self.pending.append(evidence)
        self._wake.set()

    async def run(self) -> None:
        self.ctx.transport.set_handler(PROTOCOL, self._serve)
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self.pending:
                ev = self.pending.popleft()
                try:
                    await self.challenge(ev)
                except Exception as e:  # one challenge's trouble never stops the next
                    log.warning("challenge of %s's work failed: %r", ev.server[-8:], e)

    # -- the challenger ----------------------------------------------------------------------
    async def challenge(self, ev: Evidence) -> rulings.Ruling | None:
        """Take `ev` to the referees closest to the work's key until one decides; the
        ruling, recorded in our ledger, or None (`last_error` says why)."""
        me = self.ctx.peer_id
        key = commit.key(ev.work)
        found = {c.peer_id: c for c in await self.dht.find_closest(key)}
        msg = msgspec.msgpack.encode(Challenge(VERSION, ev.work, ev.inputs, ev.output))
        tried: list[str] = []
        for _ in range(REFEREES_TRIED):
            ref = levels.referee(key, [p for p in found if p not in tried], (ev.server, me))
            if ref is None:
                break
            tried.append(ref)
            answer = await self._ask(ref, found[ref].addrs, msg)
            if not answer.ok:
                self.last_error = f"referee {ref[-8:]}: {answer.error}"
                log.info("challenge: %s", self.last_error)
                continue
            try:
                r = rulings.check(answer.ruling, self.ctx.clock.wall())
            except rulings.BadRuling as e:
                self.ctx.penalise(ref, f"challenge: {e}")
                continue
            if (r.referee, r.challenger, r.server, r.work_key) != (ref, me, ev.server, key):
                self.ctx.penalise(ref, "challenge: a ruling on other work or parties")
                continue
            await self.record(answer.ruling, r)
            return r
        self.last_error = self.last_error or "no referee could be reached"
        return None

    async def _ask(self, peer: str, addrs: tuple[str, ...], msg: bytes) -> Answer:
        host = self.ctx.transport
        if addrs and not host.is_connected(peer):
            host.remember(peer, addrs)
        try:
            with trio.fail_after(ASK_TIMEOUT):
                stream = await host.open_stream(peer, PROTOCOL, timeout=NOTIFY_TIMEOUT)
                try:
                    await write_frame(stream, msg)
                    data = await read_frame(stream, max_size=4096, timeout=ASK_TIMEOUT,
                                            peer=peer)
                finally:
                    await close_stream(stream)
            return _answer.decode(data)
        except msgspec.DecodeError as e:
            self.ctx.penalise(peer, f"challenge: malformed answer ({e})")
            return Answer(VERSION, False, error="a malformed answer")
        except PeerMisbehaviour as e:
            self.ctx.penalise(peer, f"challenge: {e.reason}")
            return Answer(VERSION, False, error=e.reason)
        except (trio.TooSlowError, NetworkError, StreamClosed, EOFError) as e:
            return Answer(VERSION, False, error=f"unreachable ({type(e).__name__})")

    async def record(self, data: bytes, r: rulings.Ruling) -> None:
        """Record a ruling in our ledger (once) and in the stakes this village honours."""
        store = self.ledger.ledger
        if store is not None:
            try:
                await trio.to_thread.run_sync(lambda: store.add_ruling(data).result(30))
            except Exception as e:  # already recorded, or the ledger is paused: said
                log.info("challenge: ruling not recorded: %s", e)
        if r.upheld:
            self.ledger.stakes.slash(r.server, r.stake * levels.SLASH_SHARE, r.work_key)
        self.rulings.append(r)

    # -- the referee and the server ---------------------------------------------------------
    async def _serve(self, stream: Any, peer: str) -> None:
        try:
            data = await read_frame(stream, max_size=MAX_FRAME, timeout=30.0, peer=peer)
            try:
                msg = _request.decode(data)
            except msgspec.DecodeError as e:
                self.ctx.penalise(peer, f"challenge: malformed request ({e})")
                answer = Answer(VERSION, False, error="malformed request")
            else:
                if msg.v != VERSION:
                    answer = Answer(VERSION, False, error=f"version {msg.v} is not spoken here")
                elif isinstance(msg, Challenge):
                    answer = await self._judge(msg, peer)
                else:
                    answer = await self._noticed(msg, peer)
            await write_frame(stream, msgspec.msgpack.encode(answer))
        except (StreamClosed, EOFError, trio.TooSlowError, NetworkError):
            pass
        except PeerMisbehaviour as e:
            self.ctx.penalise(peer, f"challenge: {e.reason}")
        finally:
            await close_stream(stream)

    async def _judge(self, msg: Challenge, challenger: str) -> Answer:
        from core.swarm.model import MODELS

        def refuse(why: str, fault: bool = False) -> Answer:
            if fault:
                self.ctx.penalise(challenger, f"challenge: {why}")
            return Answer(VERSION, False, error=why)

        me = self.ctx.peer_id
        try:
            work = commit.open_signed(msg.work, self.ctx.clock.wall())
        except commit.BadCommit as e:
            return refuse(f"the commitment does not hold: {e}", fault=True)
        if me in (work.server, challenger) or work.server == challenger:
            return refuse("a party to the work cannot referee it")
        if wire.digest(msg.inputs) != work.inputs or wire.digest(msg.output) != work.output:
            return refuse("the evidence is not what the commitment names", fault=True)
        spec = MODELS.get(work.model)
        if spec is None:
            return refuse(f"model {work.model!r} is unknown here")
        try:
            x = wire.decode_tensor(msg.inputs, spec.hidden)
            out = wire.decode_tensor(msg.output, spec.hidden, batch_seq=x.shape[:2])
            from core.swarm.flat import block_size  # torch: the compute pack
        except wire.BadTensor as e:
            return refuse(f"bad tensor: {e}", fault=True)
        except ImportError:
            return refuse("this village cannot referee (no compute pack)")
        servers = await directory.read_servers(self.ctx, self.dht, spec.name, spec.blocks)
        size = await trio.to_thread.run_sync(block_size, spec)
        verdict = await checks.recheck(self.ctx, spec, work, x, out, servers=servers,
                                       block_size=size)
        if verdict.ok is None:
            return refuse(f"undecided: {verdict.reason}")
        await self.ledger.stakes.refresh([work.server])
        r = rulings.Ruling(rulings.VERSION, commit.key(msg.work), work.server, challenger, me,
                           not verdict.ok, self.ledger.stakes.claimed(work.server),
                           verdict.reason[:300], self.ctx.clock.wall())
        data = rulings.make(r, self.ctx.sign)
        self.refereed += 1
        log.info("challenge: refereed %s's work for %s: %s", work.server[-8:],
                 challenger[-8:], "upheld" if r.upheld else "rejected")
        with trio.move_on_after(NOTIFY_TIMEOUT):  # the server hears it from us
            await self._ask(work.server, (), msgspec.msgpack.encode(Notice(VERSION, data)))
        return Answer(VERSION, True, ruling=data)

    async def _noticed(self, msg: Notice, referee: str) -> Answer:
        try:
            r = rulings.check(msg.ruling, self.ctx.clock.wall())
        except rulings.BadRuling as e:
            self.ctx.penalise(referee, f"challenge: {e}")
            return Answer(VERSION, False, error=str(e))
        if r.server != self.ctx.peer_id or r.referee != referee:
            return Answer(VERSION, False, error="a ruling for another village, or not from "
                                                "its referee")
        await self.record(msg.ruling, r)
        return Answer(VERSION, True)
