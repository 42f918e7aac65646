"""Kademlia's keyspace: 256-bit SHA-256 of a key, XOR distance, bucket index. Pure."""

from __future__ import annotations

import functools
import hashlib

import base58

BITS = 256
ED25519_PEER_PREFIX = b"\x00\x24\x08\x01\x12\x20"  # identity multihash of an Ed25519 pubkey


def kad_id(key: bytes) -> int:
    return int.from_bytes(hashlib.sha256(key).digest(), "big")


def peer_bytes(peer_id: str) -> bytes:
    return base58.b58decode(peer_id)


@functools.lru_cache(maxsize=65536)  # asked for every contact of every lookup: hash once
def peer_kad_id(peer_id: str) -> int:
    return kad_id(peer_bytes(peer_id))


def distance(a: int, b: int) -> int:
    return a ^ b


def bucket_index(own: int, other: int) -> int:
    """0..255: the index of the highest differing bit; -1 for the same id."""
    return (own ^ other).bit_length() - 1


def ed25519_public_key(peer_id: str) -> bytes | None:
    """The Ed25519 public key a peer id embeds, or None if it embeds none."""
    try:
        raw = base58.b58decode(peer_id)
    except ValueError:
        return None
    if len(raw) != 38 or not raw.startswith(ED25519_PEER_PREFIX):
        return None
    return raw[6:]


def peer_id_from_public_key(public: bytes) -> str:
    return base58.b58encode(ED25519_PEER_PREFIX + public).decode()
