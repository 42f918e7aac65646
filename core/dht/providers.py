"""Signed provider announcements: a directory answer carries only provider ids that signed for
it. Pure.

A provider signs `PROVIDER_DOMAIN + dir key + peer id + expires_at` (a float64, big-endian)
with its village key; the peer id embeds the public key, so anyone checks the proof with
nothing but the proof. The proofs travel in the standard Kademlia message's `record` field
(`record.key` = the directory key, `record.value` = msgpack `[ProviderProof]`), which
ADD_PROVIDER and GET_PROVIDERS leave unused in the standard: other implementations ignore it.

A holder takes an ADD_PROVIDER only with a valid proof by its sender; a reader keeps only the
providers in an answer that come with a valid proof, and a holder that lists an id without
one inserted it (a misbehaviour: no correct holder does). So a holder can hide providers,
never invent them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from functools import lru_cache

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.dht.keyspace import ed25519_public_key

PROVIDER_DOMAIN = b"grove-provider:v1\x00"
MAX_PROOFS = 40  # kad.MAX_PEERS_IN_MESSAGE
MAX_PROOF_BYTES = 8 * 1024
SIGNATURE_BYTES = 64


class ProviderProof(msgspec.Struct, frozen=True, array_like=True):
    peer_id: str
    expires_at: float
    signature: bytes


class BadProof(Exception):
    pass


def _message(dir_key: bytes, peer_id: str, expires_at: float) -> bytes:
    return PROVIDER_DOMAIN + dir_key + peer_id.encode() + struct.pack(">d", expires_at)


def sign_provider(dir_key: bytes, peer_id: str, expires_at: float,
                  sign: Callable[[bytes], bytes]) -> ProviderProof:
    return ProviderProof(peer_id, expires_at, sign(_message(dir_key, peer_id, expires_at)))


@lru_cache(maxsize=16384)  # the same proofs come back in every answer for a key
def _verified(dir_key: bytes, proof: ProviderProof) -> bool:
    public = ed25519_public_key(proof.peer_id)
    if public is None or len(proof.signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            proof.signature, _message(dir_key, proof.peer_id, proof.expires_at))
    except (InvalidSignature, ValueError):
        return False
    return True


def check(dir_key: bytes, proof: ProviderProof, now: float, max_ttl: float) -> None:
    """Raise BadProof unless `proof` is a live signature by its peer for `dir_key`."""
    if not (now < proof.expires_at <= now + max_ttl):
        raise BadProof(f"provider expiry {proof.expires_at!r} out of range")
    if not _verified(dir_key, proof):
        raise BadProof(f"no valid signature by {proof.peer_id[:16]} for this key")


def proof_of(sender: str, data: bytes) -> ProviderProof:
    """The sender's own proof among the encoded `data` (an ADD_PROVIDER's)."""
    proof = next((p for p in decode(data) if p.peer_id == sender), None)
    if proof is None:
        raise BadProof("an announcement without its sender's signature")
    return proof


def check_listed(dir_key: bytes, listed: Iterable[str], data: bytes, now: float,
                 max_ttl: float) -> None:
    """Raise BadProof unless every id in `listed` has a valid proof in the encoded `data`."""
    signed = {p.peer_id: p for p in decode(data)}
    for peer_id in listed:
        proof = signed.get(peer_id)
        if proof is None:
            raise BadProof(f"lists {peer_id[:16]} without a signature")
        check(dir_key, proof, now, max_ttl)


def encode(proofs: Iterable[ProviderProof]) -> bytes:
    return msgspec.msgpack.encode(list(proofs)[:MAX_PROOFS])


def decode(data: bytes) -> list[ProviderProof]:
    if not data:
        return []
    if len(data) > MAX_PROOF_BYTES:
        raise BadProof(f"{len(data)} bytes of provider proofs (at most {MAX_PROOF_BYTES})")
    try:
        proofs = msgspec.msgpack.decode(data, type=list[ProviderProof])
    except msgspec.DecodeError as e:
        raise BadProof(f"malformed provider proofs: {e}") from None
    if len(proofs) > MAX_PROOFS:
        raise BadProof(f"{len(proofs)} provider proofs (at most {MAX_PROOFS})")
    return proofs
