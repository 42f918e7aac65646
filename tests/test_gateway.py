"""`grove gateway` as an operator runs it: API keys in a private file, requests in the OpenAI
completions shape refused with the reason when they are malformed, unauthorised or more than
the swarm can serve. (Completions at every level through a real swarm: test_service_levels.)"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app import gateway
from tests.conftest import ROOT, grove


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"{", 400, "not JSON"),
    (b"[]", 400, "not a JSON object"),
    (b'{"prompt": ""}', 400, "non-empty string"),
    (b'{"prompt": "a", "max_tokens": 0}', 400, "from 1 to 512"),
    (b'{"prompt": "a", "max_tokens": true}', 400, "from 1 to 512"),
    (b'{"prompt": "a", "level": "gold"}', 400, "basic, checked, assured"),
    (b'{"prompt": "a", "model": "gpt"}', 404, "not served here"),
    (b'{"prompt": "a", "stream": true}', 400, "greedy"),
])
def test_a_malformed_request_is_refused_with_the_reason(body: bytes, status: int,
                                                        words: str) -> None:
    with pytest.raises(gateway.BadRequest) as e:
        gateway.parse_request(body, "tiny-lm")
    assert e.value.status == status and words in e.value.message


def test_requests_parse_with_defaults() -> None:
    assert gateway.parse_request(b'{"prompt": ["the "]}', "tiny-lm") == ("the ", 16, "basic")
    assert gateway.parse_request(
        b'{"model": "tiny-lm", "prompt": "a", "max_tokens": 4, "level": "assured", '
        b'"temperature": 0}', "tiny-lm") == ("a", 4, "assured")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ask(url: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.timeout(120)
def test_the_gateway_needs_a_key_and_says_when_the_swarm_cannot_serve(
        grove_env: dict[str, str], tmp_path: Path) -> None:
    out = grove("gateway", "--no-default-bootstrap", env=grove_env)
    assert out.returncode == 2 and "no API keys yet" in out.stderr
    assert "--new-key" in out.stderr and "Traceback" not in out.stderr
    made = grove("gateway", "--new-key", env=grove_env)
    key = made.stdout.strip()
    assert made.returncode == 0 and key.startswith("grove-") and len(key) > 30
    keys = next(Path(grove_env["GROVE_HOME"]).rglob(gateway.KEYS_FILE))
    assert keys.stat().st_mode & 0o077 == 0 and key in keys.read_text()
    out = grove("gateway", "--listen", "0.0.0.0:8480", env=grove_env)
    assert out.returncode == 2 and "--remote" in out.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "gateway", "--listen", f"127.0.0.1:{port}",
         "--listen-host", "127.0.0.1", "--port", "0", "--no-default-bootstrap"],
        env=grove_env, cwd=ROOT, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while "gateway at" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the gateway stopped"
        url = f"http://127.0.0.1:{port}/v1"
        assert _ask(url + "/models", "wrong")[0] == 401
        status, got = _ask(url + "/models", key)
        assert status == 200 and got["data"][0]["id"] == "tiny-lm"
        status, got = _ask(url + "/completions", key, {"prompt": "the ", "max_tokens": 2})
        assert status == 503 and "could not serve it at the basic level" in \
            got["error"]["message"], got
        status, got = _ask(url + "/completions", key, {"prompt": "\u20ac"})
        assert status == 400 and "cannot read" in got["error"]["message"], got
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err
