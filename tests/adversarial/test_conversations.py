"""Conversations only from participants: an entry signed by a village that is not in the
conversation, or by a participant's village under another persona, is refused by the log
(so it never reaches a persona's backend or the store); a participant's entry is taken."""

from __future__ import annotations

import pytest

from core.personas import log as pl
from core.personas.messages import Participant, members
from tests.test_persona_log import CONV, IDS, KEYS, entry


def test_entries_from_outside_the_conversation_are_refused() -> None:
    log = pl.Log(CONV, members([Participant(IDS[0], "p0"), Participant(IDS[1], "p1")]))
    assert log.add(entry(log, 0, "hello"))  # a participant
    with pytest.raises(pl.EntryRejected, match="not a participant"):
        log.add(entry(log, 2, "let me in"))  # validly signed, by a stranger
    masquerade = pl.sign_entry(pl.Entry(pl.VERSION, CONV, IDS[1], "p9", 1, log.heads(), 0.0,
                                        "message", "another persona"), KEYS[1].sign)
    with pytest.raises(pl.EntryRejected, match="not a participant"):  # its own key, but
        # a persona that is not in this conversation
        log.add(masquerade)
    assert [e.author for e in log.entries.values()] == [IDS[0]]
    assert not log.pending  # nothing held aside either: refused before the DAG sees it
    # a stranger's entry cannot be smuggled in as a parent-waiting one
    with pytest.raises(pl.EntryRejected, match="not a participant"):
        log.add(entry(log, 3, "later", parents=["ab" * 32]))
    assert not log.pending


def test_a_conversation_and_an_equivocator_are_bounded(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """Entries per conversation and forks per author have caps: past them an entry is
    refused with the reason (the sender's offence), and what is held stays."""
    log = pl.Log(CONV, members([Participant(IDS[0], "p0"), Participant(IDS[1], "p1")]))
    first = entry(log, 1, "one")
    log.add(first)
    for i in range(pl.MAX_FORKS):  # the same seq, other words: forks, kept as evidence
        log.add(entry(log, 1, f"fork {i}", seq=1, parents=[]))
    assert len(log.entries) == pl.MAX_FORKS + 1 and IDS[1] in log.forked_at
    with pytest.raises(pl.EntryRejected, match="forked entries by one author"):
        log.add(entry(log, 1, "one fork too many", seq=1, parents=[]))
    monkeypatch.setattr(pl, "MAX_ENTRIES", len(log.entries) + 2)
    log.add(entry(log, 0, "a"))
    log.add(entry(log, 0, "b"))
    with pytest.raises(pl.EntryRejected, match="the conversation is full"):
        log.add(entry(log, 0, "c"))
    assert len(log.entries) == pl.MAX_FORKS + 3
