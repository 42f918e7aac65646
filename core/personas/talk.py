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
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from core.errors import NetworkError, PeerMisbehaviour, SettingsError
from core.net.framing import StreamClosed, read_frame, write_frame
from core.net.host import close_stream
from core.personas import log as pl
from core.personas.backends import BackendError, backend_for
from core.personas.store import ConversationStore
from core.ratelimit import TokenBucket
from core.snapshot import ConversationView

if TYPE_CHECKING:
    from core.node import Node

log = logging.getLogger(__name__)

PROTOCOL = "/grove/persona/1.0.0"
VERSION = 1
MAX_FRAME = 8 << 20
MAX_BATCH = 64                 # entries in one Push or Entries answer
SINCE_BATCH = 512              # entries in one answer to Since (≤ 4 MB at the size cap)
SYNC_EVERY = 1.5               # s between head exchanges with each participant
TURN_EVERY = 1.0               # s, least, between one persona's messages
CHECKPOINT_AFTER = 5           # new entries since the last final checkpoint
PUSH_RATE, PUSH_BURST = 20.0, 200.0  # entries a second one village may push us
DB_FILE = "conversations.db"


class Participant(msgspec.Struct, frozen=True):
    peer: str
    persona: str


class Invite(msgspec.Struct, frozen=True, tag="invite"):
    v: int
    conversation: str
    to_persona: str
    participants: list[Participant]
    turns: int


class Push(msgspec.Struct, frozen=True, tag="push"):
    v: int
    conversation: str
    entries: list[bytes]


class Heads(msgspec.Struct, frozen=True, tag="heads"):
    v: int
    conversation: str


class Fetch(msgspec.Struct, frozen=True, tag="fetch"):
    v: int
    conversation: str
    hashes: list[str]


class Since(msgspec.Struct, frozen=True, tag="since"):
    """The entries the asker lacks, judged from its version vector (per author, the sequence
    number up to which it holds everything), in causal order: parents first."""

    v: int
    conversation: str
    have: dict[str, int]
    limit: int


class Propose(msgspec.Struct, frozen=True, tag="propose"):
    v: int
    checkpoint: pl.Checkpoint


class Final(msgspec.Struct, frozen=True, tag="final"):
    v: int
    checkpoint: pl.SignedCheckpoint


class Answer(msgspec.Struct, frozen=True, tag="answer"):
    v: int
    ok: bool
    reason: str = ""
    heads: list[str] = []
    count: int = 0
    final: pl.SignedCheckpoint | None = None
    entries: list[bytes] = []
    sig: bytes = b""


Request = Invite | Push | Heads | Fetch | Since | Propose | Final
_requests = msgspec.msgpack.Decoder(Request)
_answers = msgspec.msgpack.Decoder(Answer)


@dataclass
class Conversation:
    id: str
    persona: str                      # ours
    participants: list[Participant]   # everyone, us included
    turns: int                        # messages each persona says at most
    log: pl.Log
    created_at: float
    error: str = ""
    last_spoke: float = 0.0
    partners_seen: set[str] = field(default_factory=set)
    outbox: dict[str, list[bytes]] = field(default_factory=dict)  # peer -> entries to push

    def others(self, me: str) -> list[Participant]:
        return [p for p in self.participants if p.peer != me]


