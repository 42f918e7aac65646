"""Village key -> libp2p key pair and peer id."""

from __future__ import annotations

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID


def key_pair_from_seed(seed: bytes) -> KeyPair:
    return create_new_key_pair(seed)


def peer_id_from_seed(seed: bytes) -> str:
    return ID.from_pubkey(key_pair_from_seed(seed).public_key).to_base58()
