"""Release signatures, `grove verify`, and the update check against a local HTTP server.

Signatures are minisign's format: checked both ways against the real `minisign` program.
The update check fetches from a real HTTP server on loopback serving good, tampered,
unsigned, foreign-key, downgrade and replayed manifests.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.release import service, update
from core.release.signing import (
    SecretKey,
    VerifyError,
    parse_public_key,
    parse_public_keys,
    parse_signature,
    sign_bytes,
    verify_file,
)
from tests.conftest import grove, have, need

KEY = SecretKey.generate()
OTHER = SecretKey.generate()


def _signed(tmp: Path, name: str, data: bytes, key: SecretKey = KEY) -> Path:
    path = tmp / name
    path.write_bytes(data)
    (tmp / f"{name}.minisig").write_bytes(sign_bytes(key, data, f"file:{name}"))
    return path


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# -- signatures ---------------------------------------------------------------------------------

def test_a_signature_holds_and_every_change_breaks_it(tmp_path: Path) -> None:
    data = bytes(range(256)) * 400
    path = _signed(tmp_path, "grove.deb", data)
    sig = tmp_path / "grove.deb.minisig"
    key, s = verify_file(path, sig, [KEY.public()])
    assert key == KEY.public() and s.trusted_comment == "file:grove.deb"
    _flip(path, 5000)  # one byte changed
    with pytest.raises(VerifyError, match="changed, truncated or corrupted"):
        verify_file(path, sig, [KEY.public()])
    path.write_bytes(data[:-1])  # truncated download
    with pytest.raises(VerifyError, match="changed, truncated"):
        verify_file(path, sig, [KEY.public()])
    path.write_bytes(data)
    with pytest.raises(VerifyError, match="does not trust"):
        verify_file(path, sig, [OTHER.public()])
    lines = sig.read_text().splitlines()  # the trusted comment swapped for another
    sig.write_text("\n".join([*lines[:2], "trusted comment: file:other.deb", lines[3]]) + "\n")
    with pytest.raises(VerifyError, match="trusted comment was altered"):
        verify_file(path, sig, [KEY.public()])
    sig.unlink()
    with pytest.raises(VerifyError, match="unsigned"):
        verify_file(path, sig, [KEY.public()])


@pytest.mark.parametrize("text", [b"", b"hello", b"\xff\xfe" * 10, b"a\nb\nc\nd\n",
                                  b"untrusted comment: x\n!!!\ntrusted comment: y\nzz\n",
                                  b"x" * 5000])
def test_malformed_signature_files_are_refused(text: bytes) -> None:
    with pytest.raises(VerifyError):
        parse_signature(text)


def test_key_list_parses_comments_and_rejects_junk() -> None:
    pub = KEY.public()
    keys = parse_public_keys(f"# Foundation\n\n{pub.line()}  # 2026\n{OTHER.public().line()}\n")
    assert keys == [pub, OTHER.public()]
    assert parse_public_key(pub.file_text()) == pub
    with pytest.raises(VerifyError, match="Line 2"):
        parse_public_keys(f"{pub.line()}\nnot-a-key\n")


def test_minisign_interoperates_both_ways(tmp_path: Path) -> None:
    need("minisign", have("minisign"), "minisign is not installed (apt install minisign)")
    data = b"grove release " * 1000
    ours = _signed(tmp_path, "ours.bin", data)
    (tmp_path / "ours.pub").write_text(KEY.public().file_text())
    out = subprocess.run(["minisign", "-V", "-p", str(tmp_path / "ours.pub"), "-m", str(ours)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    subprocess.run(["minisign", "-G", "-W", "-p", str(tmp_path / "ms.pub"), "-s",
                    str(tmp_path / "ms.key")], check=True, capture_output=True)
    theirs = tmp_path / "theirs.bin"
    theirs.write_bytes(data)
    subprocess.run(["minisign", "-S", "-s", str(tmp_path / "ms.key"), "-m", str(theirs),
                    "-t", "their comment"], check=True, capture_output=True)
    key = parse_public_key((tmp_path / "ms.pub").read_text())
    _, sig = verify_file(theirs, tmp_path / "theirs.bin.minisig", [key])
    assert sig.trusted_comment == "their comment"
    _flip(theirs, 10)
    with pytest.raises(VerifyError):
        verify_file(theirs, tmp_path / "theirs.bin.minisig", [key])


def test_grove_verify_command(tmp_path: Path, grove_env: dict[str, str]) -> None:
    path = _signed(tmp_path, "grove-village.tar.gz", b"\x1f\x8b" + bytes(4000))
    pub = tmp_path / "release.pub"
    pub.write_text(KEY.public().file_text())
    ok = grove("verify", str(path), "--key", str(pub), env=grove_env)
    assert ok.returncode == 0 and "Verified" in ok.stdout and KEY.public().id_hex in ok.stdout
    none = grove("verify", str(path), env=grove_env)  # a source checkout trusts no key
    assert none.returncode == 1 and "trusts no release key" in none.stderr
    _flip(path, 100)
    bad = grove("verify", str(path), "--key", str(pub), "--json", env=grove_env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert json.loads(bad.stdout)["ok"] is False
    other = tmp_path / "other.pub"
    other.write_text(OTHER.public().file_text())
    path.write_bytes(b"\x1f\x8b" + bytes(4000))
    wrong = grove("verify", str(path), "--key", str(other), env=grove_env)
    assert wrong.returncode == 1 and "does not trust" in wrong.stderr


def test_grove_verify_checks_a_signed_checksum_list(tmp_path: Path,
                                                    grove_env: dict[str, str]) -> None:
    a, b = tmp_path / "a.deb", tmp_path / "b.tar.gz"
    a.write_bytes(b"deb" * 100)
    b.write_bytes(b"tar" * 100)
    listing = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                      for p in (a, b))
    _signed(tmp_path, "SHA256SUMS", listing.encode())
    pub = tmp_path / "k.pub"
    pub.write_text(KEY.public().file_text())
    ok = grove("verify", str(tmp_path / "SHA256SUMS"), "--key", str(pub), "--json",
               env=grove_env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["files"] == {"a.deb": "ok",
                                                                     "b.tar.gz": "ok"}
    _flip(b, 3)
    bad = grove("verify", str(tmp_path / "SHA256SUMS"), "--key", str(pub), "--json",
                env=grove_env)
    assert bad.returncode == 1 and json.loads(bad.stdout)["files"]["b.tar.gz"] == "MISMATCH"


# -- the update check ---------------------------------------------------------------------------

def _manifest(version: str, artifacts: list[dict[str, object]] | None = None) -> bytes:
    return json.dumps({"schema": "grove-release-manifest", "v": 1, "version": version,
                       "issued_at": time.time(), "artifacts": artifacts or []}).encode()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that cuts a download short (as the update tests do on purpose) is not
        an error worth a traceback in the test log; anything else still prints one."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()
    server = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


def _publish(root: Path, name: str, data: bytes, key: SecretKey | None = KEY) -> None:
    (root / name).write_bytes(data)
    sig = root / f"{name}.minisig"
    sig.unlink(missing_ok=True)
    if key is not None:
        sig.write_bytes(sign_bytes(key, data, f"file:{name}"))


def test_update_check_against_a_local_server(mirror: tuple[str, Path]) -> None:
    base, root = mirror
    keys = [KEY.public()]
    artifact = {"name": "grove.deb", "platform": update.this_platform(), "url": "grove.deb",
                "sha256": "0" * 64, "size": 10}
    _publish(root, "good.json", _manifest("0.2.0", [artifact]))
    got = update.check(base + "good.json", keys, "0.1.0")
    assert got.status == "available" and got.version == "0.2.0"
    assert got.artifact is not None and got.artifact.name == "grove.deb"
    assert "0.2.0 is available" in got.reason

    assert update.check(base + "good.json", keys, "0.2.0").status == "current"

    _publish(root, "tampered.json", _manifest("0.2.0"))
    (root / "tampered.json").write_bytes(_manifest("9.9.9"))  # bytes changed after signing
    got = update.check(base + "tampered.json", keys, "0.1.0")
    assert got.status == "refused" and "signature" in got.reason

    _publish(root, "unsigned.json", _manifest("0.2.0"), key=None)
    got = update.check(base + "unsigned.json", keys, "0.1.0")
    assert got.status == "refused" and "unsigned" in got.reason

    _publish(root, "foreign.json", _manifest("0.2.0"), key=OTHER)
    got = update.check(base + "foreign.json", keys, "0.1.0")
    assert got.status == "refused" and "does not trust" in got.reason

    _publish(root, "old.json", _manifest("0.0.9"))
    got = update.check(base + "old.json", keys, "0.1.0")
    assert got.status == "refused" and "downgrade" in got.reason

    got = update.check(base + "good.json", keys, "0.1.0", newest_seen="0.3.0")
    assert got.status == "refused" and "replayed" in got.reason

    _publish(root, "junk.json", b'{"schema": "grove-release-manifest", "v": 1}')
    got = update.check(base + "junk.json", keys, "0.1.0")
    assert got.status == "refused" and "not usable" in got.reason

    _publish(root, "huge.json", b" " * (update.MAX_MANIFEST + 10))
    assert update.check(base + "huge.json", keys, "0.1.0").status == "refused"

    assert update.check(base + "missing.json", keys, "0.1.0").status == "unreachable"
    got = update.check("http://example.invalid/manifest.json", keys, "0.1.0")
    assert got.status == "refused" and "https" in got.reason  # plain http off-machine


def test_download_keeps_only_what_the_manifest_signed(mirror: tuple[str, Path],
                                                      tmp_path: Path) -> None:
    base, root = mirror
    payload = bytes(range(256)) * 4096
    (root / "grove.deb").write_bytes(payload)
    good = update.Artifact("grove.deb", "any", "grove.deb",
                           hashlib.sha256(payload).hexdigest(), len(payload))
    got = update.download(good, tmp_path / "dl", base + "manifest.json")
    assert got.read_bytes() == payload
    (root / "short.deb").write_bytes(payload[:-100])  # a truncated file on the server
    short = update.Artifact("short.deb", "any", "short.deb", good.sha256, len(payload))
    with pytest.raises(update.DownloadError, match="cut short"):
        update.download(short, tmp_path / "dl", base)
    (root / "evil.deb").write_bytes(payload[:-1] + b"\x00")
    evil = update.Artifact("evil.deb", "any", "evil.deb", good.sha256, len(payload))
    with pytest.raises(update.DownloadError, match="SHA-256"):
        update.download(evil, tmp_path / "dl", base)
    big = update.Artifact("grove.deb", "any", "grove.deb", good.sha256, 100)
    with pytest.raises(update.DownloadError, match="larger"):
        update.download(big, tmp_path / "dl2", base)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["grove.deb"]
    assert not (tmp_path / "dl2" / "grove.deb").exists()


def test_grove_update_command(mirror: tuple[str, Path], tmp_path: Path,
                              grove_env: dict[str, str]) -> None:
    base, root = mirror
    payload = b"new grove" * 1000
    (root / "grove.deb").write_bytes(payload)
    artifact = {"name": "grove.deb", "platform": "any", "url": "grove.deb",
                "sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
    _publish(root, "manifest.json", _manifest("0.2.0", [artifact]))
    pub = tmp_path / "k.pub"
    pub.write_text(KEY.public().file_text())
    out = grove("update", "--url", base + "manifest.json", "--key", str(pub), "--json",
                "--download", str(tmp_path / "dl"), env=grove_env)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["status"] == "available" and got["version"] == "0.2.0"
    assert Path(got["download"]).read_bytes() == payload
    # The newest version seen is remembered: a replayed older manifest is refused next time.
    _publish(root, "manifest.json", _manifest("0.1.5"))
    out = grove("update", "--url", base + "manifest.json", "--key", str(pub), env=grove_env)
    assert out.returncode == 1 and "replayed" in out.stdout
    out = grove("update", env=grove_env)
    assert out.returncode == 2 and "update_url" in out.stderr


def test_update_state_survives_and_views(tmp_path: Path) -> None:
    path = tmp_path / "update.json"
    result = update.UpdateResult("available", "Grove 0.2.0 is available.", "0.2.0")
    view = service.record(path, "https://x/m.json", result, 1000.0)
    assert view.status == "available" and view.checked_at == 1000.0
    state = service.load_state(path)
    assert service.newest_seen(state, "https://x/m.json") == "0.2.0"
    assert service.view_from_state(state, "https://x/m.json") == view
    assert service.view_from_state(state, "https://y/m.json").status == "waiting"
    refused = update.UpdateResult("refused", "nope")
    service.record(path, "https://x/m.json", refused, 2000.0)
    assert service.newest_seen(service.load_state(path), "https://x/m.json") == "0.2.0"
    path.write_text("{not json")
    assert service.load_state(path) == {}


def test_update_url_setting_is_validated() -> None:
    from core.errors import SettingsError
    from core.settings_schema import Settings

    s = Settings().with_changes(update_url="https://grove.invalid/manifest.json")
    assert s.update_url.startswith("https://") and s.update_check is False
    with pytest.raises(SettingsError, match="update_url"):
        Settings().with_changes(update_url="http://grove.invalid/manifest.json")
    with pytest.raises(SettingsError, match="update_url"):
        Settings().with_changes(update_url="file:///etc/passwd")


def test_the_shipped_key_list_parses() -> None:
    from core.resources import release_keys

    assert release_keys() == []  # a checkout trusts none; a build adds its own (ci-check)


def test_a_running_node_checks_and_the_tray_is_told(mirror: tuple[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Off by default; turned on, a real node fetches the signed manifest from the local
    server, its snapshot says an update exists, and the tray's notifier raises it once."""
    from app.state import Notifier
    from core import resources
    from tests.nodes import make_handle, wait_for

    base, root = mirror
    _publish(root, "manifest.json", _manifest("0.2.0"))
    monkeypatch.setattr(service, "FIRST_DELAY", 0.0)
    monkeypatch.setattr(resources, "release_keys", lambda: [KEY.public()])
    handle = make_handle(tmp_path / "home", "upd")
    handle.start()
    try:
        assert handle.snapshot().update.status == "off"
        handle.update_settings(update_check=True,
                               update_url=base + "manifest.json").result(10)
        wait_for(lambda: handle.snapshot().update.status == "available", 20,
                 "the update check's verdict in the snapshot")
        snap = handle.snapshot()
        assert snap.update.version == "0.2.0" and "0.2.0 is available" in snap.update.text
        notifier = Notifier()
        told = notifier.observe(snap, time.time())
        assert [n.kind for n in told] == ["update"]
        assert notifier.observe(snap, time.time() + 7200) == []  # once per version
        state = service.load_state(tmp_path / "home" / "upd" / "data" / service.STATE_FILE)
        assert service.newest_seen(state, base + "manifest.json") == "0.2.0"
        # a tampered manifest at a new URL: refused, and the snapshot says why
        _publish(root, "evil.json", _manifest("0.3.0"))
        (root / "evil.json").write_bytes(_manifest("0.4.0"))
        handle.update_settings(update_url=base + "evil.json").result(10)
        wait_for(lambda: handle.snapshot().update.status == "refused", 20, "a refusal")
        assert "signature" in handle.snapshot().update.text
    finally:
        handle.stop()