class ConversationService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.conversations: dict[str, Conversation] = {}
        self.store: ConversationStore | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._nursery: trio.Nursery | None = None
        self.bytes_in = 0  # protocol bytes received (requests served, answers read)

    @property
    def me(self) -> str:
        return self.node.averaging.me

    # -- running -------------------------------------------------------------------------
    async def run(self) -> None:
        host = self.node.host
        assert host is not None
        path = self.node.config.paths.data_dir / DB_FILE
        self.store = await trio.to_thread.run_sync(ConversationStore, path)
        try:
            for c in await trio.to_thread.run_sync(self.store.load):
                self.conversations[c.id] = c
            host.set_handler(PROTOCOL, self._serve)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for c in list(self.conversations.values()):
                    nursery.start_soon(self._conversation_loop, c)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            store, self.store = self.store, None
            if store is not None:
                with trio.CancelScope(shield=True):  # a stopping node still closes its file
                    await trio.to_thread.run_sync(store.close)

    def views(self) -> tuple[ConversationView, ...]:
        names = {p.id: p.name for p in self.node.personas.current}
        out = []
        for c in sorted(self.conversations.values(), key=lambda c: -c.created_at):
            t = c.log.transcript()
            final = c.log.final
            out.append(ConversationView(
                c.id, names.get(c.persona, c.persona),
                tuple(f"{p.persona}@{p.peer[-6:]}" for p in c.others(self.me)),
                len(c.log.entries), sum(1 for e in t if e.kind == "message"),
                len(c.log.heads()), final.checkpoint.count if final else 0,
                tuple(sorted(a[-8:] for a in c.log.forked_at)), c.error,
                tuple((f"{e.persona}@{e.author[-6:]}", e.text) for e in t[-50:])))
        return tuple(out)

    # -- starting one ----------------------------------------------------------------------
    async def start(self, persona_id: str, partners: list[tuple[str, str]], turns: int = 5
                    ) -> str:
        """Invite `partners` ((village, persona id)) to talk with our persona; the
        conversation's id. SettingsError when our persona cannot; NetworkError naming the
        partner that refused or could not be reached."""
        mine = {p.id: p for p in self.node.personas.current}
        if persona_id not in mine:
            raise SettingsError(f"This village hosts no persona {persona_id!r}.")
        cid = secrets.token_hex(16)
        parts = [Participant(self.me, persona_id)] + [Participant(v, p) for v, p in partners]
        for v, p in partners:
            answer = await self._ask(v, Invite(VERSION, cid, p, parts, turns))
            if not answer.ok:
                raise NetworkError(f"{p}@{v[-6:]} declined the conversation: {answer.reason}",
                                   "")
        c = Conversation(cid, persona_id, parts, turns, pl.Log(cid), time.time())
        self._begin(c)
        return cid

    def _begin(self, c: Conversation) -> None:
        self.conversations[c.id] = c
        assert self.store is not None
        self.store.add_conversation(c)  # small and rare: fine on the trio thread
        if self._nursery is not None:
            self._nursery.start_soon(self._conversation_loop, c)

    # -- the loops of one conversation -----------------------------------------------------
    async def _conversation_loop(self, c: Conversation) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._speak_loop, c)
            nursery.start_soon(self._sync_loop, c)
            nursery.start_soon(self._checkpoint_loop, c)

    def _my_messages(self, c: Conversation) -> int:
        return sum(1 for e in c.log.entries.values() if e.author == self.me)

    async def _speak_loop(self, c: Conversation) -> None:
        """Our persona answers whenever the last word is someone else's, up to its turns."""
        while self._my_messages(c) < c.turns:
            await trio.sleep(TURN_EVERY * self.node.rng.uniform(0.5, 1.5))
            t = c.log.transcript()
            starter = c.participants[0].peer == self.me
            if (not t and not starter) or (t and t[-1].author == self.me):
                continue
            persona = next((p for p in self.node.personas.current if p.id == c.persona),
                           None)
            if persona is None:
                c.error = "our persona was removed"
                return
            s = self.node.settings
            backend = backend_for(persona, s.persona_endpoint_url, s.persona_endpoint_model)
            history = [(f"{e.persona}@{e.author[-6:]}", e.text) for e in t]
            try:
                text = await trio.to_thread.run_sync(backend.reply, persona, history)
            except BackendError as e:
                c.error = str(e)
                continue
            c.error = ""
            await self.append(c, text)

    async def append(self, c: Conversation, text: str, kind: str = "message") -> str:
        e = pl.Entry(pl.VERSION, c.id, self.me, c.persona, c.log.next_seq(self.me),
                     c.log.heads(), time.time(), kind, text)
        wire = pl.sign_entry(e, self.node.config.key.sign)
        added = c.log.add(wire)
        await self._save(c, added)
        c.last_spoke = time.time()
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
        while True:
            for p in c.others(self.me):
                try:
                    await self._sync_with(c, p.peer)
                except (NetworkError, PeerMisbehaviour, trio.TooSlowError, StreamClosed) as e:
                    log.debug("conversation sync with %s failed: %s", p.peer[-8:], e)
            await trio.sleep(SYNC_EVERY * self.node.rng.uniform(0.7, 1.3))

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
                    self.node.record_misbehaviour(peer, f"conversation entry: {e}")
            for author in set(c.log.forked_at) - set(forks_before):
                self.node.record_misbehaviour(author, "equivocated: two entries with the same "
                                              "sequence number in a conversation")
        await self._save(c, added)

    def _take_final(self, c: Conversation, sc: pl.SignedCheckpoint, peer: str) -> None:
        try:
            c.log.accept_final(sc, [p.peer for p in c.participants])
        except pl.EntryRejected as e:
            if "unknown here" not in str(e):
                self.node.record_misbehaviour(peer, f"conversation checkpoint: {e}")
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
                    len(c.log.entries) > done and self._settled(c)):
                continue
            cp = c.log.checkpoint_for(c.log.heads())
            sigs = {self.me: self.node.config.key.sign(pl.checkpoint_body(cp))}
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

    def _settled(self, c: Conversation) -> bool:
        """Everyone said all they will: checkpoint the tail too."""
        per = {p.peer: 0 for p in c.participants}
        for e in c.log.entries.values():
            per[e.author] = per.get(e.author, 0) + 1
        return all(n >= c.turns for n in per.values())

    # -- asking and serving ------------------------------------------------------------------
    async def _ask(self, peer: str, msg: Request) -> Answer:
        host = self.node.host
        assert host is not None
        if not host.is_connected(peer):
            rec = self.node.dht.villages.get(peer)
            if rec is None:
                with trio.move_on_after(10):
                    rec = await self.node.dht.get_village(peer)
            if rec is not None:
                host.remember(peer, rec.record.addrs)
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

    async def _serve(self, stream: Any, peer: str) -> None:
        data = await read_frame(stream, max_size=MAX_FRAME, timeout=20, peer=peer)
        self.bytes_in += len(data)
        try:
            msg = _requests.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.node.record_misbehaviour(peer, f"conversation: malformed: {e}")
            answer = Answer(VERSION, False, f"malformed: {e}")
        else:
            answer = await self._answer(msg, peer)
        await write_frame(stream, msgspec.msgpack.encode(answer))

    def _conv_of(self, cid: str, peer: str) -> Conversation | None:
        c = self.conversations.get(cid)
        if c is None or not any(p.peer == peer for p in c.participants):
            return None
        return c

    async def _answer(self, msg: Request, peer: str) -> Answer:
        def no(why: str) -> Answer:
            return Answer(VERSION, False, why)

        if msg.v != VERSION:
            return no(f"protocol version {msg.v} is not supported")
        if isinstance(msg, Invite):
            return self._invited(msg, peer)
        cid = msg.checkpoint.checkpoint.conversation if isinstance(msg, Final) else \
            msg.checkpoint.conversation if isinstance(msg, Propose) else msg.conversation
        c = self._conv_of(cid, peer)
        if c is None:
            return no("no such conversation with you here")
        if isinstance(msg, Push):
            now = trio.current_time()
            bucket = self._buckets.setdefault(peer, TokenBucket(PUSH_RATE, PUSH_BURST, now))
            if len(msg.entries) > MAX_BATCH or bucket.take(len(msg.entries), now) > 0:
                bucket.take(-len(msg.entries), now)
                self.node.record_misbehaviour(peer, "conversation: a flood of appends")
                return no(f"too many entries: at most {PUSH_RATE:g} a second")
            await self._take(c, msg.entries, peer)
            if c.log.missing_parents() and self._nursery is not None:
                self._nursery.start_soon(self._sync_quietly, c, peer)
            return Answer(VERSION, True)
        if isinstance(msg, Heads):
            return Answer(VERSION, True, heads=c.log.heads(), count=len(c.log.entries),
                          final=c.log.final)
        if isinstance(msg, Fetch):
            return Answer(VERSION, True, entries=[c.log.wires[h] for h in msg.hashes[:MAX_BATCH]
                                                  if h in c.log.wires])
        if isinstance(msg, Since):
            if len(msg.have) > 64:
                return no("a version vector of more than 64 authors")
            hashes = c.log.after(msg.have, max(1, min(msg.limit, SINCE_BATCH)))
            return Answer(VERSION, True, entries=[c.log.wires[h] for h in hashes])
        if isinstance(msg, Propose):
            try:
                c.log.check_checkpoint(msg.checkpoint)
            except pl.EntryRejected as e:
                if "unknown here" in str(e) and self._nursery is not None:
                    self._nursery.start_soon(self._sync_quietly, c, peer)
                return no(str(e))
            return Answer(VERSION, True, sig=self.node.config.key.sign(
                pl.checkpoint_body(msg.checkpoint)))
        self._take_final(c, msg.checkpoint, peer)
        return Answer(VERSION, True)

    async def _sync_quietly(self, c: Conversation, peer: str) -> None:
        try:
            await self._sync_with(c, peer)
        except (NetworkError, PeerMisbehaviour, trio.TooSlowError, StreamClosed) as e:
            log.debug("conversation sync with %s failed: %s", peer[-8:], e)

    def _invited(self, msg: Invite, peer: str) -> Answer:
        persona = next((p for p in self.node.personas.current if p.id == msg.to_persona), None)
        if persona is None:
            return Answer(VERSION, False, f"this village hosts no persona {msg.to_persona!r}")
        if persona.availability == "closed":
            return Answer(VERSION, False, f"{persona.name} is closed to conversations")
        if persona.status in ("paused", "error"):
            return Answer(VERSION, False, f"{persona.name} is {persona.status}")
        active = sum(1 for c in self.conversations.values() if c.persona == persona.id
                     and self._my_messages(c) < c.turns)
        if active >= persona.capacity:
            return Answer(VERSION, False, f"{persona.name} is at capacity ({persona.capacity} "
                          "conversation(s))")
        if not pl.CONVERSATION_ID.fullmatch(msg.conversation) or not 1 <= msg.turns <= 1000 \
                or not 2 <= len(msg.participants) <= 16 or msg.participants[0].peer != peer \
                or Participant(self.me, persona.id) not in msg.participants:
            return Answer(VERSION, False, "a malformed invitation")
        if msg.conversation in self.conversations:
            return Answer(VERSION, True)
        self._begin(Conversation(msg.conversation, persona.id, list(msg.participants),
                                 msg.turns, pl.Log(msg.conversation), time.time()))
        return Answer(VERSION, True)
