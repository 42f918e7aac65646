"""Release signatures in minisign's format: what `grove verify` and the update check trust.

Artifacts are signed with `minisign` (installers/sign); the app verifies without it, so a
gardener on any platform (and the frozen build) can check a download. The format, from
minisign's documentation:

- public key: an untrusted comment line, then base64 of `"Ed"` + key id (8 bytes) + Ed25519
  public key (32 bytes);
- signature: an untrusted comment line; base64 of the algorithm (`"ED"`: the file's BLAKE2b-512
  is signed, minisign's default; `"Ed"`: the file itself, legacy) + key id + signature (64);
  a `trusted comment: ` line; base64 of the global signature, over the signature bytes and the
  trusted comment, so the comment (file name, time) cannot be swapped either.

No minisign package for Python is maintained (PyPI's `minisign` 0.1.0 is an empty
placeholder), so the parsing is here and the cryptography is `cryptography`'s Ed25519.
`sign_bytes` makes signatures the minisign CLI verifies; tests and the CI throwaway key use it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from core.errors import GardenerError

MAX_SIG_FILE = 4096
TRUSTED_PREFIX = "trusted comment: "
UNTRUSTED_PREFIX = "untrusted comment: "
CHUNK = 1 << 20


class VerifyError(GardenerError):
    """A signature does not hold; `what` says why in one sentence."""


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes  # 8 bytes; shown as 16 upper-case hex digits, as minisign does
    key: bytes  # 32 bytes of Ed25519

    @property
    def id_hex(self) -> str:
        return self.key_id[::-1].hex().upper()

    def line(self) -> str:
        return base64.b64encode(b"Ed" + self.key_id + self.key).decode()

    def file_text(self) -> str:
        return f"{UNTRUSTED_PREFIX}minisign public key {self.id_hex}\n{self.line()}\n"


@dataclass(frozen=True)
class Signature:
    algorithm: bytes  # b"ED" (prehashed) or b"Ed" (legacy)
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerifyError(f"The {what} is not valid base64.") from None


def parse_public_key(text: str) -> PublicKey:
    """A public key file's text, or just its base64 line (as `minisign -P` takes)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and lines[0].startswith(UNTRUSTED_PREFIX):
        lines = lines[1:]
    if len(lines) != 1:
        raise VerifyError("A public key is one base64 line (after an optional comment).")
    raw = _b64(lines[0], "public key")
    if len(raw) != 42 or raw[:2] != b"Ed":
        raise VerifyError("That is not a minisign Ed25519 public key.")
    return PublicKey(raw[2:10], raw[10:])


def parse_public_keys(text: str) -> list[PublicKey]:
    """A trust list: one base64 key per line; `#` comments and blank lines ignored."""
    keys = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(UNTRUSTED_PREFIX):
            continue
        try:
            keys.append(parse_public_key(line))
        except VerifyError as e:
            raise VerifyError(f"Line {n} of the key list: {e.what}") from None
    return keys


def parse_signature(data: bytes) -> Signature:
    if len(data) > MAX_SIG_FILE:
        raise VerifyError(f"The signature file is larger than {MAX_SIG_FILE} bytes.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyError("The signature file is not text.") from None
    lines = text.splitlines()
    if len(lines) < 4 or not lines[0].startswith(UNTRUSTED_PREFIX) \
            or not lines[2].startswith(TRUSTED_PREFIX):
        raise VerifyError("The signature file is not in minisign's format.")
    raw = _b64(lines[1], "signature")
    if len(raw) != 74 or raw[:2] not in (b"ED", b"Ed"):
        raise VerifyError("The signature is not a minisign Ed25519 signature.")
    glob = _b64(lines[3], "global signature")
    if len(glob) != 64:
        raise VerifyError("The global signature has the wrong length.")
    return Signature(raw[:2], raw[2:10], raw[10:], lines[2][len(TRUSTED_PREFIX):], glob)


def _digest_file(path: Path) -> bytes:
    h = hashlib.blake2b(digest_size=64)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.digest()


def _signed_message(sig: Signature, data: bytes | None, path: Path | None) -> bytes:
    if sig.algorithm == b"ED":
        if data is not None:
            return hashlib.blake2b(data, digest_size=64).digest()
        assert path is not None
        return _digest_file(path)
    if data is not None:
        return data
    assert path is not None
    return path.read_bytes()


def verify(sig: Signature, keys: Iterable[PublicKey], *, data: bytes | None = None,
           path: Path | None = None) -> PublicKey:
    """The trusted key that made `sig` over `data` (or the file at `path`); VerifyError
    saying why otherwise (no trusted key with that id, the content changed, the comment was
    altered)."""
    key = next((k for k in keys if k.key_id == sig.key_id), None)
    if key is None:
        raise VerifyError(f"It was signed with key {sig.key_id[::-1].hex().upper()}, "
                          "which this build does not trust.")
    pub = Ed25519PublicKey.from_public_bytes(key.key)
    try:
        pub.verify(sig.signature, _signed_message(sig, data, path))
    except InvalidSignature:
        raise VerifyError("The signature does not match the content: the file was changed, "
                          "truncated or corrupted.") from None
    try:
        pub.verify(sig.global_signature,
                   sig.signature + sig.trusted_comment.encode("utf-8"))
    except InvalidSignature:
        raise VerifyError("The signature's trusted comment was altered.") from None
    return key


def verify_file(path: Path, sig_path: Path, keys: Iterable[PublicKey]) -> tuple[PublicKey,
                                                                                   Signature]:
    if not path.is_file():
        raise VerifyError(f"There is no file at {path}.")
    if not sig_path.is_file():
        raise VerifyError(f"There is no signature at {sig_path}: the file is unsigned.",
                          "Download the .minisig published next to it.")
    with open(sig_path, "rb") as f:
        sig = parse_signature(f.read(MAX_SIG_FILE + 1))
    return verify(sig, keys, path=path), sig


# --- signing (CI's throwaway key, tests; releases use the minisign CLI) -----------------

@dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    seed: bytes  # 32 bytes

    @classmethod
    def generate(cls) -> SecretKey:
        import secrets

        return cls(secrets.token_bytes(8), secrets.token_bytes(32))

    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def public(self) -> PublicKey:
        raw = self._private().public_key().public_bytes(serialization.Encoding.Raw,
                                                        serialization.PublicFormat.Raw)
        return PublicKey(self.key_id, raw)


def sign_bytes(secret: SecretKey, data: bytes, trusted_comment: str) -> bytes:
    """A minisign signature file (prehashed) for `data`."""
    if "\n" in trusted_comment or "\r" in trusted_comment:
        raise ValueError("a trusted comment is one line")
    priv = secret._private()
    sig = priv.sign(hashlib.blake2b(data, digest_size=64).digest())
    glob = priv.sign(sig + trusted_comment.encode("utf-8"))
    return (f"{UNTRUSTED_PREFIX}signature from grove secret key\n"
            f"{base64.b64encode(b'ED' + secret.key_id + sig).decode()}\n"
            f"{TRUSTED_PREFIX}{trusted_comment}\n"
            f"{base64.b64encode(glob).decode()}\n").encode()
