"""Signed envelopes: msgpack `{body, sig}` where `sig` is a village's Ed25519 signature over a
domain tag + body, and the body names who signed it (a peer id embeds its public key, so an
envelope is checked with nothing but itself). Used by work commitments and stake proofs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from core.ledger.receipts import peer_public_key

T = TypeVar("T")


class Envelope(msgspec.Struct, frozen=True):
    body: bytes
    sig: bytes


def seal(body: msgspec.Struct, domain: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """The envelope's bytes: `body` encoded and signed by `sign(bytes) -> bytes`."""
    raw = msgspec.msgpack.encode(body)
    return msgspec.msgpack.encode(Envelope(raw, sign(domain + raw)))


def open_envelope(data: bytes, body_type: type[T], *, limit: int, what: str,
                  error: type[ValueError]) -> tuple[Envelope, T]:
    """The envelope and its decoded body; `error` saying why (too large, malformed)."""
    if len(data) > limit:
        raise error(f"a {what} of {len(data)} bytes (at most {limit})")
    try:
        env = msgspec.msgpack.decode(data, type=Envelope)
        return env, msgspec.msgpack.decode(env.body, type=body_type)
    except msgspec.DecodeError as e:
        raise error(f"malformed {what}: {e}") from None


def verify(env: Envelope, domain: bytes, signer: str, who: str,
           error: type[ValueError]) -> None:
    """`error` unless `signer`'s key signed the envelope."""
    public = peer_public_key(signer)
    if public is None:
        raise error(f"the {who} is not an Ed25519 peer id")
    try:
        public.verify(env.sig, domain + env.body)
    except Exception:
        raise error(f"the {who}'s signature is not valid") from None
