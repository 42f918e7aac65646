from __future__ import annotations

import os
import subprocess
from pathlib import Path

import keyring.backend
import keyring.errors
import pytest
from keyring.backends import fail

from core.errors import IdentityError
from core.identity import KEY_FILE_NAME, KEYRING_SERVICE, load_or_create_key
from core.net.keys import peer_id_from_seed
from core.paths import node_paths
from tests.conftest import MemoryKeyring, have, need


def _paths(tmp_path: Path, profile: str = "default", home: str = "h"):
    return node_paths(profile, {"GROVE_HOME": str(tmp_path / home)}).ensure()


def test_keyring_backend_keeps_the_key_and_no_file_is_written(
        tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    paths = _paths(tmp_path)
    key, info = load_or_create_key(paths, env={})
    again, _ = load_or_create_key(paths, env={})
    assert key == again
    assert info.kind == "keyring" and not info.is_fallback
    assert list(memory_keyring.items) == [(KEYRING_SERVICE, paths.keyring_username)]
    assert not (paths.data_dir / KEY_FILE_NAME).exists()
    secret = key.encode()
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_file_fallback_only_without_a_backend(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        paths = _paths(tmp_path)
        key, info = load_or_create_key(paths, env={})
        assert info.is_fallback and "no system keyring" in info.note
        f = paths.data_dir / KEY_FILE_NAME
        assert os.stat(f).st_mode & 0o777 == 0o600
        assert load_or_create_key(paths, env={})[0] == key
    finally:
        keyring.set_keyring(previous)


def test_profiles_and_homes_have_their_own_identity(tmp_path: Path,
                                                    memory_keyring: MemoryKeyring) -> None:
    a = load_or_create_key(_paths(tmp_path, "a"), env={})[0]
    b = load_or_create_key(_paths(tmp_path, "b"), env={})[0]
    a2 = load_or_create_key(_paths(tmp_path, "a", home="other"), env={})[0]
    assert len({a.seed, b.seed, a2.seed}) == 3
    assert peer_id_from_seed(a.seed).startswith("12D3KooW")


class RefusingKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")


def test_a_refusing_keyring_is_a_plain_error_not_a_silent_file(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(RefusingKeyring())
    try:
        paths = _paths(tmp_path)
        with pytest.raises(IdentityError, match="refused access.*Unlock your keyring"):
            load_or_create_key(paths, env={})
        assert not (paths.data_dir / KEY_FILE_NAME).exists()
    finally:
        keyring.set_keyring(previous)


def test_damaged_key_file_is_reported(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    (paths.data_dir / KEY_FILE_NAME).write_text("not base64!")
    with pytest.raises(IdentityError, match="damaged"):
        load_or_create_key(paths, env={"GROVE_KEY_STORE": "file"})


def test_unknown_key_store_mode(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="GROVE_KEY_STORE"):
        load_or_create_key(_paths(tmp_path), env={"GROVE_KEY_STORE": "cloud"})


SECRET_SERVICE_SCRIPT = r"""
set -e
echo -n grove-test | gnome-keyring-daemon --unlock --components=secrets > /dev/null
PY="$1"
for i in 1 2; do
  "$PY" -m app.cli node --listen-host 127.0.0.1 --no-default-bootstrap --json-status \
      --status-interval 0.5 > "$GROVE_HOME/node$i.out" 2> "$GROVE_HOME/node$i.err" &
  pid=$!
  for t in $(seq 1 100); do
    grep -q '"state": "running"' "$GROVE_HOME/node$i.out" 2>/dev/null && break
    sleep 0.1
  done
  kill -INT $pid; wait $pid
done
"$PY" -c "import keyring; print(type(keyring.get_keyring()).__module__)" > "$GROVE_HOME/backend"
"$PY" -m keyring get grove-village "$2" > "$GROVE_HOME/secret"
"""


def test_real_secret_service_keeps_the_same_identity_and_writes_no_key(tmp_path: Path) -> None:
    import json
    import sys

    need("secret-service", have("dbus-run-session", "gnome-keyring-daemon"),
         "needs dbus-run-session and gnome-keyring-daemon (Debian: dbus, gnome-keyring)")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("GROVE_KEY_STORE",
                                                            "DBUS_SESSION_BUS_ADDRESS")}
    env["GROVE_HOME"] = str(home)
    env["HOME"] = str(tmp_path)  # gnome-keyring keeps its keyrings under $HOME: a fresh one
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    user = node_paths("default", env).keyring_username
    script = tmp_path / "run.sh"
    script.write_text(SECRET_SERVICE_SCRIPT)
    out = subprocess.run(["dbus-run-session", "--", "bash", str(script), sys.executable, user],
                         env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert (home / "backend").read_text().strip() == "keyring.backends.SecretService"
    ids = []
    for i in (1, 2):
        first = json.loads((home / f"node{i}.out").read_text().splitlines()[0])
        assert first["key_store_fallback"] is False
        ids.append(first["peer_id"])
    assert ids[0] == ids[1] and ids[0].startswith("12D3KooW")
    secret = (home / "secret").read_text().strip()
    assert len(secret) == 44  # base64 of the 32-byte key, held by the Secret Service
    assert not list(home.rglob(KEY_FILE_NAME))
    for f in home.rglob("*"):
        if f.is_file() and f.name != "secret":
            assert secret.encode() not in f.read_bytes(), f
