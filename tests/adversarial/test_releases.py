"""Releases from a hostile mirror: a stale (frozen) manifest, one dated in the future, a
redirect that leaves https, and a download that drips bytes to hold the check open. Each is
refused with its reason; a fresh, signed manifest behind an allowed redirect still works."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.release import update
from core.release.signing import SecretKey, sign_bytes

KEY = SecretKey.generate()


def _manifest(version: str, issued_at: float) -> bytes:
    return json.dumps({"schema": "grove-release-manifest", "v": 1, "version": version,
                       "issued_at": issued_at, "artifacts": []}).encode()


class _Mirror(http.server.SimpleHTTPRequestHandler):
    redirects: dict[str, str] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        if self.path == "/drip.deb":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                for _ in range(200):  # a byte every 20 ms: 1 MB would take 5.5 hours
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                pass
            return
        super().do_GET()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Mirror, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _Mirror.redirects = {"/moved.json": f"{base}/fresh.json",
                         "/moved.json.minisig": f"{base}/fresh.json.minisig",
                         "/away.json": "ftp://127.0.0.1/fresh.json"}
    try:
        yield base + "/", root
    finally:
        server.shutdown()
        server.server_close()


def _publish(root: Path, name: str, data: bytes) -> None:
    (root / name).write_bytes(data)
    (root / f"{name}.minisig").write_bytes(sign_bytes(KEY, data, f"file:{name}"))


def test_a_frozen_or_future_manifest_is_refused(mirror: tuple[str, Path]) -> None:
    base, root = mirror
    keys, now = [KEY.public()], 2_000_000_000.0
    _publish(root, "fresh.json", _manifest("0.2.0", now - 86400))
    assert update.check(base + "fresh.json", keys, "0.1.0", now=now).status == "available"
    _publish(root, "frozen.json", _manifest("0.2.0", now - 60 * 86400))
    got = update.check(base + "frozen.json", keys, "0.1.0", now=now)
    assert got.status == "refused" and "60 days ago" in got.reason, got
    _publish(root, "future.json", _manifest("0.2.0", now + 86400))
    got = update.check(base + "future.json", keys, "0.1.0", now=now)
    assert got.status == "refused" and "future" in got.reason, got


def test_a_redirect_may_not_leave_https(mirror: tuple[str, Path]) -> None:
    base, root = mirror
    keys, now = [KEY.public()], time.time()
    _publish(root, "fresh.json", _manifest("0.2.0", now))
    # a redirect to where the check could have been pointed itself is followed...
    assert update.check(base + "moved.json", keys, "0.1.0", now=now).status == "available"
    # ...one that leaves https (here: for ftp) is not
    got = update.check(base + "away.json", keys, "0.1.0", now=now)
    assert got.status == "unreachable" and "redirect" in got.reason and "refused" in got.reason


def test_a_dripping_download_is_abandoned_at_its_deadline(mirror: tuple[str, Path],
                                                          tmp_path: Path) -> None:
    base, _root = mirror
    drip = update.Artifact("drip.deb", "any", "drip.deb", "0" * 64, 1_000_000)
    t0 = time.monotonic()
    with pytest.raises(update.DownloadError, match="took longer than 1 s"):
        update.download(drip, tmp_path / "dl", base, deadline=1.0)
    assert time.monotonic() - t0 < 5
    assert not list((tmp_path / "dl").iterdir())  # the partial file is gone
    assert update.download_deadline(1_000_000) == pytest.approx(140.0)
    assert update.download_deadline(10**12) == update.DOWNLOAD_CEILING
