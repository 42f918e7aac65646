"""Conversations between personas of several villages: `/grove/persona/1.0.0`, the store, and
the loops that speak, sync and checkpoint. The consistency rules are in `core.personas.log`
and docs/consistency.md.

One request and one answer per stream, msgpack frames with size caps: Invite (refused for a
closed persona, a persona at capacity, or one this village does not host), Push (new entries),
Heads (a participant's heads, entry count and latest final checkpoint), Since (what the
asker lacks, judged from its version vector, in causal order), Fetch (entries by hash),
Propose (a checkpoint to co-sign) and Final (a checkpoint every participant signed).
Every entry's signature is checked on arrival; an entry citing unknown parents makes the
receiver fetch them from the sender; a village that equivocates is recorded and left out; a
flood of pushes from one village is refused past a rate. Everything a village holds is in
SQLite (`conversations.db`, WAL, synchronous=FULL), so a village that was killed reloads its
logs and catches up by exchanging heads.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from core.errors import NetworkError, PeerMisbehaviour, SettingsError
from core.names import display_name, speaker, village_name
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream
from core.personas import log as pl
from core.personas.backends import BackendError, backend_for
from core.personas.messages import (
    MAX_BATCH,
    MAX_FRAME,
    PROTOCOL,
    SINCE_BATCH,
    VERSION,
    Answer,
    Conversation,
    Fetch,
    Final,
    Heads,
    Invite,
    Participant,
    Propose,
    Push,
    Request,
    Since,
    _answers,
    members,
)
from core.personas.serving import INVITES_BURST, INVITES_PER_SECOND, ConversationServer
from core.personas.store import ConversationStore
from core.ratelimit import PeerRates, TokenBucket
from core.snapshot import ConversationView

if TYPE_CHECKING:
    from core.ports import Personas, ServiceContext

log = logging.getLogger(__name__)

SYNC_EVERY = 1.5               # s between head exchanges with each participant
TURN_EVERY = 1.0               # s, least, between one persona's messages
SYNC_IDLE = 3600.0             # s without a new entry after which a conversation's loops end
CHECKPOINT_AFTER = 5           # new entries since the last final checkpoint
DB_FILE = "conversations.db"
TALK_REQUEST_TTL = 120.0       # s a conversation asked for from the command line may wait


class ConversationService(ConversationServer):
    """`dht` finds a partner village's record (to dial it); `personas` are the ones this
    village hosts."""

    def __init__(self, ctx: ServiceContext, dht: Any, personas: Personas) -> None:
        self.ctx = ctx
        self.directory = dht
        self.personas = personas
        self.conversations: dict[str, Conversation] = {}
        self.store: ConversationStore | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._invites = PeerRates(INVITES_PER_SECOND, INVITES_BURST, 10_000)
        self._nursery: trio.Nursery | None = None
        self.bytes_in = 0  # protocol bytes received (requests served, answers read)

    @property
    def me(self) -> str:
        return self.ctx.peer_id

    # -- running -------------------------------------------------------------------------
    async def run(self) -> None:
        host = self.ctx.transport
        path = self.ctx.data_dir / DB_FILE
        self.store = await trio.to_thread.run_sync(ConversationStore, path)
        try:
            for c in await trio.to_thread.run_sync(self.store.load):
                self.conversations[c.id] = c
            host.set_handler(PROTOCOL, self._serve)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for c in list(self.conversations.values()):  # catch up, then quiet down
                    c.last_change = self.ctx.clock.wall()
                    nursery.start_soon(self._conversation_loop, c)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            store, self.store = self.store, None
            if store is not None:
                with trio.CancelScope(shield=True):  # a stopping node still closes its file
                    await trio.to_thread.run_sync(store.close)

    def views(self) -> tuple[ConversationView, ...]:
        name_of = self.speaker_names()
        out = []
        for c in sorted(self.conversations.values(), key=lambda c: -c.created_at):
            t = c.log.transcript()
            final = c.log.final
            out.append(ConversationView(
                c.id, name_of(self.me, c.persona),
                tuple(name_of(p.peer, p.persona) for p in c.others(self.me)),
                len(c.log.entries), sum(1 for e in t if e.kind == "message"),
                len(c.log.heads()), final.checkpoint.count if final else 0,
                tuple(sorted(village_name(a) for a in c.log.forked_at)), c.error,
                tuple((name_of(e.author, e.persona), e.text) for e in t[-50:]),
                stopped=c.stopped,
                finished=self._my_messages(c) >= c.turns or c.over()))
        return tuple(out)

    def speaker_names(self) -> Callable[[str, str], str]:
        """(village, persona id) -> "Ada at Mossy Heron": the persona's name from its
        village's signed record (ours from our own list), the village's from core.names."""
        names = {(self.me, p.id): p.name for p in self.personas.current}
        villages: dict[str, str] = {}
        known = getattr(self.directory, "known_villages", None)
        for v in known(self.ctx.clock.wall()) if known is not None else ():
            r = v.record
            villages[r.peer_id] = r.name
            names.update({(r.peer_id, p.id): p.name for p in r.personas})

        def label(peer: str, persona: str) -> str:
            return speaker(names.get((peer, persona), ""), persona, "" if peer == self.me
                           else display_name(peer, villages.get(peer, "")))
        return label

    # -- starting one ----------------------------------------------------------------------
    async def start(self, persona_id: str, partners: list[tuple[str, str]], turns: int = 5
                    ) -> str:
        """Invite `partners` ((village, persona id)) to talk with our persona; the
        conversation's id. SettingsError when our persona cannot; NetworkError naming the
        partner that refused or could not be reached."""
        mine = {p.id: p for p in self.personas.current}
        if persona_id not in mine:
            raise SettingsError(f"This village hosts no persona {persona_id!r}.")
        cid = secrets.token_hex(16)
        parts = [Participant(self.me, persona_id)] + [Participant(v, p) for v, p in partners]
        for v, p in partners:
            answer = await self._ask(v, Invite(VERSION, cid, p, parts, turns))
            if not answer.ok:
                raise NetworkError(f"{self.speaker_names()(v, p)} declined the conversation: "
                                   f"{answer.reason}", "")
        c = Conversation(cid, persona_id, parts, turns, pl.Log(cid, members(parts)),
                         self.ctx.clock.wall())
        self._begin(c)
        return cid

    async def stop(self, conversation: str) -> None:
        """Our persona says nothing more in `conversation` (stored: it stays stopped after a
        restart); the others may still say theirs, and the log keeps syncing."""
        c = self.conversations.get(conversation)
        if c is None:
            raise SettingsError(f"There is no conversation {conversation[:12]!r} here.")
        c.turns, c.stopped = self._my_messages(c), True
        store = self.store
        if store is not None:
            await trio.to_thread.run_sync(store.set_stopped, c.id, c.turns)

    async def serve_requests(self, requests: Any) -> None:
        """Start the conversations `grove personas talk` asked for (`requests`: the persona
        service, over the registry file) and answer each with the conversation's id or why
        it did not start; a request older than TALK_REQUEST_TTL is answered, not started."""
        while True:
            for r in await requests.wait_talk_requests():
                if self.ctx.clock.wall() - r.created_at > TALK_REQUEST_TTL:
                    await requests.answer_talk(r.id, error="the request waited too long "
                                               "(the village was not running)")
                    continue
                try:
                    cid = await self.start(r.persona, [(r.village, r.partner)], r.turns)
                except Exception as e:  # refused, unreachable, a bad request: say why
                    await requests.answer_talk(r.id, error=str(e) or type(e).__name__)
                else:
                    await requests.answer_talk(r.id, conversation=cid)

    def _begin(self, c: Conversation) -> None:
        self.conversations[c.id] = c
        assert self.store is not None
        self.store.add_conversation(c)  # small and rare: fine on the trio thread
        if self._nursery is not None:
            self._nursery.start_soon(self._conversation_loop, c)

    # -- the loops of one conversation -----------------------------------------------------
    async def _conversation_loop(self, c: Conversation) -> None:
        """Its loops run until it has been quiet for SYNC_IDLE s (a village that invited us
        and went away does not keep them running for ever); a new entry pushed to us, or a
        restart, brings them back."""
        c.looping = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._speak_loop, c)
                nursery.start_soon(self._checkpoint_loop, c)
                await self._sync_loop(c)
                nursery.cancel_scope.cancel()
        finally:
            c.looping = False

    def _my_messages(self, c: Conversation) -> int:
        return c.said(self.me)

    async def _speak_loop(self, c: Conversation) -> None:
        """Our persona answers whenever the last word is someone else's, up to its turns."""
        while self._my_messages(c) < c.turns:
            await trio.sleep(TURN_EVERY * self.ctx.rng.uniform(0.5, 1.5))
            t = c.log.transcript()
            if not c.may_speak(self.me, t):
                continue
            persona = next((p for p in self.personas.current if p.id == c.persona),
                           None)
            if persona is None:
                c.error = "our persona was removed"
                return
            s = self.ctx.settings
            backend = backend_for(persona, s.persona_endpoint_url, s.persona_endpoint_model)
            history = [(f"{e.persona}@{e.author[-6:]}", e.text) for e in t]
            try:
                text = await trio.to_thread.run_sync(backend.reply, persona, history)
            except BackendError as e:
                c.error = str(e)
                continue
            c.error = ""
            if c.stopped:  # stopped while the reply was being written: it is not said
                return
            await self.append(c, text)

    async def append(self, c: Conversation, text: str, kind: str = "message") -> str:
        e = pl.Entry(pl.VERSION, c.id, self.me, c.persona, c.log.next_seq(self.me),
                     c.log.heads(), self.ctx.clock.wall(), kind, text)
        wire = pl.sign_entry(e, self.ctx.sign)
        added = c.log.add(wire)
        await self._save(c, added)
        c.last_spoke = c.last_change = self.ctx.clock.wall()
        for p in c.others(self.me):
            box = c.outbox.setdefault(p.peer, [])
            box.append(wire)
            if len(box) == 1 and self._nursery is not None:  # nobody is flushing it yet
                self._nursery.start_soon(self._flush, c, p.peer)
        return added[0]

    async def _flush(self, c: Conversation, peer: str) -> None:
        """Push what we appended to `peer`, in batches; a push that fails is dropped (the
        heads exchange brings the peer up to date when it is back)."""
        while c.outbox.get(peer):
            batch, c.outbox[peer] = c.outbox[peer][:MAX_BATCH], c.outbox[peer][MAX_BATCH:]
            try:
                await self._ask(peer, Push(VERSION, c.id, batch))
            except (NetworkError, PeerMisbehaviour, trio.TooSlowError, StreamClosed) as e:
                log.debug("conversation push to %s failed: %s", peer[-8:], e)
        c.outbox.pop(peer, None)

    async def _save(self, c: Conversation, hashes: list[str]) -> None:
        if hashes and self.store is not None:
            store = self.store
            await trio.to_thread.run_sync(store.add_entries, c.id,
                                          [(h, c.log.wires[h]) for h in hashes])

    async def _sync_loop(self, c: Conversation) -> None:
        while self.ctx.clock.wall() - max(c.created_at, c.last_change) < SYNC_IDLE:
            for p in c.others(self.me):
                try:
                    await self._sync_with(c, p.peer)
                except (NetworkError, PeerMisbehaviour, trio.TooSlowError, StreamClosed) as e:
                    log.debug("conversation sync with %s failed: %s", p.peer[-8:], e)
            await trio.sleep(SYNC_EVERY * self.ctx.rng.uniform(0.7, 1.3))

    async def _sync_with(self, c: Conversation, peer: str) -> None:
        answer = await self._ask(peer, Heads(VERSION, c.id))
        if not answer.ok:
            return
        c.partners_seen.add(peer)
        rounds = 0
        while any(h not in c.log.entries for h in answer.heads) and rounds < 10_000:
            rounds += 1  # behind: take what we lack in causal order, a batch at a time
            got = await self._ask(peer, Since(VERSION, c.id, c.log.have(), SINCE_BATCH))
            before = len(c.log.entries)
            await self._take(c, got.entries[:SINCE_BATCH], peer)
            if len(got.entries) < SINCE_BATCH or len(c.log.entries) == before:
                break  # all of it, or no progress (the hash walk below finishes)
        want = [h for h in answer.heads if h not in c.log.entries]
        want += sorted(c.log.missing_parents())
        rounds = 0
        while want and rounds < 1000:
            rounds += 1
            got = await self._ask(peer, Fetch(VERSION, c.id, want[:MAX_BATCH]))
            await self._take(c, got.entries[:MAX_BATCH], peer)
            want = [h for h in want if h not in c.log.entries][MAX_BATCH:] + sorted(
                c.log.missing_parents())
            want = list(dict.fromkeys(want))
            if not got.entries:
                break
        if answer.final is not None:
            self._take_final(c, answer.final, peer)

    async def _take(self, c: Conversation, wires: list[bytes], peer: str) -> None:
        added: list[str] = []
        for w in wires:
            forks_before = dict(c.log.forked_at)
            try:
                added += c.log.add(w)
            except pl.EntryRejected as e:
                if "waits for parents" not in str(e) and "too many entries" not in str(e):
                    self.ctx.penalise(peer, f"conversation entry: {e}")
            for author in set(c.log.forked_at) - set(forks_before):
                self.ctx.penalise(author, "equivocated: two entries with the same "
                                              "sequence number in a conversation")
        if added:
            c.last_change = self.ctx.clock.wall()
            if not c.looping and self._nursery is not None:  # quiet no more
                self._nursery.start_soon(self._conversation_loop, c)
        await self._save(c, added)

    def _take_final(self, c: Conversation, sc: pl.SignedCheckpoint, peer: str) -> None:
        try:
            c.log.accept_final(sc, [p.peer for p in c.participants])
        except pl.EntryRejected as e:
            if "unknown here" not in str(e):
                self.ctx.penalise(peer, f"conversation checkpoint: {e}")
            return
        if self.store is not None and c.log.final is sc:
            self.store.set_final(c.id, sc)

    async def _checkpoint_loop(self, c: Conversation) -> None:
        """The lowest honest village proposes, once enough entries came since the last final
        checkpoint; every honest participant must co-sign."""
        while True:
            await trio.sleep(SYNC_EVERY * 2)
            honest = sorted(p.peer for p in c.participants if p.peer not in c.log.forked_at)
            if not honest or honest[0] != self.me:
                continue
            done = c.log.final.checkpoint.count if c.log.final else 0
            if len(c.log.entries) - done < CHECKPOINT_AFTER and not (
                    len(c.log.entries) > done and c.over()):  # the tail too
                continue
            cp = c.log.checkpoint_for(c.log.heads())
            sigs = {self.me: self.ctx.sign(pl.checkpoint_body(cp))}
            for peer in honest[1:]:
                try:
                    a = await self._ask(peer, Propose(VERSION, cp))
                except (NetworkError, PeerMisbehaviour, trio.TooSlowError, StreamClosed):
                    break
                if a.ok:
                    sigs[peer] = a.sig
            if set(sigs) != set(honest):
                continue  # someone is away or behind: next round
            sc = pl.SignedCheckpoint(cp, sigs)
            self._take_final(c, sc, self.me)
            for peer in honest[1:]:
                try:
                    await self._ask(peer, Final(VERSION, sc))
                except (NetworkError, PeerMisbehaviour, trio.TooSlowError, StreamClosed):
                    pass

    # -- asking and serving ------------------------------------------------------------------
    async def _ask(self, peer: str, msg: Request) -> Answer:
        host = self.ctx.transport
        cached: tuple[str, ...] = ()
        if not host.is_connected(peer):
            rec = self.directory.villages.get(peer)
            if rec is None:
                with trio.move_on_after(10):
                    rec = await self.directory.get_village(peer)
            if rec is not None:
                cached = tuple(rec.record.addrs)
                host.remember(peer, rec.record.addrs)
        try:
            return await self._ask_once(peer, msg)
        except NetworkError:
            if not cached:
                raise
        # the record we held may be stale (the village restarted elsewhere): look it up
        # afresh and, where it moved, try once more
        fresh = None
        with trio.move_on_after(10):
            fresh = await self.directory.get_village(peer)
        if fresh is None or tuple(fresh.record.addrs) == cached:
            raise NetworkError(f"{peer} cannot be reached at the addresses its record names",
                               "")
        host.remember(peer, fresh.record.addrs)
        return await self._ask_once(peer, msg)

    async def _ask_once(self, peer: str, msg: Request) -> Answer:
        host = self.ctx.transport
        try:
            with trio.fail_after(20):
                stream = await host.open_stream(peer, PROTOCOL)
                try:
                    await write_frame(stream, msgspec.msgpack.encode(msg))
                    data = await read_frame(stream, max_size=MAX_FRAME, timeout=20, peer=peer)
                finally:
                    await close_stream(stream)
        except (NetworkError, PeerMisbehaviour, trio.TooSlowError):
            raise
        except Exception as e:  # a stream reset, a connection closed under us: the peer left
            raise NetworkError(f"the conversation stream to {peer} broke "
                               f"({type(e).__name__})", "") from None
        self.bytes_in += len(data)
        try:
            answer = _answers.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise PeerMisbehaviour(peer, f"malformed conversation answer: {e}") from None
        if answer.v != VERSION:
            raise PeerMisbehaviour(peer, f"conversation protocol version {answer.v}")
        return answer
