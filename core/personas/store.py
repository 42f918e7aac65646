"""The conversation store: one SQLite file per village (WAL, synchronous=FULL) holding each
conversation's participants, its signed entries and its last final checkpoint, so a village
that was killed reloads its logs and catches up. The protocol is `core.personas.talk`."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from core.personas import log as pl

if TYPE_CHECKING:
    from core.personas.messages import Conversation

log = logging.getLogger(__name__)


class ConversationStore:
    """SQLite (WAL, synchronous=FULL); one connection, used from worker threads in turn."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, "
                         "persona TEXT NOT NULL, participants TEXT NOT NULL, turns INTEGER "
                         "NOT NULL, created_at REAL NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS entries (conversation TEXT NOT NULL, "
                         "hash TEXT NOT NULL, wire BLOB NOT NULL, PRIMARY KEY (conversation, "
                         "hash))")
        self._db.execute("CREATE TABLE IF NOT EXISTS finals (conversation TEXT PRIMARY KEY, "
                         "wire BLOB NOT NULL)")
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(conversations)")}
        if "stopped" not in columns:  # a store from before stopping existed
            self._db.execute("ALTER TABLE conversations ADD COLUMN stopped INTEGER NOT NULL "
                             "DEFAULT 0")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_conversation(self, c: Conversation) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO conversations (id, persona, participants, "
                             "turns, created_at) VALUES (?,?,?,?,?)",
                             (c.id, c.persona, json.dumps([[p.peer, p.persona]
                                                           for p in c.participants]),
                              c.turns, c.created_at))

    def set_stopped(self, conversation: str, turns: int) -> None:
        """Our persona says no more than `turns` messages in it (it stopped there)."""
        with self._lock:
            self._db.execute("UPDATE conversations SET turns = ?, stopped = 1 WHERE id = ?",
                             (turns, conversation))

    def add_entries(self, conversation: str, items: list[tuple[str, bytes]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO entries VALUES (?,?,?)",
                                 [(conversation, h, w) for h, w in items])
            self._db.execute("COMMIT")

    def set_final(self, conversation: str, sc: pl.SignedCheckpoint) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO finals VALUES (?,?)",
                             (conversation, msgspec.msgpack.encode(sc)))

    def load(self) -> list[Conversation]:
        from core.personas.messages import Conversation, Participant, members

        out = []
        with self._lock:
            rows = self._db.execute("SELECT id, persona, participants, turns, created_at, "
                                    "stopped FROM conversations").fetchall()
            for cid, persona, parts, turns, created, stopped in rows:
                ps = [Participant(p, q) for p, q in json.loads(parts)]
                lg = pl.Log(cid, members(ps))
                wires = [w for (w,) in self._db.execute(
                    "SELECT wire FROM entries WHERE conversation=?", (cid,))]
                for w in wires:
                    try:
                        lg.add(w)
                    except pl.EntryRejected:
                        pass  # waits for a parent that will follow from the same table
                final = self._db.execute("SELECT wire FROM finals WHERE conversation=?",
                                         (cid,)).fetchone()
                if final:
                    sc = msgspec.msgpack.decode(final[0], type=pl.SignedCheckpoint)
                    try:
                        lg.accept_final(sc, [p.peer for p in ps])
                    except pl.EntryRejected as e:
                        log.warning("conversation %s: stored checkpoint not taken: %s", cid, e)
                out.append(Conversation(cid, persona, ps, turns, lg, created,
                                        stopped=bool(stopped)))
        return out
