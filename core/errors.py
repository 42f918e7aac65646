"""The error taxonomy.

- `GardenerError`: an environment problem (port busy, keyring locked, bad settings). It
  carries one plain sentence for the gardener and what to do about it; the CLI prints it
  without a traceback and exits non-zero.
- `PeerMisbehaviour`: a remote peer broke a protocol. The node drops and records the peer;
  it never crashes on one.
- Anything else is a bug: logged with its traceback, surfaced to the crash handler.
"""

from __future__ import annotations


class GardenerError(Exception):
    """An environment problem the gardener can fix; `str()` is the sentence to show."""

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what} {fix}".strip())


class SettingsError(GardenerError):
    """Settings given by the gardener (file, CLI or UI) are out of bounds or malformed."""


class IdentityError(GardenerError):
    """The village key cannot be read or stored."""


class NetworkError(GardenerError):
    """The network layer cannot do what was asked (port in use, bad address)."""


class PeerMisbehaviour(Exception):
    """A remote peer sent something that breaks a protocol: malformed, oversized, late.
    `proven`: no honest implementation does this (a wrong slice, a part sent twice, bytes
    that do not decode) - unlike silence or a broken stream, which a crash also causes."""

    def __init__(self, peer: str, reason: str, *, proven: bool = False) -> None:
        self.peer = peer
        self.reason = reason
        self.proven = proven
        super().__init__(f"peer {peer}: {reason}")
