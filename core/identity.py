"""The village's Ed25519 key: created once, kept in the OS keyring, the same across restarts.

Order of lookup: the keyring entry (service `grove-village`, user = the profile, qualified by
GROVE_HOME when set), then the fallback file `<data>/village.key`. A new key goes to the keyring
when a usable backend exists; only where none exists (a bare server) is it written to a 0600
file, and the snapshot and `grove doctor` say so. A keyring that exists but refuses access is an
error for the gardener, never a silent switch to a file.

`GROVE_KEY_STORE=file` forces the file (headless servers, tests); `keyring` forbids the file.
"""

from __future__ import annotations

import base64
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.config import atomic_write
from core.errors import IdentityError
from core.paths import NodePaths

log = logging.getLogger(__name__)

KEYRING_SERVICE = "grove-village"
KEY_FILE_NAME = "village.key"


@dataclass(frozen=True)
class VillageKey:
    seed: bytes  # the 32-byte Ed25519 private key

    @classmethod
    def generate(cls) -> VillageKey:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        raw = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls(raw)

    @property
    def public_bytes(self) -> bytes:
        pk = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return pk.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(data)

    def encode(self) -> str:
        return base64.b64encode(self.seed).decode()

    @classmethod
    def decode(cls, text: str, where: str) -> VillageKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise IdentityError(
                f"The village key in {where} is damaged.",
                "Restore it from a backup, or remove it to start as a new village.",
            )
        return cls(raw)

    def __repr__(self) -> str:  # never print the secret
        return "VillageKey(<secret>)"


@dataclass(frozen=True)
class KeyStoreInfo:
    kind: str  # "keyring" or "file"
    backend: str  # keyring backend name, or the file's path
    note: str  # a plain sentence for the snapshot and `grove doctor`

    @property
    def is_fallback(self) -> bool:
        return self.kind == "file"


def keyring_backend_name(backend: keyring.backend.KeyringBackend | None = None) -> str:
    backend = backend or keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def keyring_usable(backend: keyring.backend.KeyringBackend | None = None) -> bool:
    """Whether a real backend exists: not the `fail` backend, not an empty chain."""
    backend = backend or keyring.get_keyring()
    try:
        priority = float(backend.priority)
    except Exception:
        return False
    if priority <= 0:
        return False
    from keyring.backends import chainer, fail

    if isinstance(backend, fail.Keyring):
        return False
    return not (isinstance(backend, chainer.ChainerBackend) and not backend.backends)


def _refused(e: Exception) -> IdentityError:
    return IdentityError(
        f"The system keyring refused access to the village key ({type(e).__name__}: {e}).",
        "Unlock your keyring (log in to the desktop session) and try again, "
        "or run with GROVE_KEY_STORE=file to keep the key in a private file.",
    )


def _read_file(path: Path) -> VillageKey | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IdentityError(f"The village key file {path} cannot be read ({e.strerror}).",
                            "Check its permissions.") from e
    _check_private(path)
    return VillageKey.decode(text, str(path))


def _check_private(path: Path) -> None:
    """A key file that other users of this computer can read is refused (they could act as
    this village): the gardener is told how to fix it. Not checked on Windows (ACLs)."""
    if os.name == "nt":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise IdentityError(
            f"The village key file {path} can be read by other users of this computer "
            f"(mode {mode:o}).",
            f"Make it private with: chmod 600 {path}  - then start again. If someone else may "
            "have copied it, remove the file instead to start as a new village.")


def load_or_create_key(paths: NodePaths, env: dict[str, str] | None = None,
                       ) -> tuple[VillageKey, KeyStoreInfo]:
    """The village key for this profile, creating it on first use. Any thread."""
    env = dict(os.environ) if env is None else env
    mode = env.get("GROVE_KEY_STORE", "auto")
    if mode not in ("auto", "file", "keyring"):
        raise IdentityError(f"GROVE_KEY_STORE={mode!r} is not understood.",
                            "Use auto, file or keyring.")
    key_file = paths.data_dir / KEY_FILE_NAME
    user = paths.keyring_username
    backend = keyring.get_keyring()
    use_keyring = mode != "file" and keyring_usable(backend)
    if mode == "keyring" and not use_keyring:
        raise IdentityError("No system keyring is available (GROVE_KEY_STORE=keyring).",
                            "Install and start a Secret Service (e.g. gnome-keyring).")
    if use_keyring:
        name = keyring_backend_name(backend)
        try:
            stored = backend.get_password(KEYRING_SERVICE, user)
        except keyring.errors.KeyringError as e:
            raise _refused(e) from e
        if stored is not None:
            return VillageKey.decode(stored, f"the keyring ({name})"), KeyStoreInfo(
                "keyring", name, f"Village key kept in the system keyring ({name}).")
        # A key that lived in the file before a keyring existed keeps the village's identity.
        existing = _read_file(key_file)
        if existing is not None:
            return existing, KeyStoreInfo(
                "file", str(key_file),
                f"Village key kept in a private file ({key_file}), created before a keyring "
                "was available.")
        key = VillageKey.generate()
        try:
            backend.set_password(KEYRING_SERVICE, user, key.encode())
        except keyring.errors.KeyringError as e:
            raise _refused(e) from e
        log.info("created a new village key in the keyring (%s)", name)
        return key, KeyStoreInfo("keyring", name,
                                 f"Village key kept in the system keyring ({name}).")
    reason = "GROVE_KEY_STORE=file" if mode == "file" else "no system keyring is available"
    from_file = _read_file(key_file)
    if from_file is not None:
        key = from_file
    else:
        key = VillageKey.generate()
        paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(key_file, key.encode().encode(), mode=0o600)
        log.warning("created a new village key in %s (%s)", key_file, reason)
    return key, KeyStoreInfo("file", str(key_file),
                             f"Village key kept in a private file ({key_file}): {reason}.")
