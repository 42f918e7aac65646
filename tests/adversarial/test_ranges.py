"""Every figure has a range: a number out of its range in a record or a wire message is
refused on decode with a reason (an offence), never an exception inside a service. The
fields docs/protocols.md listed as "no bound yet", each at and past its bound."""

from __future__ import annotations

import math

import msgspec
import pytest

from core.averaging import wire as avg
from core.dht import records as rec
from core.errors import PeerMisbehaviour
from core.swarm import wire as swarm
from core.training import state
from tests.test_dht_pure import NOW, _progress, _reject, make_record, new_village, signed

P = "12D3KooWpeer"


@pytest.mark.parametrize("fields,ok", [
    ({"epoch": rec.MAX_EPOCH}, True), ({"epoch": rec.MAX_EPOCH + 1}, False),
    ({"samples": rec.MAX_SAMPLES}, True), ({"samples": rec.MAX_SAMPLES + 1}, False),
    ({"seq": rec.MAX_SEQ}, True), ({"seq": rec.MAX_SEQ + 1}, False),
    ({"samples_per_second": math.nan}, False), ({"issued_at": math.nan}, False),
])
def test_progress_records_figures(fields: dict[str, object], ok: bool) -> None:
    key, pid = new_village()
    k = rec.progress_key("digits", pid)
    value = rec.sign_progress(_progress(pid, **fields), key.sign)
    if ok:
        rec.validate(k, value, NOW)
    else:
        _reject(k, value, "out of range")


def test_village_records_seq_and_times() -> None:
    key, pid = new_village()
    k = rec.village_key(pid)
    rec.validate(k, signed(key, make_record(key, pid, now=NOW, seq=rec.MAX_SEQ)), NOW)
    _reject(k, signed(key, make_record(key, pid, now=NOW, seq=rec.MAX_SEQ + 1)), "out of range")
    _reject(k, signed(key, make_record(key, pid, now=NOW, issued=math.nan)), "out of range")


@pytest.mark.parametrize("msg,ok", [
    (avg.Reject(avg.VERSION, "x" * 256, P), True),
    (avg.Reject(avg.VERSION, "x" * 257, ""), False),
    (avg.Reject(avg.VERSION, "", "x" * 129), False),
    (avg.SliceResult(avg.VERSION, False, [], 0.0, 0, "f32", reason="x" * 257), False),
    (avg.SliceResult(avg.VERSION, True, [P] * 65, 1.0, 1, "f32"), False),
    # what a reducer lists for each part: one digest and weight per member, 32-byte digests
    (avg.SliceResult(avg.VERSION, True, [P, "q"], 2.0, 1, "f32", digests=[b"d" * 32] * 2,
                     weights=[1.0, 1.0], center=b"c" * 32), True),
    (avg.SliceResult(avg.VERSION, True, [P, "q"], 2.0, 1, "f32", digests=[b"d" * 32],
                     weights=[1.0, 1.0]), False),
    (avg.SliceResult(avg.VERSION, True, [P], 1.0, 1, "f32", digests=[b"d" * 31],
                     weights=[1.0]), False),
    (avg.SliceResult(avg.VERSION, True, [P], 1.0, 1, "f32", digests=[b"d" * 32],
                     weights=[math.inf]), False),
    (avg.SliceResult(avg.VERSION, True, [P], 1.0, 1, "f32", digests=[b"d" * 32],
                     weights=[1.0], center=b"c"), False),
    (avg.PartAsk(avg.VERSION, "g", [0, 63]), True),
    (avg.PartAsk(avg.VERSION, "g", [64]), False),
    (avg.PartAsk(avg.VERSION, "g", [1, 1]), False),
    (avg.PartAsk(avg.VERSION, "g", []), False),
    (avg.PartAsk(avg.VERSION, "g" * 129, [0]), False),
])
def test_averaging_refusals_and_results(msg: avg.Control, ok: bool) -> None:
    data = avg.encode(msg)
    if ok:
        assert avg.decode(data, P) == msg
    else:
        with pytest.raises(PeerMisbehaviour, match="out of range|too long"):
            avg.decode(data, P)


@pytest.mark.parametrize("msg,ok", [
    (state.StateHeader(state.VERSION, "digits", rec.MAX_EPOCH, 10, "ab" * 32), True),
    (state.StateHeader(state.VERSION, "digits", rec.MAX_EPOCH + 1, 10, "ab" * 32), False),
    (state.StateHeader(state.VERSION, "digits", -1, 10, "ab" * 32), False),
    (state.StateHeader(state.VERSION, "digits", 1, 2**31 + 1, "ab" * 32), False),
    (state.StateHeader(state.VERSION, "digits", 1, 10, "ab"), False),
    (state.StateRefused(state.VERSION, "x" * 257), False),
])
def test_training_state_headers(msg: object, ok: bool) -> None:
    data = msgspec.msgpack.encode(msg)
    if ok:
        assert state._decode(data, P) == msg
    else:
        with pytest.raises(PeerMisbehaviour, match="out of range"):
            state._decode(data, P)


@pytest.mark.parametrize("fields,ok", [
    ({"queue": 999_999, "versions": [10**9] * 4096}, True),
    ({"queue": 1_000_000}, False), ({"queue": -1}, False),
    ({"versions": [10**9 + 1]}, False), ({"versions": [0] * 4097}, False),
    ({"error": "x" * 1025}, False),
])
def test_swarm_answers(fields: dict[str, object], ok: bool) -> None:
    data = swarm.encode(swarm.SwarmAnswer(swarm.VERSION, True, **fields))  # type: ignore[arg-type]
    if ok:
        swarm.decode_answer(data)
    else:
        with pytest.raises(swarm.BadMessage, match="out of range"):
            swarm.decode_answer(data)
