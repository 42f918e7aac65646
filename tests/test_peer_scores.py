"""The misbehaviour book (core.peer_scores): scores decay, a peer past the threshold is refused
for a period that doubles each time, unanswered requests weigh little, and the book stays
bounded. Pure: every call takes `now`."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.peer_scores import FIRST_REFUSAL, MINOR, SEVERE, THRESHOLD, PeerBook, weight_of


def test_five_offences_refuse_a_peer_for_a_minute() -> None:
    book = PeerBook()
    for _ in range(4):
        assert book.penalise("p", "answered a Join with Part", now=4.0) is None
    assert not book.is_refused("p", 4.0)
    until = book.penalise("p", "answered a Join with Part", now=4.0)
    assert until == pytest.approx(4.0 + FIRST_REFUSAL)
    assert book.is_refused("p", 5.0) and book.refused_until("p", 5.0) == until
    assert not book.is_refused("p", until + 0.001)  # the refusal ends
    assert book.offences("p") == 5
    assert not book.is_refused("q", 5.0)  # nobody else is touched


def test_each_refusal_lasts_twice_the_one_before_up_to_a_day() -> None:
    book = PeerBook()
    now, lengths = 0.0, []
    for _ in range(14):
        until = None
        while until is None:
            until = book.penalise("p", "bad signature", now)
            now += 0.001
        lengths.append(round(until - (now - 0.001)))
        now = until + 1
    assert lengths[:4] == [60, 120, 240, 480]
    assert max(lengths) == 86_400 and lengths[-1] == 86_400


def test_old_offences_fade() -> None:
    book = PeerBook(half_life=600)
    for _ in range(4):
        book.penalise("p", "answered a Join with Part", now=3.0)
    assert book.score("p", 3.0) == pytest.approx(4.0)
    assert book.score("p", 603.0) == pytest.approx(2.0)
    # four offences an hour apart never add up to a refusal
    slow = PeerBook()
    assert all(slow.penalise("p", "answered a Join with Part", now=3600.0 * i) is None
               for i in range(50))


def test_unanswered_requests_weigh_a_tenth() -> None:
    assert weight_of("no DHT answer within 15 s") == MINOR
    assert weight_of("Opening /grove/kad/1.0.0 timed out") == MINOR
    # a part that comes after its deadline: a loaded computer looks the same
    assert weight_of("averaging: silent for 1.2 s") == MINOR
    assert weight_of("an Assembled message that does not match the Join") == 1.0


def test_bytes_no_correct_village_sends_refuse_it_at_once() -> None:
    assert weight_of("malformed DHT message: truncated") == SEVERE
    assert weight_of("DHT frame of 104857600 bytes exceeds 8192") == SEVERE
    book = PeerBook()
    assert book.penalise("p", "record with a bad signature", now=1.0) == 1.0 + FIRST_REFUSAL
    assert book.penalise("q", "stream ended inside a frame", now=1.0) is None  # a cut line
    book = PeerBook()
    needed = math.ceil(THRESHOLD / MINOR - 1e-9)
    refused_at = next(i for i in range(200)
                      if book.penalise("p", "no DHT answer within 15 s", now=0.0))
    assert needed - 1 <= refused_at <= needed  # the 50th (float sums of 0.1 may need one more)


def test_offences_while_refused_do_not_stack_refusals() -> None:
    book = PeerBook()
    for _ in range(5):
        until = book.penalise("p", "x", 0.0)
    for _ in range(100):
        assert book.penalise("p", "x", 1.0) is None
    assert book.refused_until("p", 1.0) == until


def test_the_book_is_bounded_and_keeps_refused_peers() -> None:
    book = PeerBook(max_peers=10)
    for _ in range(5):
        book.penalise("bad", "x", 0.0)
    for i in range(100):
        book.penalise(f"p{i}", "x", 1.0)
    assert len(book) == 10
    assert book.is_refused("bad", 2.0)


def test_bad_weights_and_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="weight"):
        PeerBook().penalise("p", "x", 0.0, weight=math.nan)
    with pytest.raises(ValueError, match="weight"):
        PeerBook().penalise("p", "x", 0.0, weight=-1)
    with pytest.raises(ValueError):
        PeerBook(threshold=0)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 10_000),
                          st.floats(0, 3)), max_size=200))
def test_scores_never_go_negative_and_refusals_are_bounded(events: list) -> None:
    book = PeerBook()
    now = 0.0
    for peer, dt, w in events:
        now += dt
        until = book.penalise(peer, "x", now, weight=w)
        assert book.score(peer, now) >= 0
        if until is not None:
            assert FIRST_REFUSAL - 1e-6 <= until - now <= 86_400 + 1e-6  # (float sums)
            assert book.is_refused(peer, now)
