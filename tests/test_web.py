"""`grove node --web`: the headless web dashboard of a real village, driven by a real headless
browser (Chromium from Debian's packages) and by plain HTTP: the token guards every request,
the page says what the desktop's Overview says in the same plain words, the neighbour is
named, the two actions reach the node, a cross-site POST is refused, and an address other
computers can reach needs --web-remote."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.web import WebDashboard, load_token, parse_address
from core.errors import GardenerError
from core.names import village_name
from tests.conftest import need
from tests.nodes import make_handle, wait_for
from tests.plain_words import faults

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", f"--user-data-dir={home}", *args],
                          capture_output=True, text=True, timeout=90)


def _request(url: str, *, token: str = "", data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if token:
        req.add_header("Authorization", f"Bearer {token}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: object, **k: object) -> None:
            return None
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _visible_text(dom: str) -> str:
    """What the page shows before anything is opened: without <details>, tags, attributes
    and the style sheet."""
    dom = re.sub(r"<style>.*?</style>|<details>.*?</details>", " ", dom, flags=re.S)
    return re.sub(r"<[^>]+>", " ", dom)


@pytest.mark.capability("chromium")
@pytest.mark.timeout(240)
def test_the_web_dashboard_of_a_real_village_in_headless_chromium(tmp_path: Path) -> None:
    need("chromium", BROWSER is not None, "headless Chromium (apt-get install chromium)")
    a = make_handle(tmp_path, "web-a")
    a.start()
    b = make_handle(tmp_path, "web-b", bootstrap=(a.snapshot().listen_addrs[0],))
    b.start()
    token = load_token(a.config.paths.data_dir)
    web = WebDashboard(a, "127.0.0.1", 0, token).start()
    base = web.url.split("?")[0]
    try:
        assert (a.config.paths.data_dir / "web-token").stat().st_mode & 0o777 == 0o600
        assert load_token(a.config.paths.data_dir) == token  # one per profile, kept
        wait_for(lambda: len(a.snapshot().peers) == 1 and len(a.snapshot().villages) >= 1,
                 30, "the neighbour's signed record")
        # no token, a wrong one: refused
        assert _request(base)[0] == 401
        assert _request(base + "?token=wrong")[0] == 401
        assert _request(base + "api/snapshot", token="x" * 32)[0] == 401
        status, body = _request(base + "api/snapshot", token=token)
        assert status == 200 and json.loads(body)["snapshot"]["peer_id"] == \
            a.snapshot().peer_id
        assert json.loads(body)["glance"]["headline"] == "Grove is not using this computer"

        # the browser opens the printed address: the token becomes a cookie, the page shows
        dom = _browser(tmp_path / "chromium", "--dump-dom", web.url).stdout
        assert "Grove is not using this computer" in dom, dom[:2000]
        assert village_name(b.snapshot().peer_id) in dom  # the neighbour, named
        seen = _visible_text(dom)
        assert "Nothing needs your attention." in seen
        assert not faults(seen), faults(seen)
        assert a.snapshot().peer_id in dom.split("<details>")[1]  # the id: behind Details
        shot = tmp_path / "web.png"
        _browser(tmp_path / "chromium", "--window-size=1000,1400",
                 f"--screenshot={shot}", web.url)
        assert shot.stat().st_size > 20_000  # a drawn page (a blank one is ~5 kB)

        # the actions: participation on, a pause, resume; a cross-site POST is refused
        assert _request(base + "api/participate", token=token, data=b"on=1",
                        headers={"Origin": "http://evil.example"})[0] == 403
        assert not a.snapshot().participating
        assert _request(base + "api/participate", token=token, data=b"on=1")[0] == 303
        wait_for(lambda: a.snapshot().participating, 10, "participation on")
        assert _request(base + "api/pause", token=token, data=b"for=30+min")[0] == 303
        wait_for(lambda: a.snapshot().is_paused(), 10, "the pause")
        assert _request(base + "api/pause", token=token, data=b"for=ever")[0] == 400
        assert _request(base + "api/resume", token=token, data=b"")[0] == 303
        wait_for(lambda: not a.snapshot().is_paused(), 10, "the resume")
        dom = _browser(tmp_path / "chromium", "--dump-dom", web.url).stdout
        assert "Stop lending this computer" in dom and "Pause 30 min" in dom
    finally:
        web.stop()
        b.stop()
        a.stop()


def test_the_web_address_stays_on_this_computer_unless_told() -> None:
    assert parse_address("127.0.0.1:8642", remote=False) == ("127.0.0.1", 8642)
    assert parse_address("[::1]:0", remote=False) == ("::1", 0)
    for bad in ("0.0.0.0:8642", "192.168.1.5:80"):
        with pytest.raises(GardenerError, match="can be reached from other computers"):
            parse_address(bad, remote=False)
    assert parse_address("0.0.0.0:8642", remote=True) == ("0.0.0.0", 8642)
    for bad in ("localhost:80", "127.0.0.1", "127.0.0.1:99999"):
        with pytest.raises(GardenerError):
            parse_address(bad, remote=False)
