"""The messages of `/grove/persona/1.0.0` (one request, one answer per stream, msgpack
frames with size caps) and a conversation as this village holds it. Declared once here;
`core.personas.talk` runs the protocol."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from core.personas import log as pl

PROTOCOL = "/grove/persona/1.0.0"
VERSION = 1
MAX_FRAME = 8 << 20
MAX_BATCH = 64                 # entries in one Push or Entries answer
SINCE_BATCH = 512              # entries in one answer to Since (≤ 4 MB at the size cap)
PUSH_RATE, PUSH_BURST = 20.0, 200.0  # entries a second one village may push us


class Participant(msgspec.Struct, frozen=True):
    peer: str
    persona: str


def members(participants: Iterable[Participant]) -> frozenset[tuple[str, str]]:
    """Who may write in a conversation: its participants' (village, persona) pairs."""
    return frozenset((p.peer, p.persona) for p in participants)


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
    last_change: float = 0.0          # wall clock of the last entry added here
    looping: bool = False             # its loops are running
    stopped: bool = False             # the gardener stopped our persona in it
    partners_seen: set[str] = field(default_factory=set)
    outbox: dict[str, list[bytes]] = field(default_factory=dict)  # peer -> entries to push

    def others(self, me: str) -> list[Participant]:
        return [p for p in self.participants if p.peer != me]

    def said(self, peer: str) -> int:
        """Entries `peer` wrote here (each persona may write `turns`)."""
        return sum(1 for e in self.log.entries.values() if e.author == peer)

    def may_speak(self, peer: str, transcript: list[pl.Entry] | None = None) -> bool:
        """`peer`'s persona has turns left and someone to answer: the last word is another's
        (the first word is the starter's)."""
        t = self.log.transcript() if transcript is None else transcript
        if self.said(peer) >= self.turns:
            return False
        return t[-1].author != peer if t else self.participants[0].peer == peer

    def over(self) -> bool:
        """Nobody will say more, as this log stands: every honest persona has said its turns,
        or has the last word with nobody left to answer it (the others all done, as when they
        finished while its village was away)."""
        t = self.log.transcript()
        return not any(self.may_speak(p.peer, t) for p in self.participants
                       if p.peer not in self.log.forked_at)
