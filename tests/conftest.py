"""Shared fixtures. Qt runs offscreen; each test gets its own GROVE_HOME."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests speak on loopback and in namespaces they create, never on this machine's LAN: mDNS is
# off for them and their children (the LAN test turns it on inside its own namespaces).
os.environ["GROVE_MDNS"] = "0"

import keyring
import keyring.backend
import pytest

REQUIRE_CAPABILITIES = os.environ.get("GROVE_REQUIRE_CAPABILITIES") == "1"
ROOT = Path(__file__).resolve().parent.parent


def need(capability: str, available: bool, why: str) -> None:
    """Skip when a system capability is missing - unless CI demands it, then fail."""
    if available:
        return
    message = f"capability '{capability}' missing: {why}"
    if REQUIRE_CAPABILITIES:
        pytest.fail(message + " (GROVE_REQUIRE_CAPABILITIES=1)")
    pytest.skip(message)


def have(*programs: str) -> bool:
    return all(shutil.which(p) for p in programs)


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring held in memory: a real backend object, just not a persistent one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    try:
        yield kr
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def grove_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private GROVE_HOME with file-kept keys, for this process and its children."""
    home = tmp_path / "grove-home"
    monkeypatch.setenv("GROVE_HOME", str(home))
    monkeypatch.setenv("GROVE_KEY_STORE", "file")
    env = dict(os.environ)
    return env


def grove(*args: str, env: dict[str, str], timeout: float = 60,
          input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `grove` command as a gardener would."""
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, input=input, cwd=ROOT)


def wait_runtime(home: Path, profile: str, timeout: float = 30) -> dict[str, object]:
    """The runtime.json a started node writes (its peer id and addresses), once it exists."""
    path = home / profile / "data" / "runtime.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{profile} did not start"
        time.sleep(0.05)
    return json.loads(path.read_text())
