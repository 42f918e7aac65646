"""Reading files shipped in the `resources` package."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources

from core.release.signing import PublicKey, parse_public_keys


def read_text(name: str) -> str:
    return resources.files("resources").joinpath(name).read_text(encoding="utf-8")


def default_bootstrap() -> tuple[str, ...]:
    data = tomllib.loads(read_text("bootstrap.toml"))
    peers = data.get("peers", [])
    return tuple(p for p in peers if isinstance(p, str))


def release_keys() -> list[PublicKey]:
    """The minisign public keys this build trusts (resources/release_keys.txt)."""
    return parse_public_keys(read_text("release_keys.txt"))


@lru_cache(maxsize=1)  # read once: the Credits view asks on every refresh
def pretrusted_villages() -> frozenset[str]:
    """The peer ids this build trusts before any work (resources/pretrusted.txt); a line
    that is not an Ed25519 peer id is ignored."""
    from core.dht.keyspace import ed25519_public_key

    ids = (line.split("#")[0].strip() for line in read_text("pretrusted.txt").splitlines())
    return frozenset(i for i in ids if i and ed25519_public_key(i) is not None)
