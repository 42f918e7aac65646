"""Interaction logs: a conversation between personas of several villages, as a signed DAG.

Pure (crypto, no I/O). Each entry is signed by its author's village key and names, by hash,
the heads its author had seen (its parents), so concurrent appends form a small DAG. Every
participant that holds the same set of entries derives the same transcript:

- **Order**: the entries inside the last final checkpoint come first, in their checkpointed
  order; the rest follow in causal order - by depth (1 + the deepest parent), ties broken by the
  entry's hash (hex, ascending). Depth respects causality (a parent is always shallower), the
  hash is the same everywhere, so the order is deterministic.
- **Checkpoints**: a proposer names heads; the closure of those heads (every entry they
  descend from), in order, gives an entry count and a Merkle root. Each participant co-signs
  only if its own log gives the same count and root for the same heads; with every
  participant's signature the checkpoint is final, and that prefix of the transcript can never
  change again (a later entry can only come after it).
- **Equivocation**: an author that signs two different entries with the same sequence number
  has forked its own log. Both entries stay in the DAG (dropping either would let honest
  villages diverge, depending on which they saw first), the author is recorded, and from its
  forked sequence number on its entries are left out of the transcript and its signature out of
  checkpoints: the conversation continues without it.

Refused with a reason: unsigned or forged entries, malformed or oversized ones, entries whose
parents are unknown (kept aside until they arrive, up to a bound), too many entries by one
author, a checkpoint that does not match the log.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.dht.keyspace import ed25519_public_key

VERSION = 1
DOMAIN = b"grove-persona-entry:v1\x00"
CHECKPOINT_DOMAIN = b"grove-persona-checkpoint:v1\x00"
MAX_ENTRY_BYTES = 8192
MAX_TEXT = 4000
MAX_PARENTS = 16
MAX_PER_AUTHOR = 100_000
MAX_ENTRIES = 20_000  # entries one conversation holds (a conversation of 1,000 turns each
                      # for 16 personas would need 16,000 messages)
MAX_FORKS = 8         # forked entries kept per equivocating author (evidence enough)
MAX_PENDING = 16384  # entries held aside for their parents (≤ 128 MB at the size cap)
KINDS = ("message", "join", "leave")
HEX64 = re.compile(r"[0-9a-f]{64}")
CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")


class Entry(msgspec.Struct, frozen=True):
    v: int
    conversation: str
    author: str          # the author's village (peer id)
    persona: str         # the author's persona id
    seq: int             # the author's entries in this conversation, from 1
    parents: list[str]   # hashes of the heads the author had seen (sorted)
    at: float
    kind: str
    text: str


class SignedEntry(msgspec.Struct, frozen=True):
    body: bytes
    sig: bytes


class Checkpoint(msgspec.Struct, frozen=True):
    conversation: str
    heads: list[str]     # sorted
    count: int           # entries in the closure of the heads
    root: str            # Merkle root of their hashes, in order


class SignedCheckpoint(msgspec.Struct, frozen=True):
    checkpoint: Checkpoint
    signatures: dict[str, bytes]  # village -> signature over CHECKPOINT_DOMAIN + body


class EntryRejected(ValueError):
    """An entry (or checkpoint) that is not taken; `str()` says why."""


def entry_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign_entry(e: Entry, sign: Callable[[bytes], bytes]) -> bytes:
    body = msgspec.msgpack.encode(e)
    return msgspec.msgpack.encode(SignedEntry(body, sign(DOMAIN + body)))


def _public(peer: str) -> Ed25519PublicKey:
    raw = ed25519_public_key(peer)
    if raw is None:
        raise EntryRejected(f"{peer[:16]!r} is not an Ed25519 peer id")
    return Ed25519PublicKey.from_public_bytes(raw)


def check_entry(wire: bytes, conversation: str) -> tuple[str, Entry]:
    """(hash, entry) if it is well-formed and signed by its author; EntryRejected if not."""
    if len(wire) > MAX_ENTRY_BYTES:
        raise EntryRejected(f"an entry of {len(wire)} bytes (at most {MAX_ENTRY_BYTES})")
    try:
        s = msgspec.msgpack.decode(wire, type=SignedEntry)
        e = msgspec.msgpack.decode(s.body, type=Entry)
    except msgspec.DecodeError as err:
        raise EntryRejected(f"malformed entry: {err}") from None
    if e.v != VERSION:
        raise EntryRejected(f"entry version {e.v} is not supported")
    if e.conversation != conversation:
        raise EntryRejected("an entry of another conversation")
    if e.kind not in KINDS or len(e.text) > MAX_TEXT or not 1 <= e.seq <= MAX_PER_AUTHOR:
        raise EntryRejected("entry kind, text or sequence out of range")
    if len(e.parents) > MAX_PARENTS or e.parents != sorted(set(e.parents)) or not all(
            HEX64.fullmatch(p) for p in e.parents):
        raise EntryRejected("parents must be at most 16 distinct sorted hashes")
    try:
        _public(e.author).verify(s.sig, DOMAIN + s.body)
    except (InvalidSignature, ValueError):
        raise EntryRejected("unsigned or forged: the author's signature is not valid") from None
    return entry_hash(s.body), e


def merkle_root(hashes: list[str]) -> str:
    level = [bytes.fromhex(h) for h in hashes] or [b""]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [hashlib.sha256(level[i] + level[i + 1]).digest()
                 for i in range(0, len(level), 2)]
    return hashlib.sha256(b"root" + level[0]).hexdigest()


def checkpoint_body(c: Checkpoint) -> bytes:
    return CHECKPOINT_DOMAIN + msgspec.msgpack.encode(c)


@dataclass
class Log:
    conversation: str
    # (village, persona) pairs that may write here; None: anyone who signs (tests of the DAG)
    participants: frozenset[tuple[str, str]] | None = None
    entries: dict[str, Entry] = field(default_factory=dict)
    wires: dict[str, bytes] = field(default_factory=dict)
    depth: dict[str, int] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    by_author_seq: dict[tuple[str, int], str] = field(default_factory=dict)
    forked_at: dict[str, int] = field(default_factory=dict)  # equivocator -> first forked seq
    pending: dict[str, tuple[Entry, bytes]] = field(default_factory=dict)  # waiting for parents
    waiting_on: dict[str, set[str]] = field(default_factory=dict)  # missing parent -> waiters
    final: SignedCheckpoint | None = None
    _final_order: list[str] = field(default_factory=list)
    _heads: set[str] = field(default_factory=set)
    _max_seq: dict[str, int] = field(default_factory=dict)
    _seqs: dict[str, set[int]] = field(default_factory=dict)
    _contig: dict[str, int] = field(default_factory=dict)
    _forks: dict[str, int] = field(default_factory=dict)  # forked entries per author

    # -- adding ---------------------------------------------------------------------------
    def add(self, wire: bytes) -> list[str]:
        """Take an entry; returns the hashes newly added (it, and entries kept aside that it
        completed). EntryRejected says why it is not taken; one with unknown parents is kept
        aside (EntryRejected "waits for parents") until they arrive."""
        h, e = check_entry(wire, self.conversation)
        if self.participants is not None and (e.author, e.persona) not in self.participants:
            raise EntryRejected(f"an entry by {e.author[-8:]}/{e.persona[:16]}, who is not a "
                                "participant of this conversation")
        if h in self.entries or h in self.pending:
            return []
        if len(self.entries) + len(self.pending) >= MAX_ENTRIES:
            raise EntryRejected(f"the conversation is full ({MAX_ENTRIES} entries)")
        other = self.by_author_seq.get((e.author, e.seq))
        if other is not None and other != h and self._forks.get(e.author, 0) >= MAX_FORKS:
            raise EntryRejected(f"more than {MAX_FORKS} forked entries by one author")
        missing = [p for p in e.parents if p not in self.entries]
        if missing:
            if len(self.pending) >= MAX_PENDING:
                raise EntryRejected("too many entries waiting for their parents")
            self.pending[h] = (e, wire)
            for m in missing:
                self.waiting_on.setdefault(m, set()).add(h)
            raise EntryRejected(f"waits for parents it cites that are unknown here: "
                                f"{', '.join(m[:12] for m in missing)}")
        added: list[str] = []
        ready = [(h, e, wire)]
        while ready:  # it, then whatever was waiting only for it, and so on
            h, e, wire = ready.pop()
            added.append(self._insert(h, e, wire))
            for child in sorted(self.waiting_on.pop(h, ())):
                ce, cw = self.pending[child]
                if all(p in self.entries for p in ce.parents):
                    del self.pending[child]
                    ready.append((child, ce, cw))
        return added

    def _insert(self, h: str, e: Entry, wire: bytes) -> str:
        key = (e.author, e.seq)
        other = self.by_author_seq.get(key)
        if other is not None and other != h:  # a fork: keep both, record the author
            self.forked_at[e.author] = min(self.forked_at.get(e.author, e.seq), e.seq)
            self._forks[e.author] = self._forks.get(e.author, 0) + 1
            key = (e.author, -len(self.entries))  # keep the first under its real key
        self.by_author_seq.setdefault(key, h)
        self.entries[h] = e
        self.wires[h] = wire
        self.depth[h] = 1 + max((self.depth[p] for p in e.parents), default=0)
        for p in e.parents:
            self.children.setdefault(p, set()).add(h)
            self._heads.discard(p)
        if not self.children.get(h):
            self._heads.add(h)
        self._max_seq[e.author] = max(self._max_seq.get(e.author, 0), e.seq)
        seqs = self._seqs.setdefault(e.author, set())
        seqs.add(e.seq)
        k = self._contig.get(e.author, 0)
        while k + 1 in seqs:
            k += 1
        self._contig[e.author] = k
        return h

    def missing_parents(self) -> set[str]:
        """Hashes cited by entries kept aside, that we do not hold (to fetch)."""
        return {p for p in self.waiting_on if p not in self.entries and p not in self.pending}

    # -- reading ------------------------------------------------------------------------------
    def heads(self) -> list[str]:
        return sorted(self._heads)

    def closure(self, heads: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = [h for h in heads if h in self.entries]
        while stack:
            h = stack.pop()
            if h in seen:
                continue
            seen.add(h)
            stack.extend(self.entries[h].parents)
        return seen

    def order(self) -> list[str]:
        """Every entry, in the transcript's order (see the module's docstring)."""
        done = set(self._final_order)
        rest = sorted((h for h in self.entries if h not in done),
                      key=lambda h: (self.depth[h], h))
        return self._final_order + rest

    def excluded(self, h: str) -> bool:
        """An equivocator's entry from its fork on: not part of the conversation."""
        e = self.entries[h]
        at = self.forked_at.get(e.author)
        return at is not None and e.seq >= at

    def transcript(self) -> list[Entry]:
        return [self.entries[h] for h in self.order() if not self.excluded(h)]

    def have(self) -> dict[str, int]:
        """Per author, the highest sequence number up to which we hold all its entries (a
        version vector: what a peer need not send us)."""
        return dict(self._contig)

    def after(self, have: dict[str, int], limit: int) -> list[str]:
        """Entries beyond a peer's version vector, parents first."""
        out = []
        for h in self.order():
            e = self.entries[h]
            if e.seq > have.get(e.author, 0):
                out.append(h)
                if len(out) >= limit:
                    break
        return out

    def next_seq(self, author: str) -> int:
        return 1 + self._max_seq.get(author, 0)

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint_for(self, heads: list[str]) -> Checkpoint:
        """The checkpoint of the closure of `heads`; EntryRejected if we lack any of it."""
        missing = [h for h in heads if h not in self.entries]
        if missing:
            raise EntryRejected(f"heads unknown here: {', '.join(m[:12] for m in missing)}")
        inside = self.closure(heads)
        ordered = [h for h in self.order() if h in inside]
        return Checkpoint(self.conversation, sorted(heads), len(ordered),
                          merkle_root(ordered))

    def check_checkpoint(self, c: Checkpoint) -> None:
        """EntryRejected unless our log gives the same count and root for its heads."""
        if c.conversation != self.conversation:
            raise EntryRejected("a checkpoint of another conversation")
        mine = self.checkpoint_for(c.heads)
        if (mine.count, mine.root) != (c.count, c.root):
            raise EntryRejected(f"the checkpoint does not match the log: {c.count} entries "
                                f"and root {c.root[:12]} proposed, {mine.count} and "
                                f"{mine.root[:12]} here")

    def accept_final(self, sc: SignedCheckpoint, participants: Iterable[str]) -> None:
        """Make `sc` final if it matches our log and carries a valid signature of every
        participant that has not equivocated; EntryRejected says why not."""
        c = sc.checkpoint
        self.check_checkpoint(c)
        need = {p for p in participants if p not in self.forked_at}
        for p in need:
            sig = sc.signatures.get(p)
            if sig is None:
                raise EntryRejected(f"the checkpoint lacks {p[-8:]}'s signature")
            try:
                _public(p).verify(sig, checkpoint_body(c))
            except (InvalidSignature, ValueError):
                raise EntryRejected(f"{p[-8:]}'s signature on the checkpoint is not valid"
                                    ) from None
        if self.final is not None and self.final.checkpoint.count >= c.count:
            return  # we hold this one, or a later one
        if self.final is not None and not set(self._final_order) <= self.closure(c.heads):
            raise EntryRejected("the checkpoint does not extend the last final one")
        inside = self.closure(c.heads)
        self._final_order = [h for h in self.order() if h in inside]
        self.final = sc
