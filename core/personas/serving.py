"""Serving `/grove/persona/1.0.0`: one request per stream, answered from the
conversations this village holds, invitations checked against the persona's availability
and capacity, pushes rate-limited per village. A mixin of `ConversationService`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from core.errors import NetworkError, PeerMisbehaviour
from core.net.framing import StreamClosed, read_frame, write_frame
from core.personas import log as pl
from core.personas.messages import (
    MAX_BATCH,
    MAX_FRAME,
    PUSH_BURST,
    PUSH_RATE,
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
    _requests,
    members,
)
from core.ratelimit import PeerRates, TokenBucket

INVITES_PER_SECOND = 1 / 60      # invitations one village may send us, after a burst
INVITES_BURST = 5.0
MAX_CONVERSATIONS_PER_PEER = 50  # conversations another village started that we keep

if TYPE_CHECKING:
    from core.ports import Personas, ServiceContext

log = logging.getLogger(__name__)


class ConversationServer:
    ctx: ServiceContext
    personas: Personas
    conversations: dict[str, Conversation]
    _buckets: dict[str, TokenBucket]
    _invites: PeerRates
    _nursery: trio.Nursery | None
    bytes_in: int

    @property
    def me(self) -> str:
        return self.ctx.peer_id

    def _begin(self, c: Conversation) -> None:
        raise NotImplementedError

    def _my_messages(self, c: Conversation) -> int:
        raise NotImplementedError

    async def _sync_with(self, c: Conversation, peer: str) -> None:
        raise NotImplementedError

    async def _take(self, c: Conversation, wires: list[bytes], peer: str) -> None:
        raise NotImplementedError

    def _take_final(self, c: Conversation, sc: pl.SignedCheckpoint, peer: str) -> None:
        raise NotImplementedError

    async def _serve(self, stream: Any, peer: str) -> None:
        data = await read_frame(stream, max_size=MAX_FRAME, timeout=20, peer=peer)
        self.bytes_in += len(data)
        try:
            msg = _requests.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.ctx.penalise(peer, f"conversation: malformed: {e}")
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
                self.ctx.penalise(peer, "conversation: a flood of appends")
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
            return Answer(VERSION, True, sig=self.ctx.sign(
                pl.checkpoint_body(msg.checkpoint)))
        self._take_final(c, msg.checkpoint, peer)
        return Answer(VERSION, True)

    async def _sync_quietly(self, c: Conversation, peer: str) -> None:
        try:
            await self._sync_with(c, peer)
        except (NetworkError, PeerMisbehaviour, trio.TooSlowError, StreamClosed) as e:
            log.debug("conversation sync with %s failed: %s", peer[-8:], e)

    def _known_peers(self) -> set[str]:
        """Villages in conversations this village started (its gardener invited them)."""
        return {p.peer for c in self.conversations.values() if c.participants
                and c.participants[0].peer == self.me for p in c.participants}

    def _invited(self, msg: Invite, peer: str) -> Answer:
        persona = next((p for p in self.personas.current if p.id == msg.to_persona), None)
        if persona is None:
            return Answer(VERSION, False, f"this village hosts no persona {msg.to_persona!r}")
        if persona.availability == "closed":
            return Answer(VERSION, False, f"{persona.name} is closed to conversations")
        if not self._invites.take(peer, self.ctx.clock.mono()):
            self.ctx.penalise(peer, "conversation: invitations past the rate limit")
            return Answer(VERSION, False, f"too many invitations: at most "
                          f"{INVITES_BURST:g}, then one a minute")
        if persona.availability == "invitation" and peer not in self._known_peers():
            return Answer(VERSION, False, f"{persona.name} talks only with villages this "
                          "village has invited to a conversation (invitation only)")
        if sum(1 for c in self.conversations.values() if c.participants and
               c.participants[0].peer == peer) >= MAX_CONVERSATIONS_PER_PEER:
            return Answer(VERSION, False, f"this village keeps at most "
                          f"{MAX_CONVERSATIONS_PER_PEER} conversations your village started")
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
                                 msg.turns, pl.Log(msg.conversation, members(msg.participants)),
                                 self.ctx.clock.wall()))
        return Answer(VERSION, True)
