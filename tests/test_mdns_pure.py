"""mDNS adverts: what a neighbour's TXT record may say, and which interfaces mDNS uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.net.mdns import BadAdvert, decode_txt, encode_txt, interfaces_for

PID = "12D3KooWAGRzqEBrYx9xedNx4g4AH41dN6grudbjMUSDa4zMEp2h"


def _props(txt: dict[str, str]) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in txt.items()}


def test_an_advert_round_trips_and_keeps_only_dialable_tcp_addresses() -> None:
    txt = encode_txt(PID, ["/ip4/192.168.1.5/tcp/4001", "/ip4/10.0.0.2/tcp/4001"])
    peer = decode_txt(_props(txt))
    assert peer.peer_id == PID
    assert peer.addrs == ("/ip4/192.168.1.5/tcp/4001", "/ip4/10.0.0.2/tcp/4001")
    mixed = _props({"v": "1", "id": PID, "a0": "/ip4/999.1.1.1/tcp/1", "a1": "/dns4/x/tcp/1",
                    "a2": "/ip4/192.168.1.5/udp/1", "a3": "/ip4/192.168.1.6/tcp/4001"})
    assert decode_txt(mixed).addrs == ("/ip4/192.168.1.6/tcp/4001",)


@pytest.mark.parametrize("props, reason", [
    ({b"id": PID.encode(), b"a0": b"/ip4/1.2.3.4/tcp/1"}, "version"),
    ({b"v": b"2", b"id": PID.encode(), b"a0": b"/ip4/1.2.3.4/tcp/1"}, "version"),
    ({b"v": b"1", b"id": b"short", b"a0": b"/ip4/1.2.3.4/tcp/1"}, "peer id"),
    ({b"v": b"1", b"id": PID.encode() + b"/../", b"a0": b"/ip4/1.2.3.4/tcp/1"}, "peer id"),
    ({b"v": b"1", b"id": PID.encode()}, "no dialable"),
    ({b"v": b"1", b"id": PID.encode(), b"a0": b"x" * 300}, "longer"),
    ({b"v": b"1", b"id": "é".encode() * 30, b"a0": b"/ip4/1.2.3.4/tcp/1"}, "ASCII"),
])
def test_a_hostile_advert_is_refused_with_a_reason(props: dict[bytes, bytes | None],
                                                  reason: str) -> None:
    with pytest.raises(BadAdvert, match=reason):
        decode_txt(props)


@given(st.dictionaries(st.binary(max_size=8), st.one_of(st.none(), st.binary(max_size=300)),
                       max_size=8))
def test_random_txt_records_never_escape_as_anything_but_badadvert(
        props: dict[bytes, bytes | None]) -> None:
    try:
        decode_txt(props)
    except BadAdvert:
        pass


def test_interfaces_follow_the_listen_address() -> None:
    local = ["127.0.0.1", "192.168.1.5", "10.0.0.2"]
    assert interfaces_for("127.0.0.1", local) == []  # tests and benchmarks: no mDNS
    assert interfaces_for("0.0.0.0", local) == ["192.168.1.5", "10.0.0.2"]
    assert interfaces_for("192.168.1.5", local) == ["192.168.1.5"]
